"""PyTorch networks for fastem (optional extra: ``pip install 'fastem[torch]'``).

Importing this package imports torch; ``import fastem`` never does. Modules, one job each:

* :mod:`.blocks` -- weight-normalised / spectral-normalised convolutions, running-mean-only
  batch norm, residual blocks, init helpers (shared by every network);
* :mod:`.training` -- the generic :class:`Trainer` (exact checkpoint/resume, progress
  callbacks, history) and :func:`write_curves`;
* :mod:`.model` -- model files (weights + the record of what they were trained for);
* :mod:`.inference` -- tiled, batched inference on images of any size;
* :mod:`.crops`, :mod:`.replay` -- the coverage-isotropic crop sampler (seed 000 eqs. 3-5)
  and the experience replay of hard examples (eqs. 11-15);
* :mod:`.completion`, :mod:`.completion_train`, :mod:`.completion_data` -- the partial-scan
  completion GAN (seed 000): networks, losses and schedule, data;
* :mod:`.unet`, :mod:`.hrnet`, :mod:`.patchgan`, :mod:`.ssl_corrupt`, :mod:`.ssl_models`,
  :mod:`.ssl_train` -- self-supervised GAN pretraining and fine-tuning (seed 002, issue 13):
  U-Net_B_RF / HRNet generators, the 70x70 PatchGAN, pretext corruptions, Trainer tasks.
"""

from fastem.interop import require_torch

torch = require_torch()

from .blocks import (GenConv, GenDeconv, MeanOnlyBatchNorm, ResidualBlock, SNConv2d, WNConv2d,  # noqa: E402
                     WNConvTranspose2d, count_parameters, data_init, freeze_batch_norm, init_normal)
from .completion import (MODEL_KIND, AuxiliaryTrainer, CompletionConfig, CompletionGenerator,  # noqa: E402
                         Discriminator, InnerGenerator, MultiScaleDiscriminator, OuterGenerator)
from .completion_data import (DataSource, PartialScanSource, TensorSource, ValidationSet,  # noqa: E402
                              baseline_rmse, make_validation_set)
from .completion_train import CompletionTask, schedule, validation_rmse  # noqa: E402
from .crops import (coverage_counts, expected_coverage, isotropic_start_probabilities,  # noqa: E402
                    sample_crop_starts, scaled_crop_sizes)
from .inference import complete_partial_scans, tiled_apply  # noqa: E402
from .model import (ModelUseWarning, check_model_use, load_model, read_model_record, register_kind,  # noqa: E402
                    save_model)
from .replay import ExperienceReplay  # noqa: E402
from .train_completion import train_completion  # noqa: E402
from .training import History, Trainer, load_checkpoint, write_curves  # noqa: E402

__all__ = [
    "GenConv", "GenDeconv", "MeanOnlyBatchNorm", "ResidualBlock", "SNConv2d", "WNConv2d", "WNConvTranspose2d",
    "count_parameters", "data_init", "freeze_batch_norm", "init_normal",
    "MODEL_KIND", "AuxiliaryTrainer", "CompletionConfig", "CompletionGenerator", "Discriminator", "InnerGenerator",
    "MultiScaleDiscriminator", "OuterGenerator",
    "DataSource", "PartialScanSource", "TensorSource", "ValidationSet", "baseline_rmse", "make_validation_set",
    "CompletionTask", "schedule", "validation_rmse",
    "coverage_counts", "expected_coverage", "isotropic_start_probabilities", "sample_crop_starts",
    "scaled_crop_sizes",
    "complete_partial_scans", "tiled_apply",
    "ModelUseWarning", "check_model_use", "load_model", "read_model_record", "register_kind", "save_model",
    "ExperienceReplay", "train_completion",
    "History", "Trainer", "load_checkpoint", "write_curves",
]

# issue 13: self-supervised GAN pretraining (seed 002) -- :mod:`.unet` (U-Net_B_RF), :mod:`.hrnet`,
# :mod:`.patchgan`, :mod:`.ssl_corrupt` (pretext corruptions), :mod:`.ssl_models` (generators by
# name, model kind "ssl-generator"), :mod:`.ssl_train` (pretext and fine-tuning Trainer tasks)
from .blocks import NORMS, ConvNormAct, ProjectedResidualBlock, norm_layer, pad_to_multiple  # noqa: E402
from .hrnet import HRNet, HRNetConfig  # noqa: E402
from .patchgan import PatchGAN, conv_stack_receptive_field, patchgan_output_size  # noqa: E402
from .ssl_corrupt import CorruptionConfig, corrupt, corrupt_batch  # noqa: E402
from .ssl_models import MODEL_KIND as SSL_MODEL_KIND  # noqa: E402
from .ssl_models import GENERATORS, build_generator, generator_config  # noqa: E402
from .ssl_train import EpochSampler, FinetuneTask, PretextTask, dice_scores, predict, standardise  # noqa: E402
from .unet import UNET_VARIANTS, UNet, UNetConfig, receptive_field  # noqa: E402

__all__ += [
    "NORMS", "ConvNormAct", "ProjectedResidualBlock", "norm_layer", "pad_to_multiple",
    "HRNet", "HRNetConfig", "PatchGAN", "conv_stack_receptive_field", "patchgan_output_size",
    "CorruptionConfig", "corrupt", "corrupt_batch",
    "SSL_MODEL_KIND", "GENERATORS", "build_generator", "generator_config",
    "EpochSampler", "FinetuneTask", "PretextTask", "dice_scores", "predict", "standardise",
    "UNET_VARIANTS", "UNet", "UNetConfig", "receptive_field",
]
