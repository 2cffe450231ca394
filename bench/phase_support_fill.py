"""Why the autocorrelation support estimate is loose with a beamstop (issue 15).

``autocorrelation_support`` fills the missing centre with a Gaussian fitted (least squares on
``log I``) to the known pixels within 3 px of it. This compares that fill with the true
(noise-free, same scale) intensities in the hole on the robustness grid's beamstop cells (objects
vesicle, pair, complex; 64^2 and 128^2; R_noise 3 %; seed 0), and records the support size it
leads to (``mode="auto"``) next to the object's size, and the support sizes three other fills
would give (computed here, not in the library): the true intensities in the hole (an oracle: what
a perfect fill reaches), the Gaussian capped at the largest measured value of the ring, the
ring's mean as a constant, and a fill constrained by the autocorrelation (:func:`constrained_fill`).

Usage::

    .venv/bin/python bench/phase_support_fill.py

Writes ``bench/results/phase_support_fill.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.phase_grid import make_data, make_object  # noqa: E402


def constrained_fill(filled: np.ndarray, hole: np.ndarray, rounds: int = 2, margin: int = 3) -> np.ndarray:
    """Hole values ``h >= 0`` that make the autocorrelation vanish where the object's cannot reach.

    The autocorrelation ``A = Re ifftn(I)`` is zero outside ``S - S``; the hole's values enter it
    linearly, ``A(x) = A_known(x) + (1/N) sum_j h_j cos(2 pi k_j . x / n)`` (centred ``k``, ``x``).
    Starting from ``filled`` (the library's Gaussian fill), each round estimates ``S - S`` (the
    ``mode="full"`` support of the current fill, dilated by ``margin``) and solves the non-negative
    least-squares problem ``min sum_{x outside} A(x)^2`` for ``h``. 2D or 3D (a small hole).
    """
    from scipy.ndimage import binary_dilation
    from scipy.optimize import nnls

    from fastem.phase import autocorrelation_support

    cur = np.array(filled, dtype=np.float64)
    shape = cur.shape
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    k = np.stack([g[hole] for g in grids], axis=1).astype(np.float64)          # (H, d) centred frequencies
    for _ in range(rounds):
        region = binary_dilation(autocorrelation_support(cur, None, mode="full"), iterations=margin)
        outside = ~region
        x = np.stack([g[outside] for g in grids], axis=1).astype(np.float64)   # (Z, d) centred positions
        phase = 2 * np.pi * sum(np.outer(x[:, a], k[:, a]) / shape[a] for a in range(len(shape)))
        m = np.cos(phase) / cur.size
        known_part = np.where(hole, 0.0, cur)
        a_known = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(known_part))).real[outside]
        h, _ = nnls(m, -a_known)
        cur[hole] = h
    return cur


def main() -> int:
    from scipy.ndimage import binary_dilation

    from fastem.phase import autocorrelation_support
    from fastem.phase.support import _fill_missing_centre

    lines = ["# The beamstop fill of the autocorrelation support estimate (issue 15)", "",
             "Command: `bench/phase_support_fill.py`; R_noise 3 %, beamstop radius max(1.5, N/32) px, seed 0. "
             "Power = sum of the intensities over the hole; the truth is the noise-free |F u|^2 scaled to the "
             "measured total over the known pixels.", "",
             "| N | object | hole px | filled / true power in the hole | filled / true peak | support px "
             "(object px) | support px without a beamstop | with the true hole (oracle) | Gaussian capped at "
             "the ring's max | ring mean | constrained by the autocorrelation (power / true) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in (64, 128):
        for name in ("vesicle", "pair", "complex"):
            obj = make_object(name, n)
            cdi = make_data(obj, 0.03, "beamstop", 0)
            known = cdi.known
            truth = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(cdi.object)))) ** 2
            truth *= cdi.intensities[known].sum() / truth[known].sum()
            filled = _fill_missing_centre(cdi.intensities.astype(np.float64), known)
            hole = ~known
            supp = autocorrelation_support(cdi.intensities, known, mode="auto")
            free = make_data(obj, 0.03, "none", 0)
            supp0 = autocorrelation_support(free.intensities, free.known, mode="auto")
            ring = binary_dilation(hole, iterations=3) & known & (cdi.intensities > 0)
            alternatives = []
            for fill in (truth[hole], np.minimum(filled[hole], cdi.intensities[ring].max()),
                         np.full(int(hole.sum()), cdi.intensities[ring].mean())):
                alt = filled.copy()
                alt[hole] = fill
                alternatives.append(int(autocorrelation_support(alt, None, mode="auto").sum()))
            fitted = constrained_fill(filled, hole)
            alternatives.append(f"{int(autocorrelation_support(fitted, None, mode='auto').sum())} "
                                f"({fitted[hole].sum() / truth[hole].sum():.2f})")
            lines.append(f"| {n} | {name} | {int(hole.sum())} | {filled[hole].sum() / truth[hole].sum():.2f} | "
                         f"{filled[hole].max() / truth[hole].max():.2f} | {int(supp.sum())} "
                         f"({int((np.abs(cdi.object) > 0).sum())}) | {int(supp0.sum())} | "
                         + " | ".join(str(v) for v in alternatives) + " |")
            print(lines[-1], flush=True)
    out = ROOT / "bench" / "results" / "phase_support_fill.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
