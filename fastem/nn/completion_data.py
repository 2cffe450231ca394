"""Training data for the completion GAN: on-the-fly partial scans and a fixed validation set.

The trainer sees data through one small interface, :class:`DataSource`::

    batch(step) -> (x, y)      # x: (B, 2, S, S) float32 (partial scan in [-1, 1], path dwell in [0, 1])
                               # y: (B, 1, S, S) float32 blurred truth in [-1, 1]; same device
    fingerprint_inputs() -> dict[str, array]   # what a resume must match
    describe() -> dict         # JSON-able record for the model file

``batch(step)`` must be a pure function of ``step`` (given the source's construction), so a
resumed run sees the same data. :class:`PartialScanSource` is the default: a thin adapter over
fastem's own batched simulator (:class:`fastem.scan.PartialScanDataset`, i.e.
:class:`fastem.scan.PartialScanPipeline`: path, the 8 dihedral augmentations, normalisation,
blurred target, noise model, nearest infill) on synthetic HAADF-STEM micrographs
(:class:`fastem.data.StemGenerator`) or the user's images, on the training device.
:func:`make_validation_set` builds the fixed-seed validation examples;
:func:`baseline_rmse` scores a non-learned baseline (``fastem.scan.complete``) on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from fastem.errors import InputError

__all__ = ["DataSource", "PartialScanSource", "TensorSource", "ValidationSet", "make_validation_set",
           "baseline_rmse", "VALIDATION_SEED_OFFSET"]

#: the validation pool and paths use ``seed + VALIDATION_SEED_OFFSET`` (never the training stream)
VALIDATION_SEED_OFFSET = 1_000_003


class DataSource(Protocol):
    batch_size: int
    crop: int

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def fingerprint_inputs(self) -> dict: ...

    def describe(self) -> dict: ...


class PartialScanSource:
    """Fresh partial scans per step from fastem's pipeline (adapter; see the module docstring).

    Parameters
    ----------
    images : (N, H, W) array, optional
        The user's micrographs (H, W >= ``crop``); random crops are taken. Default: synthetic.
    synthetic : int
        Size of the synthetic micrograph pool (used when ``images`` is None).
    crop : int
        Side of the square training examples.
    batch_size : int
    kind : {"spiral", "grid"}
    coverage : float
    seed : int
        Every random choice (pool, crops, paths, noise, augmentation) follows from it.
    augment : bool
        The 8 dihedral transforms (one at random per example).
    device : None, "cpu", "cuda"
    options
        Further :class:`fastem.scan.PartialScanPipeline` options (``measure``, ``binary``,
        ``dose``, ``stem_dose``, ...), passed through.
    """

    def __init__(self, images=None, *, synthetic: int = 64, crop: int = 64, batch_size: int = 4,
                 kind: str = "spiral", coverage: float = 1 / 20, seed: int = 0, augment: bool = True,
                 device=None, **options):
        from fastem.scan.dataset import PartialScanDataset

        self.crop, self.batch_size, self.kind, self.coverage, self.seed = (int(crop), int(batch_size), kind,
                                                                           float(coverage), int(seed))
        self.synthetic = None if images is not None else int(synthetic)
        self.options = dict(options)
        self._ds = PartialScanDataset(images, synthetic=self.synthetic, size=self.crop, batch_size=self.batch_size,
                                      kind=kind, coverage=coverage, seed=self.seed, augment=augment, device=device,
                                      **options)
        self.augment = bool(augment)

    @property
    def pool(self):
        return self._ds.pool

    def batch(self, step: int):
        partial, path, target = self._ds.batch(int(step))
        return torch.cat([partial, path], dim=1), target

    def fingerprint_inputs(self) -> dict:
        from fastem.backend import to_device

        return {"images": None if self.synthetic is not None else to_device(self._ds.pool, "cpu")}

    def describe(self) -> dict:
        return {"source": "synthetic" if self.synthetic is not None else "images", "synthetic_pool": self.synthetic,
                "crop": self.crop, "batch": self.batch_size, "path": self.kind, "coverage": self.coverage,
                "data_seed": self.seed, "augment": self.augment,
                **{k: v for k, v in self.options.items() if isinstance(v, (int, float, str, bool, type(None)))}}


class TensorSource:
    """A :class:`DataSource` over fixed tensors ``x (N, 2, S, S)``, ``y (N, 1, S, S)`` (tests, user pairs).

    Step ``t`` takes examples ``(t * batch_size + i) mod N``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4):
        if x.dim() != 4 or x.shape[1] != 2 or y.shape != (x.shape[0], 1, *x.shape[2:]):
            raise InputError(f"TensorSource needs x (N, 2, S, S) and y (N, 1, S, S), got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        self.x, self.y, self.batch_size, self.crop = x, y, int(batch_size), int(x.shape[-1])

    def batch(self, step: int):
        idx = (int(step) * self.batch_size + torch.arange(self.batch_size)) % self.x.shape[0]
        return self.x[idx].clone(), self.y[idx].clone()

    def fingerprint_inputs(self) -> dict:
        return {"x": self.x.detach().cpu().numpy(), "y": self.y.detach().cpu().numpy()}

    def describe(self) -> dict:
        return {"source": "tensors", "examples": int(self.x.shape[0]), "crop": self.crop, "batch": self.batch_size}


@dataclass
class ValidationSet:
    """Fixed validation examples: ``x (N, 2, S, S)``, ``y (N, 1, S, S)`` float32 CPU tensors."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


def make_validation_set(images=None, *, count: int = 16, synthetic: int = 16, crop: int = 64,
                        kind: str = "spiral", coverage: float = 1 / 20, seed: int = 0, **options) -> ValidationSet:
    """``count`` fixed validation examples (seed ``seed + VALIDATION_SEED_OFFSET``, no augmentation).

    With ``images`` (e.g. held-out user micrographs) crops of them; otherwise a separate
    synthetic pool of ``synthetic`` micrographs that training never sees.
    """
    src = PartialScanSource(images, synthetic=synthetic, crop=crop, batch_size=int(count), kind=kind,
                            coverage=coverage, seed=int(seed) + VALIDATION_SEED_OFFSET, augment=False,
                            device="cpu", **options)
    x, y = src.batch(0)
    return ValidationSet(x.contiguous(), y.contiguous())


def baseline_rmse(valset: ValidationSet, method: str = "linear") -> float:
    """RMSE on [0, 1] intensities of a non-learned baseline (``fastem.scan.complete``) on ``valset``."""
    from fastem.scan import complete

    x, y = valset.x.numpy(), valset.y.numpy()
    preds = np.stack([complete(x[i, 0], x[i, 1], method=method) for i in range(len(valset))])
    return float(np.sqrt(np.mean((preds - y[:, 0]) ** 2)) / 2.0)
