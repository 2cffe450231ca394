"""Phase retrieval: GPS-F / GPS-R (Pham et al. 2019, thesis ch. 2) and the ER, HIO and OSS
baselines on one batched two-FFT engine (spec ``gps.md``).

Entry points
------------
:func:`retrieve`
    Multi-start phase retrieval from diffraction intensities: returns a :class:`PhaseResult`
    (mean / variance of the best K runs, per-run R-factors, R-factor history).
:func:`prepare_problem`, :class:`PhaseConfig`, :func:`make_solver`
    The lower-level pieces (validated data on a device, parameters, the batched solvers).
:func:`autocorrelation_support`, :func:`check_support`
    Support estimate and validation.
:func:`r_factor`, :func:`r_real`, :func:`r_noise`, :func:`align`
    Figures of merit and ambiguity removal.
"""

from .solver import ALGORITHMS, PhaseConfig, Solver, initial_phases
from .metrics import align, r_factor, r_noise, r_real, twin
from .multistart import KeptSelection, PhaseResult, keep_best, keep_consistent, make_solver, retrieve
from .problem import PhaseProblem, prepare_problem
from .schedules import SigmaSchedule, parse_sigma_schedule
from .support import autocorrelation_support, check_support

__all__ = [
    "ALGORITHMS", "PhaseConfig", "Solver", "initial_phases", "align", "r_factor", "r_noise", "r_real", "twin",
    "PhaseResult", "keep_best", "keep_consistent", "KeptSelection", "make_solver", "retrieve", "PhaseProblem", "prepare_problem", "SigmaSchedule",
    "parse_sigma_schedule", "autocorrelation_support", "check_support",
]
