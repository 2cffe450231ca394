"""The packaged default completion model (issue 12 section 3).

``fastem scan complete --method model`` without ``--model`` uses the completion GAN shipped
inside the package, ``fastem/models/completion_spiral_1-20.pt`` (spiral path, 1/20 dose
fraction, the paper's headline setting, seed 000 section 2), resolved with
:mod:`importlib.resources` so it is found in an installed wheel as in a checkout. The demo and
the benches use the same two functions.
"""

from __future__ import annotations

from pathlib import Path

from fastem.errors import InputError

__all__ = ["PACKAGED_MODEL", "MODELS_PACKAGE", "default_model_path", "require_default_model"]

#: package holding the shipped model files (package data ``*.pt``, ``*.md``)
MODELS_PACKAGE = "fastem.models"
#: file name of the default completion model (spiral path, 1/20 dose fraction)
PACKAGED_MODEL = "completion_spiral_1-20.pt"
#: the command that trains a model of the same kind (quoted in the error for a missing one)
TRAIN_HINT = "fastem scan train --synthetic 256 -o completion.pt --path spiral --coverage 0.05"


def default_model_path() -> Path:
    """Path of the packaged completion model (it may not exist: check with :func:`require_default_model`).

    Returns
    -------
    pathlib.Path
        ``<site-packages>/fastem/models/completion_spiral_1-20.pt`` (or the checkout's
        ``fastem/models/`` in an editable install).
    """
    from importlib.resources import files

    return Path(str(files(MODELS_PACKAGE) / PACKAGED_MODEL))


def require_default_model() -> Path:
    """:func:`default_model_path` if the file is there, else a one-line :class:`InputError`.

    The path comes from this module's ``default_model_path`` at call time (tests replace it).
    """
    path = Path(default_model_path())
    if not path.is_file():
        raise InputError(f"no packaged completion model ({path} is missing from this installation); train one with "
                         f"`{TRAIN_HINT}` and pass --model completion.pt")
    return path
