"""A PyTorch ``IterableDataset`` of fresh partial scans, made on the fly on the CPU or the GPU.

Each step draws ``batch_size`` micrographs from a pool (given images, or synthetic HAADF-STEM
micrographs from :mod:`fastem.data.stem`), takes a random crop when the pool's images are
larger than ``size``, and runs :class:`~fastem.scan.PartialScanPipeline` (path, dihedral
augmentation, normalisation, blur target, noise model, nearest infill). On a GPU everything
stays on the device: the pool is uploaded once, the per-step choices are host integers used
as slice bounds, and the tensors handed out are zero-copy DLPack views of CuPy arrays -- no
host round trip per step.

Use it with ``torch.utils.data.DataLoader(ds, batch_size=None)`` (it yields whole batches), or
iterate it directly. The pipeline is already multithreaded, so ``num_workers=0`` is the natural
choice; with CPU ``num_workers > 0`` pass ``multiprocessing_context="spawn"`` (Numba's OpenMP
threads do not survive ``fork``): every worker then takes every ``num_workers``-th step, so the
stream of batches is the same as with one process. torch is imported by this
module only (``pip install 'fastem[torch]'``).
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import numpy as np

from fastem import backend
from fastem.errors import InputError
from fastem.interop import require_torch, to_torch

from .partial import PartialScanPipeline, as_image_batch

torch = require_torch()

__all__ = ["PartialScanDataset"]


class PartialScanDataset(torch.utils.data.IterableDataset):
    """Batches ``(input, path, target)`` of shape (B, 1, size, size), float32, on ``device``.

    Parameters
    ----------
    images : (N, H, W) array or tensor, optional
        The micrograph pool (NumPy, CuPy or torch; uploaded to ``device`` once). ``H, W >= size``.
    synthetic : int, optional
        Instead of ``images``: a pool of this many synthetic micrographs of side ``size``
        (:class:`fastem.data.StemGenerator` with ``seed`` and ``stem_dose``).
    size : int
        Side of the square examples (default 512).
    batch_size : int
    kind : {"spiral", "grid"}
    coverage : float or sequence of floats
        Target path coverage (``measure``); with a sequence, each step picks one at random.
    measure : {"dwell", "coverage"}
        ``coverage`` as dose fraction (mean dwell, default) or fraction of visited pixels.
    seed : int
        Everything random (image choice, crops, paths, noise, augmentation) follows from it.
    augment : bool
        The 8 dihedral transforms, one at random per example.
    fill : {"nearest", "constant"}
    dose : float, optional
        Poisson shot noise of the partial scan (electrons per full-dwell pixel).
    stem_dose : float or None
        Shot noise of the synthetic micrographs themselves.
    steps : int, optional
        Stop after this many batches (default: never).
    start_step : int
        First step (resume a stream where it stopped).
    copy : bool
        Hand out fresh tensors (default). ``False`` hands out views of the pipeline's buffers,
        which the next step overwrites (saves one copy per step).
    device : None, "cpu", "cuda", Device
    path_options : dict
        Extra :class:`~fastem.scan.PartialScanPipeline` options (``rotate``, ``max_offset``,
        ``random_place``, ``amp``, ``binary``, ``antialias``, ``scan_blurred``).
    """

    def __init__(self, images=None, *, synthetic: int | None = None, size: int = 512, batch_size: int = 8,
                 kind: str = "spiral", coverage: float | Sequence[float] = 1 / 20, measure: str = "dwell",
                 seed: int = 0, augment: bool = True, fill: str = "nearest", dose: float | None = None,
                 stem_dose: float | None = 500.0, steps: int | None = None, start_step: int = 0, copy: bool = True,
                 device=None, **path_options):
        super().__init__()
        if (images is None) == (synthetic is None):
            raise InputError("give either images or synthetic=N (a pool of N synthetic micrographs)")
        self.device = backend.resolve_device(device)
        self.size, self.batch_size, self.seed = int(size), int(batch_size), int(seed)
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if synthetic is not None:
            from fastem.data.stem import StemGenerator

            if int(synthetic) < 1:
                raise InputError(f"synthetic must be >= 1 micrographs, got {synthetic}")
            self.pool = StemGenerator(self.size, seed=self.seed, dose=stem_dose, device=self.device)(int(synthetic))
        else:
            self.pool = as_image_batch(images, self.device, what="images")
        if self.pool.shape[1] < self.size or self.pool.shape[2] < self.size:
            raise InputError(f"images of {self.pool.shape[1]}x{self.pool.shape[2]} are smaller than size {self.size}")
        self.coverages = tuple(float(c) for c in np.atleast_1d(np.asarray(coverage, dtype=np.float64)))
        self.steps, self.start_step, self.copy = steps, int(start_step), bool(copy)
        self._options = dict(kind=kind, measure=measure, seed=self.seed, augment=augment, fill=fill, dose=dose,
                             device=self.device, **path_options)
        self._pipes: dict[float, PartialScanPipeline] = {}
        self._batch = None
        for c in self.coverages:   # validate (and solve the paths) now, not in the first step
            self._pipeline(c)

    def _pipeline(self, coverage: float) -> PartialScanPipeline:
        pipe = self._pipes.get(coverage)
        if pipe is None:
            pipe = PartialScanPipeline(self.batch_size, (self.size, self.size), coverage=coverage, **self._options)
            self._pipes[coverage] = pipe
        return pipe

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless PartialScanDataset has no length (pass steps=N)")
        return self.steps

    def batch(self, step: int):
        """The batch of step ``step``: ``(input, path, target)`` tensors, (B, 1, size, size)."""
        rng = np.random.default_rng([self.seed, 0x5CA9, int(step)])
        coverage = self.coverages[int(rng.integers(len(self.coverages)))]
        n, h, w = self.pool.shape
        pick = rng.integers(0, n, self.batch_size)
        oy = rng.integers(0, h - self.size + 1, self.batch_size)
        ox = rng.integers(0, w - self.size + 1, self.batch_size)
        with self.device.use():
            xp = self.device.xp
            if self._batch is None:
                self._batch = xp.empty((self.batch_size, self.size, self.size), self.pool.dtype)
            for b in range(self.batch_size):
                self._batch[b] = self.pool[pick[b], oy[b]:oy[b] + self.size, ox[b]:ox[b] + self.size]
            out = self._pipeline(coverage)(self._batch, example_base=int(step) * self.batch_size)
            arrays = [out.partial, out.path, out.target]
            if self.copy:
                arrays = [a.copy() for a in arrays]
        return tuple(to_torch(a[:, None]) for a in arrays)

    def __iter__(self) -> Iterator:
        info = torch.utils.data.get_worker_info()
        first, stride = self.start_step, 1
        if info is not None:
            first, stride = self.start_step + info.id, info.num_workers
        stop = None if self.steps is None else self.start_step + self.steps
        for step in itertools.count(first, stride):
            if stop is not None and step >= stop:
                return
            yield self.batch(step)
