"""Self-supervised GAN pretraining and fine-tuning as :class:`~fastem.nn.training.Trainer` tasks (seed 002).

:class:`PretextTask` (seed 002 section 4.1, Pix2Pix): a clean crop ``y`` is corrupted
(:mod:`fastem.nn.ssl_corrupt`) into ``x``; the generator ``G`` restores it; the 70x70 PatchGAN
``D`` (:mod:`fastem.nn.patchgan`) scores ``(x, y)`` and ``(x, G(x))`` pairs. Least-squares GAN
losses (Mao et al. 2017, as Pix2Pix's ``lsgan`` mode) with ``lambda = 100``::

    L_D = 0.5 [ mean (D(x, y) - 1)^2 + mean D(x, G(x))^2 ]
    L_G = mean (D(x, G(x)) - 1)^2 + lambda * mean |G(x) - y|

each step updates ``D`` then ``G``, both with Adam (lr 2e-4, betas (0.5, 0.999)). Validation:
the L1 between ``G(x)`` and ``y`` on a fixed corrupted held-out set.

:class:`FinetuneTask` (section 4.2): the generator, initialised from a pretrained file or at
random, trained on a downstream task: ``segment`` (binary cross-entropy on the output logit,
optionally plus a soft Dice loss; metric: Dice of the 0.5-thresholded probability),
``denoise``, ``background`` (noise + background removal) or ``superres`` (loss L1 + L2;
metric: L1). Adam lr 2e-4 (betas (0.9, 0.999): the paper gives none). Options: the task
``head`` (``"keep"`` the pretrained 1x1 output convolution, start a ``"new"`` one, or
``"auto"``, the default: new for segmentation, whose output means something else than the
pretext's restored image, kept for the restoration tasks; measured in docs/ssl.md: after a longer
pretraining a kept head made segmentation fine-tuning collapse to empty masks) and the
freezing policy (``"none"``, ``"encoder"`` -- the contracting path / HRNet's stem and
branches -- or ``"all-but-head"``, frozen until ``unfreeze_epoch``, or for the whole run;
frozen parts also keep their batch-norm statistics).

Data and determinism: images are standardised per image (zero mean, unit std). Restoration
targets are normalised with their *input's* statistics, so outputs map back to intensities:
standardised (input mean and std) for ``denoise``, divided by the input's std only (zero kept)
for the background-free targets of ``background`` and ``superres`` (:func:`normalise`; the
offset a mean shift gives those targets kept super-resolution from being learnt). Inputs are
always standardised. An epoch visits
a permutation of the training images (``default_rng([seed, epoch, stream])``), a step's crop
positions and augmentations (flips, 90 degree rotations; noise for segmentation) come from
``default_rng([seed, step, stream])`` and a pretext example's corruption from ``(seed, step *
batch + b)``, so every step is a function of the seed and the step number: a resumed run equals
an uninterrupted one bit for bit on the CPU. On CUDA with ``amp=True`` the forward passes run
in bfloat16 autocast (mixed precision; losses in float32).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch.nn import functional as F

from fastem.errors import InputError
from fastem.io import run_fingerprint

from .inference import tiled_apply
from .patchgan import PatchGAN
from .ssl_corrupt import CorruptionConfig, corrupt_batch
from .ssl_models import build_generator

__all__ = ["PretextTask", "FinetuneTask", "EpochSampler", "standardise", "normalise", "resolve_normalisation",
           "dice_scores", "predict", "HEADS", "FREEZE_POLICIES", "SEG_LOSSES", "FINETUNE_TASKS", "NORMALISATIONS",
           "ZERO_PRESERVING_TASKS", "check_crop", "fitting_crop"]

FINETUNE_TASKS = ("segment", "denoise", "background", "superres")
HEADS = ("auto", "keep", "new")
FREEZE_POLICIES = ("none", "encoder", "all-but-head")
SEG_LOSSES = ("bce", "bce+dice")
#: per-image normalisations of a restoration task's input and target (see :func:`normalise`)
NORMALISATIONS = ("auto", "standardise", "scale")
#: tasks whose targets are background-free (zero = no signal): ``"auto"`` normalises them by ``"scale"``
ZERO_PRESERVING_TASKS = ("background", "superres")

_EPOCH_STREAM, _STEP_STREAM = 0xE90C, 0x57E9
#: smallest pretext crop: the PatchGAN's five 4x4 convolutions need 24 px for a 1x1 score map
MIN_PRETEXT_CROP = 24
#: pretext validation examples use corruption indices from here on (disjoint from training draws)
VAL_INDEX_BASE = 1 << 40


def standardise(images, *, eps: float = 1e-6):
    """Per-image standardisation of (N, H, W) ``images``: ``(z, mean, std)``.

    ``z = (images - mean) / std`` float32 (N, H, W); ``mean``, ``std`` float64 (N,), ``std``
    at least ``eps`` (flat images stay flat).
    """
    a = np.asarray(images, dtype=np.float64)
    if a.ndim != 3:
        raise InputError(f"images must be (N, rows, cols), got shape {a.shape}")
    mean = a.mean(axis=(1, 2))
    std = np.maximum(a.std(axis=(1, 2)), eps)
    return ((a - mean[:, None, None]) / std[:, None, None]).astype(np.float32), mean, std


def resolve_normalisation(normalisation: str, task: str) -> str:
    """``"standardise"`` or ``"scale"`` for ``task``: ``"auto"`` is ``"scale"`` for the tasks whose
    targets are background-free (:data:`ZERO_PRESERVING_TASKS`), ``"standardise"`` otherwise."""
    if normalisation not in NORMALISATIONS:
        raise InputError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {normalisation!r}")
    if normalisation == "auto":
        return "scale" if task in ZERO_PRESERVING_TASKS else "standardise"
    return normalisation


def normalise(images, normalisation: str = "standardise", *, eps: float = 1e-6):
    """Per-image normalisation of (N, H, W) input ``images``: ``(z, shift, scale)``.

    ``z`` is the network input, always the standardised image ``(images - mean) / std``
    (:func:`standardise`, as in pretraining). ``shift`` and ``scale`` normalise the input's
    restoration *target*, ``(target - shift) / scale``, and map an output back,
    ``out * scale + shift``: ``"standardise"``: ``shift`` = the input's mean, ``scale`` = its
    std; ``"scale"``: ``shift = 0``, ``scale`` = the input's std, so the target's intensity zero
    stays zero. Why ``"scale"`` for background-free targets (noise + background removal,
    super-resolution): shifted by the input's mean, such a target sits at a per-image offset
    ``-(mean input) / std`` (about -1.8 on the synthetic ADF-STEM set), a global number a fully
    convolutional network cannot read from a zero-mean input and learns only slowly (the first
    reduced reproduction's super-resolution stayed worse than the best constant per image);
    unshifted, its background is at zero and every output pixel depends on its neighbourhood
    only (remove the local background, sharpen). L1 in either unit is ``|out - target| / std``:
    the same number.

    Returns ``z`` float32 (N, H, W), ``shift`` and ``scale`` float64 (N,), ``scale >= eps``.
    """
    z, mean, std = standardise(images, eps=eps)
    if normalisation == "standardise":
        return z, mean, std
    if normalisation != "scale":
        raise InputError(f"normalisation must be 'standardise' or 'scale', got {normalisation!r}")
    return z, np.zeros_like(mean), std


class EpochSampler:
    """Which examples a step uses: epochs of seeded permutations, always full batches.

    ``steps_per_epoch = ceil(n / batch)``; step ``k`` of epoch ``e`` takes positions
    ``k*batch ... k*batch + batch - 1`` (mod ``n``) of ``default_rng([seed, e, stream])``'s
    permutation of ``range(n)``.
    """

    def __init__(self, n: int, batch: int, seed: int, stream: int = _EPOCH_STREAM):
        self.n, self.batch, self.seed, self.stream = int(n), int(batch), int(seed), int(stream)
        if self.n < 1 or self.batch < 1:
            raise InputError(f"need at least one example and batch >= 1 (got {n}, {batch})")
        self.steps_per_epoch = math.ceil(self.n / self.batch)

    def epoch(self, step: int) -> int:
        return int(step) // self.steps_per_epoch

    def __call__(self, step: int) -> np.ndarray:
        e, k = divmod(int(step), self.steps_per_epoch)
        perm = np.random.default_rng([self.seed, e, self.stream]).permutation(self.n)
        return perm[(k * self.batch + np.arange(self.batch)) % self.n]


def _crops(arrays, ids, crop: int, rng) -> list[np.ndarray]:
    """The same random ``crop`` x ``crop`` windows of image ``ids`` from each array (N, H, W)."""
    h, w = arrays[0].shape[-2:]
    r = rng.integers(0, h - crop + 1, len(ids))
    c = rng.integers(0, w - crop + 1, len(ids))
    return [np.stack([a[i, y:y + crop, x:x + crop] for i, y, x in zip(ids, r, c)]) for a in arrays]


def _augment(rng, *tensors):
    """Flip (left-right, p 0.5) and rotate by k * 90 degrees (k uniform in 0..3) each example alike."""
    out = [list(t.unbind(0)) for t in tensors]
    for b in range(tensors[0].shape[0]):
        flip, k = bool(rng.random() < 0.5), int(rng.integers(0, 4))
        for t in out:
            v = t[b]
            if flip:
                v = torch.flip(v, dims=(-1,))
            if k:
                v = torch.rot90(v, k, dims=(-2, -1))
            t[b] = v
    return [torch.stack(t) for t in out]


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _check_images(images, crop: int, what: str) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim != 3 or a.shape[0] < 1:
        raise InputError(f"{what} must be a non-empty (N, rows, cols) stack, got shape {a.shape}")
    if min(a.shape[-2:]) < crop:
        raise InputError(f"{what}: images of {a.shape[-2]}x{a.shape[-1]} are smaller than the crop {crop}")
    if not np.isfinite(a).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    return a


def check_crop(crop: int, generator, arch: str = "the generator") -> None:
    """One-line :class:`~fastem.errors.InputError` unless ``crop`` (px) is a multiple of the
    generator's total downsampling ``generator.multiple`` (U-Net: the product of its pools;
    HRNet: 32).

    A crop that is not a multiple is padded (reflect, bottom/right) inside ``forward`` and the
    output cropped back, so the loss never reaches the outputs of the padded border. With a deep
    U-Net (``unet-4-424``: 48 px downsampling, a 2x2 bottleneck for a 96 px input) the bottleneck
    cells, whose 3x3 convolutions are position dependent at that size, then see a different
    layout in training than on whole images: a 64 px crop left the bottom/right 56 % of a 96 px
    validation image untrained and U-Net_4_424 stuck at the all-particle Dice.
    """
    m = int(getattr(generator, "multiple", 1))
    crop = int(crop)
    if crop % m:
        lo, hi = (crop // m) * m, -(-crop // m) * m
        use = f"{lo} or {hi}" if lo else f"{hi}"
        raise InputError(f"crop {crop} px is not a multiple of {arch}'s total downsampling {m} px (the padded "
                         f"border of each crop would never be trained); use a crop of {use} px")


def fitting_crop(preferred: int, multiple: int, side: int | None = None) -> int:
    """The smallest multiple of ``multiple`` that is >= ``preferred`` (px), or, when ``side``
    (the smallest image side) is smaller than that, the largest multiple that fits ``side``;
    at least ``multiple``."""
    m = max(1, int(multiple))
    crop = -(-int(preferred) // m) * m
    if side is not None and crop > int(side):
        crop = max(m, (int(side) // m) * m)
    return crop


def dice_scores(prob: np.ndarray, masks: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Hard Dice ``2 |P & T| / (|P| + |T|)`` per image of probabilities (N, H, W) vs masks (N, H, W).

    ``P = prob > threshold``, ``T = masks > 0.5``; an image where both are empty scores 1.
    Returns float64 (N,) in [0, 1].
    """
    p = np.asarray(prob) > threshold
    t = np.asarray(masks) > 0.5
    inter = (p & t).sum(axis=(-2, -1)).astype(np.float64)
    total = (p.sum(axis=(-2, -1)) + t.sum(axis=(-2, -1))).astype(np.float64)
    return np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)


@torch.no_grad()
def _forward_all(generator, x: np.ndarray, device, batch: int, amp: bool) -> np.ndarray:
    """``generator`` over (N, H, W) standardised images in chunks; (N, H, W) float32 output."""
    out = []
    for i in range(0, x.shape[0], batch):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch, None])).to(device)
        with _autocast(device, amp):
            yb = generator(xb)
        out.append(yb.float()[:, 0].cpu().numpy())
    return np.concatenate(out)


def _setup(task, generator_config: dict, n: int, device, amp: bool, record) -> torch.nn.Module:
    """What both tasks set up alike (``task.crop``, ``batch``, ``seed``, ``epochs`` already set):
    config, device, AMP flag, fingerprint record, the :class:`EpochSampler` over ``n`` examples
    and the step counts; returns the generator built under ``torch.manual_seed(task.seed)``
    (on the CPU) after :func:`check_crop`."""
    task.generator_config = dict(generator_config)
    task.device, task.amp = torch.device(device), bool(amp)
    task.record = dict(record or {})
    task.sampler = EpochSampler(n, task.batch, task.seed)
    task.steps_per_epoch = task.sampler.steps_per_epoch
    task.total_steps = task.epochs * task.steps_per_epoch
    torch.manual_seed(task.seed)
    generator = build_generator(task.generator_config)
    check_crop(task.crop, generator, task.generator_config.get("arch", "the generator"))
    return generator


# ------------------------------------------------------------------------------------------
# pretext task
# ------------------------------------------------------------------------------------------
class PretextTask:
    """Pix2Pix pretext training (see the module docstring) as a Trainer task.

    Parameters
    ----------
    generator_config : dict
        :func:`~fastem.nn.ssl_models.generator_config`.
    images : (N, H, W) array
        Unlabelled training micrographs (any positive or signed intensities; standardised here).
    val_images : (M, H, W) array, optional
        Held-out micrographs; validation uses their central ``crop`` x ``crop`` windows.
    epochs, crop, batch, seed
        Training length (epochs of ``ceil(N / batch)`` steps), crop side (px; a multiple of the
        generator's total downsampling, :func:`check_crop`), batch size, seed of the
        initialisation and of every draw.
    corruption : CorruptionConfig
    lambda_l1, lr, betas
        ``L_G = L_adv + lambda_l1 * L1``; Adam settings of both networks.
    disc_features, disc_norm
        PatchGAN width (64 = Pix2Pix) and norm.
    device, amp
        Torch device; bfloat16 autocast on CUDA when ``amp``.
    record : dict, optional
        Extra JSON-able parameters folded into the resume fingerprint.
    """

    def __init__(self, generator_config: dict, images, *, val_images=None, epochs: int = 1, crop: int = 64,
                 batch: int = 8, seed: int = 0, corruption: CorruptionConfig | None = None, lambda_l1: float = 100.0,
                 lr: float = 2e-4, betas=(0.5, 0.999), disc_features: int = 64, disc_norm: str = "batch",
                 device="cpu", amp: bool = True, record: dict | None = None):
        if int(epochs) < 1 or int(batch) < 1:
            raise InputError(f"need epochs >= 1 and batch >= 1 (got {epochs}, {batch})")
        if int(crop) < MIN_PRETEXT_CROP:
            raise InputError(f"the pretext crop must be at least {MIN_PRETEXT_CROP} px (the 70x70 PatchGAN needs it), "
                             f"got {crop}")
        self.crop, self.batch, self.seed, self.epochs = int(crop), int(batch), int(seed), int(epochs)
        raw = _check_images(images, self.crop, "pretraining images")
        self.images, _, _ = standardise(raw)
        self.raw_digest_source = raw
        self.val_raw = None if val_images is None else _check_images(val_images, self.crop, "validation images")
        self.corruption = corruption or CorruptionConfig()
        self.lambda_l1, self.lr, self.betas = float(lambda_l1), float(lr), tuple(float(b) for b in betas)
        self.generator = _setup(self, generator_config, self.images.shape[0], device, amp, record).to(self.device)
        self.discriminator = PatchGAN(2, disc_features, disc_norm).to(self.device)
        self.disc_config = {"features": int(disc_features), "norm": disc_norm}
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas)
        self.modules = {"generator": self.generator, "discriminator": self.discriminator}
        self.optimizers = {"generator": self.opt_g, "discriminator": self.opt_d}
        self.schedulers = {}
        self._val = self._make_val()

    def _make_val(self):
        if self.val_raw is None:
            return None
        z, _, _ = standardise(self.val_raw)
        h, w = z.shape[-2:]
        r, c = (h - self.crop) // 2, (w - self.crop) // 2
        clean = torch.from_numpy(np.ascontiguousarray(z[:, None, r:r + self.crop, c:c + self.crop]))
        x, y = corrupt_batch(clean, self.seed, [VAL_INDEX_BASE + i for i in range(clean.shape[0])], self.corruption)
        return x.numpy()[:, 0], y.numpy()[:, 0]

    # ------------------------------------------------------------------ task protocol
    def fingerprint(self) -> dict:
        params = {"generator": self.generator_config, "task": "pretext", "epochs": self.epochs, "crop": self.crop,
                  "batch": self.batch, "seed": self.seed, "corruption": self.corruption.to_dict(),
                  "lambda_l1": self.lambda_l1, "lr": self.lr, "betas": list(self.betas),
                  "discriminator": self.disc_config, "amp": self.amp and self.device.type == "cuda",
                  **{f"record.{k}": v for k, v in self.record.items()}}
        return run_fingerprint({"images": self.raw_digest_source, "val_images": self.val_raw}, params)

    def extra_state(self) -> dict:
        return {}   # every draw is a function of (seed, step)

    def load_extra_state(self, state: dict) -> None:
        return None

    def validate(self) -> dict:
        if self._val is None:
            return {}
        x, y = self._val
        was = self.generator.training
        self.generator.eval()
        try:
            out = _forward_all(self.generator, x, self.device, max(self.batch, 8), self.amp)
        finally:
            self.generator.train(was)
        return {"l1": float(np.mean(np.abs(out - y))), "l1_input": float(np.mean(np.abs(x - y)))}

    # ------------------------------------------------------------------ one step
    def batch_at(self, step: int):
        """The (corrupted input, clean target) batch of ``step``: two (B, 1, crop, crop) tensors."""
        ids = self.sampler(step)
        rng = np.random.default_rng([self.seed, int(step), _STEP_STREAM])
        (clean,) = _crops([self.images], ids, self.crop, rng)
        clean = torch.from_numpy(clean[:, None])
        x, y = corrupt_batch(clean, self.seed, [int(step) * self.batch + b for b in range(self.batch)],
                             self.corruption)
        return x.to(self.device), y.to(self.device)

    def train_step(self, step: int) -> dict:
        g, d = self.generator, self.discriminator
        g.train()
        d.train()
        x, y = self.batch_at(step)
        with _autocast(self.device, self.amp):
            fake = g(x)
        # discriminator: real pairs -> 1, generated pairs -> 0 (least squares)
        self.opt_d.zero_grad(set_to_none=True)
        with _autocast(self.device, self.amp):
            d_real = d(x, y).float()
            d_fake = d(x, fake.detach()).float()
        loss_d = 0.5 * (((d_real - 1.0) ** 2).mean() + (d_fake ** 2).mean())
        loss_d.backward()
        self.opt_d.step()
        # generator: fool the discriminator + lambda * L1
        self.opt_g.zero_grad(set_to_none=True)
        with _autocast(self.device, self.amp):
            d_gen = d(x, fake).float()
        adv = ((d_gen - 1.0) ** 2).mean()
        l1 = (fake.float() - y).abs().mean()
        loss_g = adv + self.lambda_l1 * l1
        loss_g.backward()
        self.opt_g.step()
        return {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach()), "l1": float(l1.detach()),
                "adv": float(adv.detach())}


# ------------------------------------------------------------------------------------------
# fine-tuning task
# ------------------------------------------------------------------------------------------
class FinetuneTask:
    """Fine-tuning (or training from random initialisation) on a downstream task, as a Trainer task.

    Parameters
    ----------
    generator_config : dict
        Architecture (:func:`~fastem.nn.ssl_models.generator_config`).
    task : "segment", "denoise", "background", "superres"
    inputs : (N, H, W) array
        Training images.
    targets : (N, H, W) array
        Masks (segment: nonzero = particle) or restoration targets (same shape as ``inputs``).
    val_inputs, val_targets : arrays, optional
        Validation set (whole images).
    init_state : dict, optional
        Pretrained generator weights (a state dict of the same architecture); ``None``: random.
    init_digest : str, optional
        Identifies ``init_state`` in the resume fingerprint (e.g. the model file's SHA-256).
    epochs, crop, batch, seed
        Epochs of ``ceil(N / batch)`` steps; crop side (px; a multiple of the generator's total
        downsampling, :func:`check_crop`); batch; seed of the initialisation (random weights, a
        new head) and of every draw.
    head : "auto", "keep", "new"
        The 1x1 output convolution of a pretrained generator: kept, re-initialised, or
        ``"auto"``: re-initialised for ``segment``, kept for the restoration tasks. The
        resolved choice is what :attr:`head` holds and the checkpoint records.
    freeze : "none", "encoder", "all-but-head"
    unfreeze_epoch : int, optional
        Epoch from which frozen parts train too (``None``: frozen for the whole run).
    seg_loss : "bce", "bce+dice"
    normalisation : "auto", "standardise", "scale"
        Per-image normalisation of the inputs and (restoration) targets, both with the input's
        statistics (:func:`normalise`); ``"auto"``: ``"scale"`` for ``background`` and
        ``superres``, ``"standardise"`` otherwise (segmentation inputs are always standardised).
        The resolved value is ``self.normalisation``; :func:`predict` must get the same.
    lr, betas
        Adam settings.
    augment : bool
        Random flips / 90 degree rotations (and, for segmentation, Gaussian noise).
    device, amp, record
        As :class:`PretextTask`.
    """

    def __init__(self, generator_config: dict, task: str, inputs, targets, *, val_inputs=None, val_targets=None,
                 init_state: dict | None = None, init_digest: str | None = None, epochs: int = 1, crop: int = 64,
                 batch: int = 8, seed: int = 0, head: str = "auto", freeze: str = "none",
                 unfreeze_epoch: int | None = None, seg_loss: str = "bce", normalisation: str = "auto", lr: float = 2e-4,
                 betas=(0.9, 0.999), augment: bool = True, device="cpu", amp: bool = True, record: dict | None = None):
        if task not in FINETUNE_TASKS:
            raise InputError(f"unknown task {task!r}; known: {', '.join(FINETUNE_TASKS)}")
        self.normalisation = "standardise" if task == "segment" else resolve_normalisation(normalisation, task)
        for name, value, allowed in (("head", head, HEADS), ("freeze", freeze, FREEZE_POLICIES),
                                     ("seg_loss", seg_loss, SEG_LOSSES)):
            if value not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if int(epochs) < 1 or int(crop) < 8 or int(batch) < 1:
            raise InputError(f"need epochs >= 1, crop >= 8 and batch >= 1 (got {epochs}, {crop}, {batch})")
        if head == "auto":
            head = "new" if task == "segment" else "keep"
        self.task, self.head, self.freeze, self.seg_loss = task, head, freeze, seg_loss
        self.unfreeze_epoch = None if unfreeze_epoch is None else int(unfreeze_epoch)
        self.crop, self.batch, self.seed, self.epochs = int(crop), int(batch), int(seed), int(epochs)
        self.raw_inputs = _check_images(inputs, self.crop, "training images")
        self.raw_targets = self._check_targets(targets, self.raw_inputs, "training targets")
        self.x, self.y = self._prepare(self.raw_inputs, self.raw_targets)
        self.val_raw = None
        if val_inputs is not None:
            vi = _check_images(val_inputs, 8, "validation images")
            vt = self._check_targets(val_targets, vi, "validation targets")
            self.val_raw = (vi, vt)
            self.vx, self.vy = self._prepare(vi, vt)
        self.init_digest = init_digest if init_state is not None else None
        self.lr, self.betas, self.augment = float(lr), tuple(float(b) for b in betas), bool(augment)
        gen = _setup(self, generator_config, self.x.shape[0], device, amp, record)
        if init_state is not None:
            try:
                gen.load_state_dict(init_state)
            except RuntimeError as exc:
                raise InputError(f"the initial weights do not fit {self.generator_config.get('arch')}: "
                                 f"{str(exc).splitlines()[0][:120]}") from None
            if head == "new":
                torch.manual_seed(self.seed)
                gen.head.reset_parameters()
        self.generator = gen.to(self.device)
        self.opt = torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas)
        self.modules = {"generator": self.generator}
        self.optimizers = {"generator": self.opt}
        self.schedulers = {}

    def _check_targets(self, targets, inputs, what):
        if targets is None:
            raise InputError(f"{what}: missing")
        t = np.asarray(targets)
        if t.ndim == 2:
            t = t[None]
        if t.shape[0] != inputs.shape[0]:
            raise InputError(f"{what}: {t.shape[0]} targets for {inputs.shape[0]} images")
        if t.shape != inputs.shape:
            raise InputError(f"{what}: shape {t.shape} differs from the images' {inputs.shape}")
        if not np.isfinite(t.astype(np.float64, copy=False)).all():
            raise InputError(f"{what}: contains NaN or infinite values")
        return t

    def _prepare(self, inputs, targets):
        z, shift, scale = normalise(inputs, self.normalisation)
        if self.task == "segment":
            y = (np.asarray(targets) > 0).astype(np.float32)
        else:
            y = ((np.asarray(targets, np.float64) - shift[:, None, None]) / scale[:, None, None]).astype(np.float32)
        return z, y

    # ------------------------------------------------------------------ task protocol
    def fingerprint(self) -> dict:
        params = {"generator": self.generator_config, "task": self.task, "epochs": self.epochs, "crop": self.crop,
                  "batch": self.batch, "seed": self.seed, "head": self.head, "freeze": self.freeze,
                  "unfreeze_epoch": self.unfreeze_epoch, "seg_loss": self.seg_loss,
                  **({} if self.normalisation == "standardise" else {"normalisation": self.normalisation}), "lr": self.lr,
                  "betas": list(self.betas), "augment": self.augment, "init": self.init_digest or "random",
                  "amp": self.amp and self.device.type == "cuda", **{f"record.{k}": v for k, v in self.record.items()}}
        vi, vt = self.val_raw if self.val_raw is not None else (None, None)
        return run_fingerprint({"inputs": self.raw_inputs, "targets": self.raw_targets, "val_inputs": vi,
                                "val_targets": vt}, params)

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        return None

    def frozen_modules(self, epoch: int) -> list:
        """Modules kept fixed during ``epoch`` under the freezing policy."""
        if self.freeze == "none" or (self.unfreeze_epoch is not None and epoch >= self.unfreeze_epoch):
            return []
        g = self.generator
        if self.freeze == "encoder":
            return list(g.encoder_modules())
        return [m for name, m in g.named_children() if name != "head"]

    def _set_trainable(self, epoch: int) -> None:
        g = self.generator
        g.train()
        for p in g.parameters():
            p.requires_grad_(True)
        for m in self.frozen_modules(epoch):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self.task == "segment":
            loss = F.binary_cross_entropy_with_logits(out, y)
            if self.seg_loss == "bce+dice":
                p = torch.sigmoid(out)
                inter = (p * y).sum(dim=(1, 2, 3))
                dice = (2 * inter + 1.0) / (p.sum(dim=(1, 2, 3)) + y.sum(dim=(1, 2, 3)) + 1.0)
                loss = loss + (1.0 - dice).mean()
            return loss
        return (out - y).abs().mean() + ((out - y) ** 2).mean()

    def validate(self) -> dict:
        if self.val_raw is None:
            return {}
        was = self.generator.training
        self.generator.eval()
        try:
            out = _forward_all(self.generator, self.vx, self.device, max(self.batch, 4), self.amp)
        finally:
            self.generator.train(was)
        if self.task == "segment":
            prob = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
            eps = 1e-7
            bce = -np.mean(self.vy * np.log(prob + eps) + (1 - self.vy) * np.log(1 - prob + eps))
            return {"dice": float(np.mean(dice_scores(prob, self.vy))), "bce": float(bce)}
        return {"l1": float(np.mean(np.abs(out - self.vy))), "l2": float(np.mean((out - self.vy) ** 2))}

    def batch_at(self, step: int):
        ids = self.sampler(step)
        rng = np.random.default_rng([self.seed, int(step), _STEP_STREAM])
        x, y = _crops([self.x, self.y], ids, self.crop, rng)
        x, y = torch.from_numpy(x[:, None]), torch.from_numpy(y[:, None])
        if self.augment:
            x, y = _augment(rng, x, y)
            if self.task == "segment":
                std = torch.from_numpy(rng.uniform(0.0, 0.3, x.shape[0]).astype(np.float32)).view(-1, 1, 1, 1)
                x = x + std * torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32))
        return x.to(self.device), y.to(self.device)

    def train_step(self, step: int) -> dict:
        epoch = self.sampler.epoch(step)
        self._set_trainable(epoch)
        x, y = self.batch_at(step)
        self.opt.zero_grad(set_to_none=True)
        with _autocast(self.device, self.amp):
            out = self.generator(x)
        loss = self.loss(out, y)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), "epoch": float(epoch + 1)}


# ------------------------------------------------------------------------------------------
# inference
# ------------------------------------------------------------------------------------------
def predict(generator, images, task: str, *, tile: int = 512, overlap: int = 32, batch: int = 4, device=None,
            amp: bool = True, normalisation: str = "standardise", ensemble: int = 1) -> np.ndarray:
    """Apply a generator to (N, H, W) (or (H, W)) images of any size, by tiles.

    ``segment``: the particle probability (sigmoid of the logit), float32 in [0, 1];
    ``pretext`` / restoration tasks: the restored image in the input's intensity units (each
    image normalised on the way in by ``normalisation`` -- the one the model was trained with,
    :attr:`FinetuneTask.normalisation`; ``"standardise"`` for pretext and segmentation models
    and for model files that record none -- and mapped back with its ``shift`` and ``scale``).
    ``ensemble`` (1, 2, 4 or 8): average the generator's output (for ``segment`` the logit, before
    the sigmoid) over that many dihedral transforms of the input (:func:`tiled_apply`); the
    fine-tuning and pretext augmentations are the same 8 transforms.
    """
    a = np.asarray(images)
    single = a.ndim == 2
    if single:
        a = a[None]
    z, mean, std = normalise(a, "standardise" if task in ("segment", "pretext") else normalisation)
    dev = torch.device(device or "cpu")
    was = generator.training
    generator.eval().to(dev)

    def fn(xb):
        with _autocast(dev, amp):
            return generator(xb).float()

    try:
        out = tiled_apply(fn, z[:, None], tile=tile, overlap=overlap, batch=batch, device=dev,
                          ensemble=ensemble)[:, 0]
    finally:
        generator.train(was)
    if task == "segment":
        out = (1.0 / (1.0 + np.exp(-out.astype(np.float64)))).astype(np.float32)
    else:
        out = (out * std[:, None, None] + mean[:, None, None]).astype(np.float32)
    return out[0] if single else out
