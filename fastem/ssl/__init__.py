"""Self-supervised GAN pretraining for micrographs and its fine-tuning (issue 13; seeds 002, 003).

Jobs (what ``fastem ssl pretrain / finetune / apply`` call; PyTorch is imported only when a
job runs, so ``import fastem.ssl`` works without it):

* :func:`pretrain` -- Pix2Pix pretext training of a U-Net_B_RF or HRNet generator on
  unlabelled micrographs (yours or a synthetic pool), written as a model file;
* :func:`finetune` -- a downstream task (segmentation, denoising, noise + background removal,
  super-resolution) from a pretrained file or from random initialisation;
* :func:`apply` -- a model on images of any size (tiled), to HDF5, with metrics when targets
  are given.

Networks and training live in :mod:`fastem.nn` (``unet``, ``hrnet``, ``patchgan``,
``ssl_corrupt``, ``ssl_models``, ``ssl_train``); data in :mod:`fastem.data.ssl_synthetic`.
"""

from .job import (OUTPUT_GROUP, apply, default_checkpoint, finetune, load_images_and_targets, pretrain,
                   split_validation)

__all__ = ["pretrain", "finetune", "apply", "load_images_and_targets", "split_validation", "default_checkpoint",
           "OUTPUT_GROUP"]
