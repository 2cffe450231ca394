"""fastem benchmarks (installed as ``fastem.bench``): case modules in ``cases/``, results in ``results/``.

Run with ``fastem bench [NAME ...]``; see :mod:`fastem.benchmark` for the harness. Discovery lives
here, with the cases: the library (``fastem.*``) never imports this package.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def discover_cases() -> dict[str, Any]:
    """``{NAME: module}`` for every module in ``fastem.bench.cases`` defining ``NAME`` and ``run``."""
    from . import cases as pkg

    found = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            found[mod.NAME] = mod
    return found


def write_result_text(path, text: str) -> None:
    """Write a results file (JSON or Markdown) atomically, replacing an older one
    (:func:`fastem.io.atomic_output`: a temporary file renamed into place; never a torn file)."""
    from pathlib import Path

    from fastem.io import atomic_output

    with atomic_output(path, overwrite=True) as tmp:
        Path(tmp).write_text(text)


def write_results(out_dir, stem: str, report: dict, markdown: str) -> None:
    """``out_dir/stem.json`` (``report``) and ``out_dir/stem.md`` (``markdown``), each written
    atomically (:func:`write_result_text`); creates ``out_dir``."""
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_result_text(out / f"{stem}.json", json.dumps(report, indent=1))
    write_result_text(out / f"{stem}.md", markdown)


def median_seconds(fn, repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn()`` after one warm-up call."""
    import time

    import numpy as np

    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def tomo_case_parser(description: str, iterations: int, iterations_help: str, results):
    """The options shared by the R-free benches (``tomo_rfree_stop``, ``tomo_weight_sweep``):
    ``--n``, ``--iterations``, ``--threads``, ``--out`` (default ``results``) and ``--tag``."""
    import argparse
    from pathlib import Path

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--iterations", type=int, default=iterations, help=iterations_help)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=results)
    ap.add_argument("--tag", default="")
    return ap


def chosen_cases(ap, text: str, known) -> list:
    """The comma-separated ``--cases`` in ``text``, each one of ``known`` (``ap.error`` names the
    first that is not; blanks are skipped)."""
    cases = [c.strip() for c in text.split(",") if c.strip()]
    for c in cases:
        if c not in known:
            ap.error(f"--cases: unknown {c!r} (choose from {', '.join(known)})")
    return cases
