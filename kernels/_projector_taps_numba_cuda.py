"""Device helpers shared by the Numba CUDA projector kernels (twins of ``cuda/projector_taps.cuh``).

A voxel ``(ix, iy, iz)`` lands on the detector of projection ``k`` at
``(u, v) = coeffs[k] @ (ix, iy, iz, 1)``; its sub-point ``s`` (``back_project.SUBPOINT_OFFSETS``:
the centre, or the 2 x 2 x-z sub-pixels at +-1/4) at ``(u, v) + coeffs[k, :, (0, 2)] @ (dx, dz)``,
spread bilinearly over the pixel cell ``iu, iu + 1`` x ``iv, iv + 1``. The forward kernel splats
into that cell, the back projection reads it with the same weights (the adjoint pair).
"""

import math

from numba import cuda


@cuda.jit(device=True, inline=True)
def subpoint_offset(s, subpoints):
    """Object-space offset ``(dx, dz)`` of sub-point ``s`` (``back_project.SUBPOINT_OFFSETS``; dy = 0)."""
    if subpoints == 1:
        return 0.0, 0.0
    return (-0.25 if s < 2 else 0.25), (-0.25 if s % 2 == 0 else 0.25)


@cuda.jit(device=True, inline=True)
def voxel_index(idx, ny, nx):
    """``(ix, iy, iz)`` of flat index ``idx`` in a C-ordered (nz, ny, nx) volume."""
    return idx % nx, (idx // nx) % ny, idx // (nx * ny)


@cuda.jit(device=True, inline=True)
def voxel_uv(coeffs, k, ix, iy, iz):
    """Detector coordinates ``(u, v)`` of the voxel centre for projection ``k``."""
    u = coeffs[k, 0, 0] * ix + coeffs[k, 0, 1] * iy + coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
    v = coeffs[k, 1, 0] * ix + coeffs[k, 1, 1] * iy + coeffs[k, 1, 2] * iz + coeffs[k, 1, 3]
    return u, v


@cuda.jit(device=True, inline=True)
def subpoint_cell(coeffs, k, u0, v0, s, subpoints):
    """The bilinear cell of sub-point ``s`` of the voxel at ``(u0, v0)``: ``(iu, iv, wu, wv)``, the
    left/top tap indices and the weights of the right column / lower row."""
    dx, dz = subpoint_offset(s, subpoints)
    u = u0 + coeffs[k, 0, 0] * dx + coeffs[k, 0, 2] * dz
    v = v0 + coeffs[k, 1, 0] * dx + coeffs[k, 1, 2] * dz
    fu = math.floor(u)
    fv = math.floor(v)
    return int(fu), int(fv), u - fu, v - fv
