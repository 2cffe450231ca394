"""Deprecated: the phase solver module is :mod:`fastem.phase.solver` (issue 18: "engine" names the
kernel backend argument, this module is a solver).

Every name of the old module still resolves here, with a ``DeprecationWarning`` at import.
"""

import warnings

from . import solver as _solver
from .solver import *  # noqa: F401,F403

warnings.warn("fastem.phase.engine was renamed fastem.phase.solver; import from there", DeprecationWarning,
              stacklevel=2)


def __getattr__(name):
    return getattr(_solver, name)
