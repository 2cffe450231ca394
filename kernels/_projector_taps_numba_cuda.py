"""Device helpers shared by the Numba CUDA projector kernels (twins of ``cuda/projector_taps.cuh``)."""

from numba import cuda


@cuda.jit(device=True, inline=True)
def subpoint_offset(s, subpoints):
    """Object-space offset ``(dx, dz)`` of sub-point ``s`` (``back_project.SUBPOINT_OFFSETS``; dy = 0)."""
    if subpoints == 1:
        return 0.0, 0.0
    return (-0.25 if s < 2 else 0.25), (-0.25 if s % 2 == 0 else 0.25)
