"""Deprecated: the scan domain's job module is :mod:`fastem.scan.job` (as ``fastem.phase.job``).

Every name of the old module still resolves here, with a ``DeprecationWarning`` at import.
"""

import warnings

from . import job as _job
from .job import *  # noqa: F401,F403

warnings.warn("fastem.scan.files was renamed fastem.scan.job; import from there", DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_job, name)
