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


# ---- item 3: progress through a callback; only the CLI draws a bar ----------------------------
class Recorder:
    """A tqdm-like progress sink that records what it is told."""

    def __init__(self):
        self.updates, self.postfix = [], []

    def update(self, n=1):
        self.updates.append(n)

    def set_postfix(self, refresh=True, **kw):
        self.postfix.append(kw["R_F"])


def _series(rng, n=7, shape=(8, 8, 8)):
    from fastem.tomo import ProjectionGeometry
    from fastem.tomo import _reference as ref

    geo = ProjectionGeometry(shape, shape[1:], np.linspace(-60, 60, n))
    truth = rng.random(shape) + 0.2
    return geo, ref.forward_project_linear(truth, geo).astype(np.float32)


def test_no_module_of_fastem_tomo_draws_a_bar():
    offenders = [(py.name, mod) for py in sorted(TOMO.glob("*.py")) for mod, level, names in _imports(py)
                 if mod.split(".")[-1] in ("progress", "tqdm") or "tqdm" in mod.split(".") or "progress" in names]
    assert offenders == []


def test_solver_reports_every_iteration_to_the_progress_object(rng):
    from fastem.tomo import resire, sirt

    geo, data = _series(rng)
    for solve in (resire, sirt):
        rec = Recorder()
        kw = dict(projector="linear") if solve is resire else {}
        res = solve(data, geo.angles, volume_shape=geo.volume_shape, iterations=4, progress=rec, **kw)
        assert rec.updates == [1, 1, 1, 1]
        assert rec.postfix == [f"{r:.4f}" for r in res.r_factor_history]
        assert res.r_factor_history[-1] < res.r_factor_history[0]
        # an object with update() only (no set_postfix) is enough
        seen = []
        solve(data, geo.angles, volume_shape=geo.volume_shape, iterations=3,
              progress=type("P", (), {"update": lambda self, n: seen.append(n)})(), **kw)
        assert seen == [1, 1, 1]


def test_progress_true_is_deprecated_and_bad_progress_is_refused(rng, capsys):
    from fastem.tomo import resire

    geo, data = _series(rng, n=5, shape=(6, 6, 6))
    with pytest.warns(DeprecationWarning, match="progress=True is deprecated"):
        res = resire(data, geo.angles, volume_shape=geo.volume_shape, iterations=2, projector="linear", progress=True)
    assert res.iterations == 2
    assert "it/s" not in capsys.readouterr().err  # nothing drawn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resire(data, geo.angles, volume_shape=geo.volume_shape, iterations=1, projector="linear", progress=False)
    with pytest.raises(InputError, match="^progress must be an object with update"):
        resire(data, geo.angles, volume_shape=geo.volume_shape, iterations=1, projector="linear", progress="yes")


def test_tomo_file_reports_resumed_iterations_first(rng, tmp_path):
    from fastem.data import save_tilt_series
    from fastem.tomo.job import tomo_file

    geo, data = _series(rng, n=7, shape=(8, 8, 8))
    src = tmp_path / "s.h5"
    save_tilt_series(src, data, np.linspace(-60, 60, 7))
    out = tmp_path / "v.h5"
    first = Recorder()
    tomo_file(src, out, iterations=3, projector="linear", device="cpu", progress=first)
    assert first.updates == [1, 1, 1]
    more = Recorder()
    res, _ = tomo_file(src, out, iterations=5, projector="linear", device="cpu", resume=True, progress=more)
    assert more.updates == [3, 1, 1] and res.iterations == 5
    with pytest.raises(InputError, match="^progress must be an object with update"):
        tomo_file(src, tmp_path / "w.h5", iterations=1, device="cpu", progress=object())
    assert not (tmp_path / "w.h5").exists()


def test_cli_draws_the_bar(rng, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import fastem.progress
    from fastem.cli.main import app
    from fastem.config import settings
    from fastem.data import save_tilt_series

    geo, data = _series(rng, n=7, shape=(8, 8, 8))
    src = tmp_path / "s.h5"
    save_tilt_series(src, data, np.linspace(-60, 60, 7))
    made = []

    class Bar(Recorder):  # stands in for the tqdm bar fastem.progress.progress returns
        closed = False

        def close(self):
            self.closed = True

    def spy(**kw):
        made.append((kw, Bar()))
        return made[-1][1]

    monkeypatch.setattr(fastem.progress, "progress", spy)
    saved = (settings.quiet, settings.device)
    try:
        r = CliRunner().invoke(app, ["--device", "cpu", "--quiet", "tomo", str(src), "-o", str(tmp_path / "v.h5"),
                                     "--iterations", "4", "--projector", "linear"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert len(made) == 1 and made[0][0]["total"] == 4 and made[0][1].updates == [1] * 4
        assert made[0][1].closed and len(made[0][1].postfix) == 4
        r = CliRunner().invoke(app, ["--device", "cpu", "--quiet", "tomo", str(src), "-o", str(tmp_path / "f.h5"),
                                     "--algorithm", "fbp"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert len(made) == 1  # FBP is one step: no bar
    finally:
        settings.quiet, settings.device = saved


# ---- item 6: the README's stated exception for fastem.tomo and CuPy arrays ------------------
@pytest.mark.gpu
def test_tomo_cupy_in_numpy_out(rng):
    """What README.md says of ``fastem.tomo``: CuPy projections are validated on the host, the run
    uses ``device=`` (the CPU by default, not the input's GPU), the solver's volume stays on that
    device, the result's volume is host NumPy float32, and CuPy angles are refused."""
    import cupy as cp

    from fastem.tomo import Resire, TomoProblem, resire

    geo, data = _series(rng)
    gpu_data = cp.asarray(data)
    on_cpu = resire(gpu_data, geo.angles, volume_shape=geo.volume_shape, iterations=3, projector="linear")
    assert on_cpu.config["device"].startswith("cpu")
    on_gpu = resire(gpu_data, geo.angles, volume_shape=geo.volume_shape, iterations=3, projector="linear",
                    device="cuda")
    assert on_gpu.config["device"].startswith("cuda")
    for res in (on_cpu, on_gpu):
        assert type(res.volume) is np.ndarray and res.volume.dtype == np.float32
    np.testing.assert_allclose(on_gpu.volume, on_cpu.volume, rtol=1e-3, atol=1e-3 * float(on_cpu.volume.max()))
    solver = Resire(TomoProblem(gpu_data, geo.angles, volume_shape=geo.volume_shape, device="cuda"), projector="linear")
    solver.iterate()
    assert isinstance(solver.volume, cp.ndarray)
    with pytest.raises(InputError, match="angles must be numbers"):
        resire(gpu_data, cp.asarray(geo.angles), volume_shape=geo.volume_shape, iterations=1, device="cuda")
