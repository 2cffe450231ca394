"""Tomography's structure (issue 18): public readers only, progress through a callback, no bars.

* ``fastem.tomo`` reads Data Exchange angles through the public
  :func:`fastem.io.dxchange.read_dxchange_angles` (the private ``_read_angles`` stays an alias);
* the solvers report progress to a ``progress`` object with ``update()`` (as ``fastem.phase``
  does) and never draw a bar themselves: only ``fastem tomo`` (the CLI) creates one.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastem.tomo
from fastem.errors import InputError

TOMO = Path(fastem.tomo.__file__).resolve().parent


def _imports(py: Path):
    for node in ast.walk(ast.parse(py.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, 0, []


# ---- item 4: the public angle reader ----------------------------------------------------------
def test_dxchange_angles_reader_is_public_and_used(tmp_path, rng):
    import h5py

    from fastem.io import dxchange

    theta = np.sort(rng.uniform(-70, 70, 5))
    path = dxchange.write_dxchange(tmp_path / "s.h5", rng.random((5, 4, 6)).astype(np.float32), theta=theta)
    with h5py.File(path, "r") as f:
        angles, got_theta = dxchange.read_dxchange_angles(f, path, 5)
        np.testing.assert_allclose(got_theta, theta, rtol=1e-12)
        np.testing.assert_allclose(angles[:, 1], theta, rtol=1e-12)
        assert angles.shape == (5, 3) and not angles[:, [0, 2]].any()
        with pytest.raises(InputError, match="4 projections in /exchange/data but 5 angles"):
            dxchange.read_dxchange_angles(f, path, 4)
    assert dxchange._read_angles is dxchange.read_dxchange_angles  # the old private name still works
    assert "read_dxchange_angles" in dxchange.__all__
    # no module of fastem.tomo imports a private name of fastem.io
    private = [(py.name, mod, n) for py in sorted(TOMO.glob("*.py")) for mod, level, names in _imports(py)
               if "io" in mod.split(".") for n in names if n.startswith("_")]
    assert private == []
    from fastem.tomo.job import _dx_angles

    a2, t2 = _dx_angles(path, 5)
    np.testing.assert_allclose(t2, theta, rtol=1e-12)
