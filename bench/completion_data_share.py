"""How much of a completion-GAN training step is data generation (issue 17: "the training
commands' data generation on workers where it helps").

``fastem scan train`` simulates fresh partial scans every step (:class:`fastem.nn.completion_data.
PartialScanSource`, a pure function of the step). Moving that to Dask workers can only save the
generation's share of a step, so this script measures, in one run and on one thread each:

* ``generate``: median seconds of ``PartialScanSource.batch(step)`` over ``--steps`` steps;
* ``train step``: seconds per step of ``train_completion`` (the generation included), from the
  difference of a ``--steps``-step run and a 2-step run (set-up and validation cancel);

and reports the share ``generate / train step``.

    .venv/bin/python bench/completion_data_share.py              # -> bench/results/completion_data_share.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=22)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    import torch

    from fastem.config import set_threads
    from fastem.nn.completion_data import PartialScanSource
    from fastem.nn.train_completion import train_completion

    set_threads(a.threads)
    torch.set_num_threads(a.threads)
    src = PartialScanSource(synthetic=256, crop=a.crop, batch_size=a.batch, coverage=0.05, seed=0)
    src.batch(0)                                           # warm-up (Numba compilation)
    gen = []
    for s in range(1, a.steps + 1):
        t = time.perf_counter()
        src.batch(s)
        gen.append(time.perf_counter() - t)

    def run(steps):
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            train_completion(Path(d) / "m.pt", synthetic=256, steps=steps, crop=a.crop, batch=a.batch,
                             validate_every=10 ** 6, checkpoint_every=10 ** 6, val_count=4)
            return time.perf_counter() - t

    run(2)                                                 # warm-up
    short, long_ = run(2), run(a.steps)
    step = (long_ - short) / (a.steps - 2)
    g = statistics.median(gen)
    row = {"crop": a.crop, "batch": a.batch, "threads": a.threads, "generate_s": g, "train_step_s": step,
           "share": g / step}
    cmd = "python bench/completion_data_share.py " + " ".join(argv if argv is not None else sys.argv[1:])
    from fastem.bench import write_result_text

    a.out.mkdir(parents=True, exist_ok=True)
    write_result_text(a.out / "completion_data_share.json", json.dumps({"command": cmd.strip(), **row}, indent=1))
    text = (f"# Data generation share of a completion-GAN training step (CPU)\n\n`{cmd.strip()}`\n\n"
            f"| crop | batch | threads | generate (s/step) | train step incl. generation (s) | share |\n"
            f"|---|---|---|---|---|---|\n| {a.crop} | {a.batch} | {a.threads} | {g:.4f} | {step:.3f} | "
            f"{100 * g / step:.1f} % |\n")
    write_result_text(a.out / "completion_data_share.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
