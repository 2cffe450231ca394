"""ASTRA Toolbox 2D CPU as a peer: slice-by-slice projection and SIRT on single-axis data.

A tilt series about y decomposes into independent 2D problems, one per detector row / volume
y-slice: the slice ``volume[:, y, :]`` (z, x) and the sinogram ``projections[:, y, :]``. The
ASTRA image of a slice is that (z, x) array with its rows reversed (ASTRA's image y axis points
up), so that ASTRA's angle equals fastem's ``convention="fastem"`` tilt (without the reversal it
equals ``convention="thesis"``: ``tests/test_tomo_conventions.py``); both place index ``i`` at
``i - (n-1)/2`` and the axis at the detector middle ``(cols-1)/2``, so both map a voxel to the
same detector column: ``u = x cos(theta) + z sin(theta)``. Only the CPU algorithms are used (no CUDA here).
"""

from __future__ import annotations

import numpy as np

__all__ = ["available", "AstraSlices"]


def available() -> bool:
    try:
        import astra  # noqa: F401
    except Exception:
        return False
    return True


class AstraSlices:
    """ASTRA 2D CPU geometry for the y-slices of a (nz, ny, nx) volume tilted about y.

    Parameters
    ----------
    volume_shape : (nz, ny, nx)
    detector_cols : int
    tilts_deg : (n,) tilt angles about y
    projector : ASTRA CPU projector type ('linear' = Joseph, 'line', 'strip')
    """

    def __init__(self, volume_shape, detector_cols: int, tilts_deg, projector: str = "linear"):
        import astra

        self.astra = astra
        nz, self.ny, nx = (int(s) for s in volume_shape)
        self.nz, self.nx, self.cols = nz, nx, int(detector_cols)
        th = np.deg2rad(np.asarray(tilts_deg, dtype=np.float64))
        dx = dz = dc = 0.0  # same centring as fastem (geometric middle): no offsets
        u = np.stack([np.cos(th), np.sin(th)], axis=1)  # detector pixel vector in ASTRA (x, y)
        ray = np.stack([-np.sin(th), np.cos(th)], axis=1)
        d = (dx * u[:, 0] + dz * u[:, 1] - dc)[:, None] * u  # detector centre
        vectors = np.concatenate([ray, d, u], axis=1)
        self.vol_geom = astra.create_vol_geom(nz, nx)
        self.proj_geom = astra.create_proj_geom("parallel_vec", self.cols, vectors)
        self.projector_id = astra.create_projector(projector, self.proj_geom, self.vol_geom)
        self.operator = astra.OpTomo(self.projector_id)
        self.n_angles = th.size

    def slice_image(self, volume, y: int) -> np.ndarray:
        """The ASTRA image (rows reversed) of slice y of a (z, y, x) volume, float32."""
        return np.ascontiguousarray(volume[::-1, y, :], dtype=np.float32)

    def forward(self, volume) -> np.ndarray:
        """Projections (n, ny, cols) of a (z, y, x) volume, slice by slice."""
        out = np.empty((self.n_angles, self.ny, self.cols), np.float32)
        for y in range(self.ny):
            out[:, y, :] = self.operator.FP(self.slice_image(volume, y)).reshape(self.n_angles, self.cols)
        return out

    def back(self, projections) -> np.ndarray:
        """Back projection (z, y, x) of projections (n, ny, cols), slice by slice."""
        out = np.empty((self.nz, self.ny, self.nx), np.float32)
        for y in range(self.ny):
            img = self.operator.BP(np.ascontiguousarray(projections[:, y, :], dtype=np.float32))
            out[:, y, :] = img.reshape(self.nz, self.nx)[::-1]
        return out

    def sirt(self, projections, iterations: int, positivity: bool = True, mask=None) -> np.ndarray:
        """ASTRA's CPU SIRT on every y-slice; returns the (z, y, x) volume.

        ``mask``: (n, ny, cols), 0 where a projection pixel is unmeasured (ASTRA's
        ``SinogramMaskId`` option: those pixels are left out of SIRT's residual)."""
        astra = self.astra
        out = np.empty((self.nz, self.ny, self.nx), np.float32)
        for y in range(self.ny):
            sino_id = astra.data2d.create("-sino", self.proj_geom,
                                          np.ascontiguousarray(projections[:, y, :], dtype=np.float32))
            rec_id = astra.data2d.create("-vol", self.vol_geom, 0.0)
            ids = [sino_id, rec_id]
            cfg = astra.astra_dict("SIRT")
            cfg["ProjectorId"] = self.projector_id
            cfg["ProjectionDataId"] = sino_id
            cfg["ReconstructionDataId"] = rec_id
            cfg["option"] = {}
            if positivity:
                cfg["option"]["MinConstraint"] = 0.0
            if mask is not None:
                mask_id = astra.data2d.create("-sino", self.proj_geom,
                                              np.ascontiguousarray(mask[:, y, :] > 0, dtype=np.float32))
                cfg["option"]["SinogramMaskId"] = mask_id
                ids.append(mask_id)
            alg_id = astra.algorithm.create(cfg)
            astra.algorithm.run(alg_id, int(iterations))
            out[:, y, :] = astra.data2d.get(rec_id)[::-1]
            astra.algorithm.delete(alg_id)
            astra.data2d.delete(ids)
        return out

    def close(self) -> None:
        self.astra.projector.delete(self.projector_id)
