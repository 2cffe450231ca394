"""``fastem demo``: every main job end to end on built-in synthetic data.

Jobs are discovered, not registered: every subpackage ``fastem.<pkg>`` that has a ``demo``
module defining ``ORDER`` (int) and ``run(out_dir, *, overwrite=True, quick=False) -> list[dict]``
contributes one job. Jobs run in ``ORDER``; each writes under ``out_dir`` and returns summary
rows (``job``, ``output``, ``result``) that are printed as one table at the end. A failing job is
reported and the remaining jobs still run; the command then exits with status 1.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .config import settings
from .errors import OutputExistsError

__all__ = ["discover_jobs", "run_demo", "format_summary"]


def discover_jobs() -> list[tuple[str, Any]]:
    """``[(package name, demo module)]`` sorted by the modules' ``ORDER``."""
    import fastem

    jobs = []
    for info in pkgutil.iter_modules(fastem.__path__):
        if not info.ispkg:
            continue
        name = f"fastem.{info.name}.demo"
        if importlib.util.find_spec(name) is None:
            continue
        mod = importlib.import_module(name)
        if hasattr(mod, "run"):
            jobs.append((info.name, mod))
    return sorted(jobs, key=lambda j: (getattr(j[1], "ORDER", 100), j[0]))


def format_summary(rows: list[dict]) -> str:
    if not rows:
        return "(no results)"
    w_job = max(len("job"), *(len(str(r.get("job", ""))) for r in rows))
    w_out = max(len("output"), *(len(str(r.get("output", ""))) for r in rows))
    lines = [f"{'job':<{w_job}}  {'output':<{w_out}}  result", "-" * (w_job + w_out + 30)]
    for r in rows:
        lines.append(f"{str(r.get('job', '')):<{w_job}}  {str(r.get('output', '')):<{w_out}}  {r.get('result', '')}")
    return "\n".join(lines)


def run_demo(out_dir: Path | str = "demo-output", *, overwrite: bool = False, quick: bool = False,
             only: list[str] | None = None, echo: Callable[[str], Any] = print) -> tuple[list[dict], list[str]]:
    """Run the demo jobs; return (summary rows, names of failed jobs)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: demo output folder exists and is not empty (pass --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    jobs = discover_jobs()
    if only:
        known = {name for name, _ in jobs}
        missing = [o for o in only if o not in known]
        if missing:
            from .errors import InputError

            raise InputError(f"unknown demo job(s) {', '.join(missing)}; available: {', '.join(sorted(known))}")
        jobs = [(n, m) for n, m in jobs if n in only]
    rows: list[dict] = []
    failed: list[str] = []
    for name, mod in jobs:
        t0 = time.perf_counter()
        if not settings.quiet:
            echo(f"[demo] {name} ...")
        try:
            job_rows = mod.run(out, overwrite=True, quick=quick) or []
        except Exception as exc:  # report, keep going with the other jobs
            failed.append(name)
            rows.append({"job": name, "output": "-", "result": f"FAILED: {type(exc).__name__}: {exc}"})
            if settings.debug:
                echo(traceback.format_exc())
            continue
        dt = time.perf_counter() - t0
        for r in job_rows:
            r.setdefault("job", name)
            rows.append(r)
        if not settings.quiet:
            echo(f"[demo] {name} done in {dt:.1f} s")
    return rows, failed
