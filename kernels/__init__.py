"""fastem's hand-written kernels (installed as ``fastem.kernels``).

Layout of one kernel ``foo`` (see ``axpy_norm`` for the worked example and the README section
"Adding a kernel"):

``foo.py``
    the public function: validation, the plain NumPy implementation (``engine="numpy"``, the
    float64 oracle of the tests) and dispatch on the arrays' device;
``_foo_numba.py``
    the CPU twin, ``@njit(parallel=True, cache=True)``;
``cuda/foo.cu``
    the CUDA C kernel(s), ``extern "C"``, loaded through ``_cuda.get_function`` (compiled once
    per device, cached);
``_foo_numba_cuda.py``
    optionally, a Numba CUDA version (also tested under the CUDA simulator).
"""

from .axpy_norm import axpy_norm
from .partial_scan import nearest_sampled, normalise_blur, sample_infill
from .phase_fourier import phase_fourier_update
from .phase_real import phase_real_update
from .phase_complex import phase_complex_update
from .phase_rfactor import hermitian_half, rfactor_half
from .scan_path import grid_dwell, spiral_dwell
from .back_project import back_project
from .forward_project import forward_project
from .projection_residual import projection_residual
from .central_slice import pad_rows, sample_central_slices, scatter_planes

__all__ = ["axpy_norm", "phase_fourier_update", "phase_real_update", "hermitian_half", "rfactor_half",
           "normalise_blur", "sample_infill", "nearest_sampled", "spiral_dwell", "grid_dwell",
           "back_project", "forward_project", "projection_residual", "pad_rows", "sample_central_slices",
           "scatter_planes"]
from .kmeans_assign import assign_accumulate  # noqa: E402
from .gather_rows import gather_rows  # noqa: E402

__all__ += ["assign_accumulate", "gather_rows"]
from .alrc_loss import alrc_loss, alrc_loss_grad  # noqa: E402
__all__ += ["alrc_loss", "alrc_loss_grad"]
from .fista_step import fista_extrapolate, fista_update  # noqa: E402
__all__ += ["fista_extrapolate", "fista_update"]
__all__ += ["phase_complex_update"]
