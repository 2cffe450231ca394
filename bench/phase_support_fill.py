"""Why the autocorrelation support estimate is loose with a beamstop (issue 15).

``autocorrelation_support`` fills the missing centre with a Gaussian fitted (least squares on
``log I``) to the known pixels within 3 px of it. This compares that fill with the true
(noise-free, same scale) intensities in the hole on the robustness grid's beamstop cells (objects
vesicle, pair, complex; 64^2 and 128^2; R_noise 3 %; seed 0), and records the support size it
leads to (``mode="auto"``) next to the object's size, and the support sizes three other fills
would give (computed here, not in the library): the true intensities in the hole (an oracle: what
a perfect fill reaches), the Gaussian capped at the largest measured value of the ring, and the
ring's mean as a constant. The library's fill is the Gaussian refined by
``fastem.phase.support._constrained_fill`` (the autocorrelation must vanish outside ``S - S``);
both are reported.

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
from bench import write_result_text  # noqa: E402


def main() -> int:
    from scipy.ndimage import binary_dilation

    from fastem.phase import autocorrelation_support
    from fastem.phase.support import _fill_missing_centre

    def support_px(filled):
        return int(autocorrelation_support(filled, None, mode="auto").sum())

    lines = ["# The beamstop fill of the autocorrelation support estimate (issue 15)", "",
             "Command: `bench/phase_support_fill.py`; R_noise 3 %, beamstop radius max(1.5, N/32) px, seed 0. "
             "Power = sum of the intensities over the hole; the truth is the noise-free |F u|^2 scaled to the "
             "measured total over the known pixels. Support: `autocorrelation_support(mode=\"auto\")` of the "
             "data with the hole filled each way (px).", "",
             "| N | object | hole px | object px | support without a beamstop | true hole (oracle) | "
             "Gaussian: power / true, peak / true, support | Gaussian + constrained (the library): power / true, "
             "peak / true, support | Gaussian capped at the ring's max | ring mean |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n in (64, 128):
        for name in ("vesicle", "pair", "complex"):
            obj = make_object(name, n)
            cdi = make_data(obj, 0.03, "beamstop", 0)
            known = cdi.known
            hole = ~known
            truth = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(cdi.object)))) ** 2
            truth *= cdi.intensities[known].sum() / truth[known].sum()
            gauss = _fill_missing_centre(cdi.intensities.astype(np.float64), known, refine=False)
            library = _fill_missing_centre(cdi.intensities.astype(np.float64), known)
            assert support_px(library) == int(autocorrelation_support(cdi.intensities, known, mode="auto").sum())
            free = make_data(obj, 0.03, "none", 0)
            supp0 = autocorrelation_support(free.intensities, free.known, mode="auto")
            ring = binary_dilation(hole, iterations=3) & known & (cdi.intensities > 0)
            cells = []
            for fill in (truth[hole], np.minimum(gauss[hole], cdi.intensities[ring].max()),
                         np.full(int(hole.sum()), cdi.intensities[ring].mean())):
                alt = gauss.copy()
                alt[hole] = fill
                cells.append(support_px(alt))

            def described(f):
                return (f"{f[hole].sum() / truth[hole].sum():.2f}, {f[hole].max() / truth[hole].max():.2f}, "
                        f"{support_px(f)}")

            lines.append(f"| {n} | {name} | {int(hole.sum())} | {int((np.abs(cdi.object) > 0).sum())} | "
                         f"{int(supp0.sum())} | {cells[0]} | {described(gauss)} | {described(library)} | "
                         f"{cells[1]} | {cells[2]} |")
            print(lines[-1], flush=True)
    out = ROOT / "bench" / "results" / "phase_support_fill.md"
    write_result_text(out, "\n".join(lines) + "\n")   # atomic, as every bench record
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
