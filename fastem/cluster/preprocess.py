"""Preprocessing of diffraction patterns for clustering, applied per block as the data is read.

A 4D-STEM scan ``(Ny, Nx, ky, kx)`` (or a pattern stack ``(N, ky, kx)``) is clustered on its
patterns; what a microscopist usually wants first is a detector mask (hide the central beam or
dead pixels), binning of the detector, a compressing transform of the intensities and a per-
pattern normalisation. :class:`Preprocess` does all four on one block of raw rows in a single
function (``apply``), which :class:`~fastem.cluster.DataSource` calls on every block it reads:
streamed HDF5 blocks are transformed as they arrive, in-memory data once, block by block, into
the working array (no full-size intermediate copies).

Order, per pattern ``p`` (raw detector values, shape ``(ky, kx)``):

1. mask: ``p[mask] = 0`` (``mask`` nonzero = pixel hidden), shape ``(ky, kx)``;
2. bin: sum of ``b x b`` blocks, ``(ky, kx) -> (ky/b, kx/b)`` (``b`` must divide both);
3. transform: ``none``, ``sqrt(max(p, 0))`` or ``log1p(max(p, 0))`` (dark-subtracted counts can
   be slightly negative; they are clipped at 0 before the transform);
4. normalise: ``none``, ``sum`` (``p / sum(p)``) or ``l2`` (``p / ||p||_2``); an all-zero
   pattern stays zero.

The fitted model records this (``SBEKMeans.preprocess_``, ``/cluster`` attributes) and
``predict`` applies the same to new data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastem.errors import InputError

__all__ = ["Preprocess", "TRANSFORMS", "NORMALIZATIONS", "BINS", "load_mask"]

TRANSFORMS = ("none", "sqrt", "log1p")
NORMALIZATIONS = ("none", "sum", "l2")
BINS = (1, 2, 4)


@dataclass(frozen=True, eq=False)
class Preprocess:
    """What is done to every pattern before clustering (see the module docstring).

    Parameters
    ----------
    transform : {"none", "sqrt", "log1p"}
    mask : ndarray (ky, kx) bool, optional
        ``True`` (nonzero) = pixel hidden (set to 0 before binning).
    binning : {1, 2, 4}
        Detector binning factor on both pattern axes.
    normalize : {"none", "sum", "l2"}
        Per-pattern normalisation, after the transform.
    """

    transform: str = "none"
    mask: np.ndarray | None = None
    binning: int = 1
    normalize: str = "none"

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise InputError(f"transform must be one of {', '.join(TRANSFORMS)}, got {self.transform!r}")
        if self.normalize not in NORMALIZATIONS:
            raise InputError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}")
        if isinstance(self.binning, bool) or not isinstance(self.binning, (int, np.integer)) \
                or int(self.binning) not in BINS:
            raise InputError(f"binning must be one of {', '.join(map(str, BINS))}, got {self.binning!r}")
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim != 2:
                raise InputError(f"detector_mask must be a 2D (ky, kx) array, got shape {m.shape}")
            if m.dtype.kind not in "biuf":
                raise InputError(f"detector_mask must be boolean or numeric (nonzero = hidden), got dtype {m.dtype}")
            object.__setattr__(self, "mask", m != 0)
        object.__setattr__(self, "binning", int(self.binning))

    @property
    def is_identity(self) -> bool:
        return self.transform == "none" and self.mask is None and self.binning == 1 and self.normalize == "none"

    def check(self, pattern_shape, name: str = "X") -> tuple | None:
        """The output pattern shape for raw patterns of ``pattern_shape`` (None: (N, d) points).

        Raises :class:`InputError` for a mask of the wrong shape, a binning that does not divide
        the pattern, or a mask / binning asked of data without a pattern shape.
        """
        if pattern_shape is None:
            if self.mask is not None or self.binning != 1:
                raise InputError(f"{name}: detector_mask and binning need patterns ((N, ky, kx) or (Ny, Nx, ky, kx) "
                                 f"data), not (N, d) points")
            return None
        ky, kx = pattern_shape
        if self.mask is not None and self.mask.shape != (ky, kx):
            raise InputError(f"detector_mask has shape {self.mask.shape} but the patterns of {name} are "
                             f"({ky}, {kx})")
        b = self.binning
        if ky % b or kx % b:
            raise InputError(f"binning {b} does not divide the pattern shape ({ky}, {kx}) of {name}")
        return (ky // b, kx // b)

    def apply(self, raw, pattern_shape, dtype, xp=np):
        """Preprocess a block of raw rows.

        Parameters
        ----------
        raw : ndarray (m, ky*kx) (or (m, d) without a pattern shape), any real dtype
        pattern_shape : (ky, kx) or None
        dtype : float32 or float64, the working dtype (the arithmetic is done in it)

        Returns
        -------
        ndarray (m, d_out) C-contiguous, ``dtype``; ``d_out = ky*kx / binning**2``.
        """
        m = raw.shape[0]
        x = xp.asarray(raw).astype(dtype, copy=True)
        if self.mask is not None:
            keep = xp.asarray(~self.mask.reshape(-1)).astype(dtype)
            x *= keep
        if self.binning > 1:
            ky, kx = pattern_shape
            b = self.binning
            x = x.reshape(m, ky // b, b, kx // b, b).sum(axis=(2, 4), dtype=dtype).reshape(m, -1)
        if self.transform != "none":
            xp.maximum(x, 0, out=x)
            (xp.sqrt if self.transform == "sqrt" else xp.log1p)(x, out=x)
        if self.normalize != "none":
            if self.normalize == "sum":
                s = x.sum(axis=1, dtype=np.float64)
            else:
                s = xp.sqrt(xp.einsum("ij,ij->i", x, x, dtype=np.float64))
            s = xp.where(s != 0, s, 1.0).astype(dtype)
            x /= s[:, None]
        return xp.ascontiguousarray(x)

    def record(self) -> dict:
        """JSON-able description (the mask as its shape and hidden-pixel count)."""
        out = {"transform": self.transform, "binning": self.binning, "normalize": self.normalize,
               "detector_mask": None}
        if self.mask is not None:
            out["detector_mask"] = {"shape": list(self.mask.shape), "hidden_pixels": int(self.mask.sum())}
        return out


def load_mask(ref: str):
    """``"FILE.h5:/dataset"`` -> the (ky, kx) mask array (nonzero = hidden)."""
    from fastem.io import open_h5, parse_ref
    from fastem.io.hdf5 import find_dataset

    path, ds_name = parse_ref(ref)
    with open_h5(path) as f:
        ds = find_dataset(f, ds_name, file_label=str(path))
        arr = ds[()]
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise InputError(f"{ref}: a detector mask must be a 2D (ky, kx) array, got shape {arr.shape}")
    return arr
