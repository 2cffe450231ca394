"""Angle and shift refinement (``fastem.tomo.refine``, ``fastem tomo --refine-angles``; issue 14).

A small blob phantom is projected with perturbed geometry (tilt angles off by up to +-1.5 deg,
zero mean, and detector shifts up to +-2 px, zero mean); the refinement starts from the nominal
tilts and no shifts. A common rigid motion of the object is not determined by the data, nor (nearly) a common
scaling of the tilts, so the recovered geometry is compared with the truth after removing both
(``remove_rigid_motion``, ``remove_tilt_scale``).
Pinned: shifts recovered within 0.3 px, the angles within 1.5 deg (at 20^3 the tilt angles
are NOT resolved to the issue's 0.3 deg), and the reconstruction with the refined geometry
better (R-factor and error against the phantom) than with the nominal one; the CLI writes the refined angles, shifts and
per-round R-factors. Tiny sizes (20^3, 15 projections) so that this runs in seconds.
"""

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.geometry import rotation_matrices
from fastem.tomo import LinearProjector, ProjectionGeometry, refine_alignment, relative_error, resire
from fastem.tomo.refine import euler_zyx, remove_rigid_motion, remove_tilt_scale

N, NPROJ = 20, 15


def _phantom(rng, n=N):
    z, y, x = np.meshgrid(*[np.arange(n) - (n - 1) / 2] * 3, indexing="ij")
    vol = np.zeros((n, n, n))
    for _ in range(10):
        c = rng.uniform(-0.3 * n, 0.3 * n, 3)
        s = rng.uniform(1.0, 2.0)
        vol += rng.uniform(0.5, 1.5) * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    return vol.astype(np.float32)


def _perturbed_series(vol, nproj, rng):
    """Tilts -60..60 perturbed by up to +-1.5 deg and shifts by up to +-2 px (both zero mean):
    ``(data, nominal, true_angles, true_shifts)``."""
    n = vol.shape[0]
    nominal = np.zeros((nproj, 3))
    nominal[:, 1] = np.linspace(-60, 60, nproj)
    da = np.zeros((nproj, 3))
    da[:, 1] = rng.uniform(-1.5, 1.5, nproj)
    da[:, 1] -= da[:, 1].mean()
    ds = rng.uniform(-2, 2, (nproj, 2))
    ds -= ds.mean(axis=0)
    true_a = nominal + da
    data = LinearProjector(ProjectionGeometry(vol.shape, (n, n), true_a, shifts=ds)).project(vol)
    return data, nominal, true_a, ds


@pytest.fixture(scope="module")
def perturbed():
    rng = np.random.default_rng(7)
    vol = _phantom(rng)
    data, nominal, true_a, ds = _perturbed_series(vol, NPROJ, rng)
    res = refine_alignment(data, nominal, rounds=5, iterations=40, projector="linear", min_gain=1e-4)
    return vol, data, nominal, true_a, ds, res


def test_refinement_recovers_shifts_and_improves_angles(perturbed):
    vol, data, nominal, true_a, ds, res = perturbed
    assert res.angles.shape == (NPROJ, 3) and res.shifts.shape == (NPROJ, 2)
    assert len(res.r_factors) == 5 and res.r_factors[-1] < 0.5 * res.r_factors[0]
    ga, gs = remove_rigid_motion(true_a, ds, res.angles, res.shifts)
    ga = remove_tilt_scale(true_a * [0, 1, 0], ga)  # (the truth's own tilt-scale part is not recoverable)
    shift_err = np.abs(gs - ds)
    assert shift_err.max() < 0.3, shift_err.max()
    na, ns = remove_rigid_motion(true_a, ds, nominal, np.zeros_like(ds))
    na = remove_tilt_scale(true_a * [0, 1, 0], na)
    assert np.abs(ns - ds).max() > 1.0  # the nominal geometry was far off
    # at this size the tilt angles are not resolved to 0.3 deg (issue 14's target, not met here):
    # the search must at least stay within the perturbation's range instead of wandering off
    assert np.abs(ga - true_a).max() < 1.5, np.abs(ga - true_a).max(axis=0)


def test_reconstruction_with_refined_geometry_is_better(perturbed):
    vol, data, nominal, true_a, ds, res = perturbed
    plain = resire(data, nominal, iterations=40, projector="linear", progress=False)
    refined = resire(data, res.angles, iterations=40, projector="linear", progress=False, shifts=res.shifts)
    assert refined.r_factor < 0.5 * plain.r_factor
    assert relative_error(refined.volume, vol) < relative_error(plain.volume, vol)


def test_shifted_geometry_moves_the_projection():
    # ProjectionGeometry(shifts=...): projection k moved by +du columns and +dv rows, both projectors
    from fastem.tomo import FourierSliceProjector

    rng = np.random.default_rng(1)
    vol = _phantom(rng, 12)
    angles = np.array([[0.0, 10.0, 0.0], [5.0, -30.0, 3.0]])
    base = ProjectionGeometry(vol.shape, (14, 16), angles)
    moved = ProjectionGeometry(vol.shape, (14, 16), angles, shifts=[[2.0, -1.0], [-3.0, 1.0]])
    for make in (LinearProjector, FourierSliceProjector):
        p0, p1 = make(base).project(vol), make(moved).project(vol)
        np.testing.assert_allclose(p1[0, :-1, 2:], p0[0, 1:, :-2], atol=2e-3 * np.abs(p0).max())
        np.testing.assert_allclose(p1[1, 1:, :-3], p0[1, :-1, 3:], atol=2e-3 * np.abs(p0).max())
        assert np.abs(p1 - p0).max() > 0.1 * np.abs(p0).max()
    with pytest.raises(InputError, match="shifts"):
        ProjectionGeometry(vol.shape, (14, 16), angles, shifts=[[1.0, 2.0]])


def test_euler_and_rigid_motion_helpers():
    rng = np.random.default_rng(2)
    a = rng.uniform(-80, 80, (6, 3))
    np.testing.assert_allclose(euler_zyx(rotation_matrices(a)), a, atol=1e-9)
    # a geometry moved rigidly (object rotated by Q, translated by t) is brought back exactly
    from fastem.geometry import rotation_zyx

    Q = rotation_zyx(2.0, -1.5, 1.0)
    s = rng.uniform(-1, 1, (6, 2))
    for convention in ("fastem", "thesis"):
        from fastem.tomo.projection_geometry import effective_rotations

        A = effective_rotations(a, convention) @ Q
        R = A if convention == "fastem" else np.transpose(A, (0, 2, 1))
        t = np.array([0.7, -0.4, 1.1])
        moved_s = s + A[:, :2, :] @ t
        back_a, back_s = remove_rigid_motion(a, s, euler_zyx(R), moved_s, convention)
        np.testing.assert_allclose(back_a, a, atol=1e-6)
        np.testing.assert_allclose(back_s, s, atol=1e-6)


def test_refine_rejects_bad_arguments():
    data = np.ones((3, 6, 6), np.float32)
    with pytest.raises(InputError, match="rounds"):
        refine_alignment(data, [0.0, 10.0, 20.0], rounds=0)
    with pytest.raises(InputError, match="shifts"):
        refine_alignment(data, [0.0, 10.0, 20.0], rounds=1, shifts=np.zeros((2, 2)))
    with pytest.raises(InputError, match="parameters"):
        refine_alignment(data, [0.0, 10.0, 20.0], rounds=1, parameters=["tilt"])
    with pytest.raises(InputError, match="parameters"):
        refine_alignment(data, [0.0, 10.0, 20.0], rounds=1, parameters=[])


def test_free_parameters_follow_the_series():
    from fastem.tomo.refine import _free_parameters

    single = np.stack([np.zeros(4), np.linspace(-30, 30, 4), np.zeros(4)], axis=1)
    euler = single + [[5.0, 0.0, 0.0]]
    assert _free_parameters("auto", single).tolist() == [False, True, False, True, True]
    assert _free_parameters("auto", euler).all() and _free_parameters("all", single).all()
    assert _free_parameters(["theta", "du"], euler).tolist() == [False, True, False, True, False]


def test_single_axis_refinement_leaves_phi_and_psi(perturbed):
    # "auto" on a single-axis series moves the tilt and the shifts only (no drift about other axes)
    *_, res = perturbed
    np.testing.assert_allclose(res.angles[:, [0, 2]], 0.0, atol=1e-6)


def test_cli_refine_angles_writes_the_refined_geometry(tmp_path):
    from click.testing import CliRunner

    from fastem import io
    from fastem.cli.main import app
    from fastem.data import save_tilt_series

    rng = np.random.default_rng(3)
    vol = _phantom(rng, 12)
    tilts = np.linspace(-60, 60, 9)
    shifts = np.zeros((9, 2))
    shifts[2] = (1.5, -1.0)
    # thesis convention (the CLI default): theta negated relative to fastem's
    data = LinearProjector(ProjectionGeometry(vol.shape, (12, 12), tilts, convention="thesis",
                                              shifts=shifts)).project(vol)
    path = tmp_path / "series.h5"
    save_tilt_series(path, data, tilts)
    out = tmp_path / "vol.h5"
    args = ["--device", "cpu", "tomo", str(path), "-o", str(out), "--iterations", "5", "--projector", "linear",
            "--refine-angles", "2", "--refine-iterations", "10"]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "refine round 2/2" in r.output
    saved = io.read_dxchange_volume(out)
    assert saved.results["refined_angles"].shape == (9, 3)
    assert saved.results["refined_shifts"].shape == (9, 2)
    rf = saved.results["refine_r_factors"]
    assert len(rf) == 3 and rf[1] < rf[0]  # 2 rounds + the final reconstruction
    assert saved.provenance["configuration"]["refine_angles"]["rounds"] == 2
    # the shifted projection moved the most, in the right direction
    moved = saved.results["refined_shifts"]
    assert np.argmax(np.abs(moved).sum(axis=1)) == 2 and moved[2, 0] > 0.5 and moved[2, 1] < -0.3
    # refused combinations: one line naming the flag
    r = CliRunner().invoke(app, ["--device", "cpu", "tomo", str(path), "-o", str(tmp_path / "f.h5"),
                                 "--algorithm", "fbp", "--refine-angles", "1"])
    assert r.exit_code != 0 and "--refine-angles" in r.output


@pytest.mark.slow
def test_refinement_reaches_the_issue_accuracy_at_64():
    # issue 14's test: tilts perturbed by up to +-1.5 deg and shifts by up to +-2 px are recovered
    # within 0.3 deg and 0.3 px (after removing the rigid motion and the tilt scale, which the data
    # do not determine); needs a reconstruction that fits the data well (150 iterations a round)
    # and an object large enough to resolve the angles (64^3; at 20^3-32^3 they are not).
    # About 10 minutes on 2 cores: `pytest -m slow tests/test_tomo_refine.py`.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from tomo_refine_check import phantom

    rng = np.random.default_rng(7)
    vol = phantom(64, rng)                      # the bench's phantom and draws (tomo_refine_check.md)
    data, nominal, true_a, ds = _perturbed_series(vol, 31, rng)
    res = refine_alignment(data, nominal, rounds=8, iterations=150, projector="linear", min_gain=1e-4)
    ga, gs = remove_rigid_motion(true_a, ds, res.angles, res.shifts)
    ga = remove_tilt_scale(true_a * [0, 1, 0], ga)
    assert np.abs(ga - true_a).max() < 0.3, np.abs(ga - true_a).max(axis=0)
    assert np.abs(gs - ds).max() < 0.3, np.abs(gs - ds).max(axis=0)
    ra, rs = remove_rigid_motion(true_a, ds, res.angles, res.shifts)
    plain = resire(data, nominal, iterations=150, projector="linear", progress=False)
    refined = resire(data, ra, iterations=150, projector="linear", progress=False, shifts=rs)
    assert refined.r_factor < 0.2 * plain.r_factor
    assert relative_error(refined.volume, vol) < relative_error(plain.volume, vol)
