"""Deprecated: the ssl domain's job module is :mod:`fastem.ssl.job` (as ``fastem.phase.job``,
``fastem.scan.job``).

Every name of the old module still resolves here, with a ``DeprecationWarning`` at import.
"""

import warnings

from . import job as _job
from .job import *  # noqa: F401,F403

warnings.warn("fastem.ssl.jobs was renamed fastem.ssl.job; import from there", DeprecationWarning, stacklevel=2)


def __getattr__(name):
    return getattr(_job, name)
