"""Angle and shift refinement: alternate reconstruction and per-projection alignment.

The thesis' experimental workflow (seed 004, section 3.4, its ref. [112]) refines the
orientation and the detector shift of every projection before the final reconstruction. Each
round here

1. reconstructs the volume with RESIRE from the current angles and shifts
   (``iterations`` iterations, from zero);
2. for every projection ``k`` independently, searches the three Euler angles and the 2D detector
   shift ``(du, dv)`` near their current values for the smallest residual
   ``sum_masked (P_k(O; angles, shift) - b_k)^2`` of that projection against the reconstruction,
   by a compass (pattern) search: the 10 neighbours ``+-step`` along each of the 5 parameters are
   projected in one batch (the ``linear`` projector, 4 object-space sub-points), the best one
   is taken when it lowers the residual, otherwise the steps are halved (from ``angle_step``
   degrees / ``shift_step`` pixels down to 1/64 of them), never leaving the box ``+-max_angle``,
   ``+-max_shift`` around the input values;
3. removes from the corrections the common rigid motion of the object (a rotation ``Q``:
   ``A_k -> A_k Q``, and a translation ``t``: ``(du_k, dv_k) += A_k[:2] t``;
   :func:`remove_rigid_motion`): it is not determined by the data, and leaving it in lets the
   frame drift from round to round; for a single tilt axis also the tilt-scale mode
   (:func:`remove_tilt_scale`: all tilts scaled by ``1 + eps``, nearly the same data as an
   object stretched along the beam).

The R-factor of each round's reconstruction (thesis eq. 3.9) is recorded, and one more for the
reconstruction with the final geometry when the caller runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..errors import InputError
from ..kernels.back_project import BORDER
from ..kernels.forward_project import forward_project
from ._validate import as_array, as_float, as_int
from .problem import TomoProblem
from .projection_geometry import effective_rotations, projection_coefficients

__all__ = ["AlignmentResult", "refine_alignment", "projection_residuals", "remove_rigid_motion", "remove_tilt_scale",
           "euler_zyx"]


@dataclass
class AlignmentResult:
    """Outcome of :func:`refine_alignment`.

    Attributes
    ----------
    angles : ndarray (n, 3) float64
        Refined Euler ZYX angles (degrees, the input's convention).
    shifts : ndarray (n, 2) float64
        Refined detector shifts (du, dv) in pixels (columns, rows).
    r_factors : list of float
        R-factor (eq. 3.9) of the reconstruction of every round (with that round's input geometry).
    residuals : list of ndarray (n,)
        Per-projection residual norms ``||P_k O - b_k||`` after every round's search.
    volume : ndarray (nz, ny, nx) float32
        The last round's reconstruction.
    """

    angles: np.ndarray
    shifts: np.ndarray
    r_factors: list = field(default_factory=list)
    residuals: list = field(default_factory=list)
    volume: np.ndarray | None = None


def euler_zyx(R) -> np.ndarray:
    """Euler ZYX angles (degrees, (n, 3)) of rotations ``R = Z(phi) Y(theta) X(psi)`` (n, 3, 3)."""
    R = np.asarray(R, dtype=np.float64)
    theta = np.arcsin(np.clip(-R[:, 2, 0], -1.0, 1.0))
    phi = np.arctan2(R[:, 1, 0], R[:, 0, 0])
    psi = np.arctan2(R[:, 2, 1], R[:, 2, 2])
    return np.rad2deg(np.stack([phi, theta, psi], axis=1))


def remove_rigid_motion(ref_angles, ref_shifts, angles, shifts, convention: str = "fastem"):
    """``(angles, shifts)`` with the common rigid motion of the object relative to the reference removed.

    A rotation ``Q`` and a translation ``t`` applied to the object change every projection's
    effective rotation to ``A_k Q`` and its shifts by ``A_k[:2] t``; neither is determined by the
    data. ``Q`` is the rotation closest to ``sum_k A_ref,k^T A_k`` (orthogonal Procrustes), ``t``
    the least-squares fit of the shift differences; both are taken out.
    """
    A_ref = effective_rotations(ref_angles, convention)
    A = effective_rotations(angles, convention)
    U, _, Vt = np.linalg.svd(np.einsum("kji,kjl->il", A_ref, A))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    Q = U @ D @ Vt  # A_k ~ A_ref,k Q
    A_fixed = A @ Q.T
    R = A_fixed if convention == "fastem" else np.transpose(A_fixed, (0, 2, 1))
    out_a = euler_zyx(R)
    # keep the angles next to the given ones (same branch)
    out_a = np.asarray(angles, dtype=np.float64).reshape(-1, 3) + ((out_a - np.asarray(angles).reshape(-1, 3)
                                                                     + 180.0) % 360.0 - 180.0)
    d = np.asarray(shifts, dtype=np.float64) - np.asarray(ref_shifts, dtype=np.float64)
    M = A_fixed[:, :2, :].reshape(-1, 3)
    t, *_ = np.linalg.lstsq(M, d.reshape(-1), rcond=None)
    return out_a, np.asarray(ref_shifts, dtype=np.float64) + d - (M @ t).reshape(-1, 2)


def remove_tilt_scale(ref_angles, angles) -> np.ndarray:
    """``angles`` with the tilt-scale component of their tilt corrections removed (single tilt axis).

    Scaling every tilt of a single-axis series by ``1 + eps`` is nearly indistinguishable from
    stretching the object along the beam (for a compact object and small ``eps``), so the data
    hardly determine it and the refinement drifts along it; for a series whose reference angles
    are all ``(0, theta_k, 0)`` the least-squares ``eps`` of ``theta_k' - theta_k ~ eps *
    (theta_k - mean)`` is taken out. Other series are returned unchanged.
    """
    ref = np.asarray(ref_angles, dtype=np.float64).reshape(-1, 3)
    out = np.array(angles, dtype=np.float64).reshape(-1, 3)
    if np.any(ref[:, 0] != 0.0) or np.any(ref[:, 2] != 0.0):
        return out
    t = ref[:, 1] - ref[:, 1].mean()
    tt = float(t @ t)
    if tt > 0.0:
        out[:, 1] -= t * (float(t @ (out[:, 1] - ref[:, 1])) / tt)
    return out


def _coefficients(angles, shifts, geometry, convention):
    rot = effective_rotations(angles, convention)
    c = projection_coefficients(rot, geometry.volume_shape, geometry.detector_shape, geometry.center)
    c[:, 0, 3] += shifts[:, 0]
    c[:, 1, 3] += shifts[:, 1]
    return c


def projection_residuals(volume, data, mask, geometry, angles, shifts, convention: str = "fastem"):
    """``||(P_k(volume) - b_k) M_k||`` for candidate parameters, float64 (m,).

    ``angles`` (m, 3), ``shifts`` (m, 2): m candidate geometries, each compared with the matching
    image of ``data`` (m, rows, cols) under ``mask`` (m, rows, cols) (0/1 floats).
    """
    c = _coefficients(angles, shifts, geometry, convention)
    rows, cols = geometry.detector_shape
    out = np.empty((c.shape[0], rows + 2 * BORDER, cols + 2 * BORDER), np.float32)  # the kernel's fast layout
    forward_project(volume, c, out, subpoints=4, border=BORDER)
    d = (out[:, BORDER:BORDER + rows, BORDER:BORDER + cols] - data) * mask
    return np.sqrt(np.einsum("kij,kij->k", d, d, dtype=np.float64))


def _search(volume, b, m, geometry, a0, s0, convention, angle_step, shift_step, lo, hi, free, min_gain):
    """Compass search of one projection's (3 angles, 2 shifts) from ``(a0, s0)`` inside ``[lo, hi]``.

    Only the parameters flagged in ``free`` (5 bools) move; a move is taken when it lowers the
    residual by more than the fraction ``min_gain`` (flat directions, e.g. an angle the
    reconstruction cannot resolve, then do not wander).
    """
    p = np.concatenate([a0, s0])
    steps = np.array([angle_step] * 3 + [shift_step] * 2, dtype=np.float64)
    idx = np.flatnonzero(free)
    m2 = 2 * idx.size
    bb = np.broadcast_to(b, (m2, *b.shape))
    mm = np.broadcast_to(m, (m2, *m.shape))
    best = float(projection_residuals(volume, bb[:1], mm[:1], geometry, p[None, :3], p[None, 3:], convention)[0])
    floor = steps / 64.0
    while np.any(steps[idx] >= floor[idx]):
        cand = np.repeat(p[None, :], m2, axis=0)
        for i, j in enumerate(idx):
            cand[2 * i, j] += steps[j]
            cand[2 * i + 1, j] -= steps[j]
        cand = np.clip(cand, lo, hi)
        r = projection_residuals(volume, bb, mm, geometry, cand[:, :3], cand[:, 3:], convention)
        j = int(np.argmin(r))
        if r[j] < best * (1.0 - min_gain):
            best = float(r[j])
            p = cand[j]
        else:
            steps *= 0.5
    return p[:3], p[3:], best


PARAMETERS = ("phi", "theta", "psi", "du", "dv")


def _free_parameters(parameters, angles) -> np.ndarray:
    """The 5 bools of ``parameters`` (see :func:`refine_alignment`)."""
    if isinstance(parameters, str):
        if parameters == "all":
            return np.ones(5, bool)
        if parameters == "auto":
            single = not (np.any(angles[:, 0] != 0.0) or np.any(angles[:, 2] != 0.0))
            return np.array([not single, True, not single, True, True])
        parameters = [parameters]
    names = [str(x) for x in parameters]
    bad = [x for x in names if x not in PARAMETERS]
    if bad or not names:
        raise InputError(f"parameters must be 'auto', 'all' or names from {', '.join(PARAMETERS)}; got {parameters!r}")
    return np.array([x in names for x in PARAMETERS])


def refine_alignment(projections, angles, *, rounds: int, iterations: int = 100, projector: str = "linear",
                     step: float = 2.0, positivity: bool = True, mask=None, volume_shape=None, thickness=None,
                     center=None, convention: str = "fastem", shifts=None, angle_step: float = 1.0,
                     shift_step: float = 1.0, max_angle: float = 5.0, max_shift: float = 5.0,
                     shifts_only_rounds: int = 1, min_gain: float = 1e-3, parameters="auto", device=None,
                     callback=None) -> AlignmentResult:
    """Refine every projection's Euler angles and detector shift (module docstring).

    Parameters
    ----------
    projections : array_like (n, rows, cols)
    angles : array_like (n, 3) Euler ZYX degrees, or (n,) tilts about y
    rounds : int >= 1
        Reconstruction + search rounds.
    iterations : int
        RESIRE iterations of every round's reconstruction.
    projector, step, positivity : see :class:`fastem.tomo.Resire`
    mask, volume_shape, thickness, center, convention : see :class:`fastem.tomo.TomoProblem`
    shifts : array_like (n, 2), optional
        Starting detector shifts (du, dv), pixels; default zeros.
    angle_step, shift_step : float
        Initial search steps (degrees, pixels); the search stops at 1/64 of them.
    max_angle, max_shift : float
        The search never goes further than this from the input angles / shifts.
    shifts_only_rounds : int
        The first rounds refine the shifts only (the first reconstructions are too blurred to
        resolve angles; a projection's shift is found first, then its angles with it).
    min_gain : float
        Smallest relative residual decrease for which the search moves (default 0.1 %).
    parameters : "auto", "all" or a sequence of names from ("phi", "theta", "psi", "du", "dv")
        Which parameters the search moves. ``"auto"``: for a single-axis series (every input phi
        and psi 0) the tilt and both shifts (the data of one tilt axis hardly constrain
        rotations about the other axes, and letting them move only adds drift), otherwise all.
    device : Device-like
        Where the reconstructions run (the searches run on the CPU).
    callback : callable, optional
        ``callback(round_index, result)`` after every round (progress reporting).

    Returns
    -------
    AlignmentResult
    """
    from .resire import Resire

    rounds = as_int(rounds, "rounds", minimum=1)
    shifts_only_rounds = as_int(shifts_only_rounds, "shifts_only_rounds", minimum=0)
    min_gain = as_float(min_gain, "min_gain", minimum=0.0)
    iterations = as_int(iterations, "iterations", minimum=1)
    angle_step = as_float(angle_step, "angle_step", positive=True)
    shift_step = as_float(shift_step, "shift_step", positive=True)
    max_angle = as_float(max_angle, "max_angle", positive=True)
    max_shift = as_float(max_shift, "max_shift", positive=True)
    a = np.asarray(as_array(angles, "angles"), dtype=np.float64)
    if a.ndim == 1:
        a = np.stack([np.zeros_like(a), a, np.zeros_like(a)], axis=1)
    if a.ndim != 2 or a.shape[1] != 3:
        raise InputError(f"angles must be (n,) tilts or (n, 3) Euler angles, got shape {a.shape}")
    n = a.shape[0]
    s = np.zeros((n, 2)) if shifts is None else np.array(as_array(shifts, "shifts"), dtype=np.float64)
    if s.shape != (n, 2):
        raise InputError(f"shifts must be ({n}, 2) (du, dv) pixels, got shape {s.shape}")
    free_all = _free_parameters(parameters, a)
    a_in, s_in = a.copy(), s.copy()
    result = AlignmentResult(angles=a.copy(), shifts=s.copy())
    for r in range(rounds):
        problem = TomoProblem(projections, result.angles, volume_shape=volume_shape, thickness=thickness, mask=mask,
                              device=device, center=center, convention=convention, shifts=result.shifts)
        solver = Resire(problem, projector=projector, step=step, positivity=positivity)
        rec = solver.run(iterations)
        result.r_factors.append(float(rec.r_factor))
        vol = np.ascontiguousarray(backend.to_host(rec.volume, dtype=np.float32))
        geo = problem.geometry
        data = backend.to_device(problem.data).astype(np.float32) / np.float32(problem.scale)  # host, input units
        msk = backend.to_device(problem.mask).astype(np.float32)
        new_a, new_s, res = np.empty_like(a), np.empty_like(s), np.empty(n)
        box = np.array([max_angle] * 3 + [max_shift] * 2)
        shift_free = np.array([False, False, False, True, True])
        for k in range(n):
            p_in = np.concatenate([a_in[k], s_in[k]])
            args = (convention, angle_step, shift_step, p_in - box, p_in + box)
            ak, sk, res[k] = _search(vol, data[k], msk[k], geo, result.angles[k], result.shifts[k], *args,
                                     shift_free, min_gain)
            if r >= shifts_only_rounds:
                ak, sk, res[k] = _search(vol, data[k], msk[k], geo, ak, sk, *args, free_all, min_gain)
            new_a[k], new_s[k] = ak, sk
        # remove the common rigid motion of the object (not determined by the data) from the corrections
        new_a, new_s = remove_rigid_motion(a_in, s_in, new_a, new_s, convention)
        new_a = remove_tilt_scale(a_in, new_a)
        result.angles, result.shifts, result.volume = new_a, new_s, vol
        result.residuals.append(res)
        if callback is not None:
            callback(r, result)
    return result
