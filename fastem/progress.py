"""Progress display shared by every long-running command and API call (tqdm).

Honours ``fastem.config.settings.quiet`` (the CLI's ``--quiet``): then nothing is drawn but the
object still accepts ``update``/``set_postfix`` calls, so callers never branch on verbosity.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from .config import settings


def progress(total: int | None = None, desc: str = "", unit: str = "it", disable: bool | None = None, **kwargs):
    """A tqdm progress bar (``iterations, rate, time left``) or a silent stand-in when quiet.

    Use ``bar.set_postfix(R_F=f"{r:.4f}")`` to show the current figure of merit.
    """
    if disable is None:
        disable = settings.quiet
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=False, **kwargs)
