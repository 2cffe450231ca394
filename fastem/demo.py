"""``fastem demo``: every main job end to end on built-in synthetic data.

Jobs are discovered, not registered: every subpackage ``fastem.<pkg>`` that has a ``demo``
module defining ``ORDER`` (int) and ``run(out_dir, *, overwrite=True, quick=False) -> list[dict]``
contributes one job. Jobs run in ``ORDER``; each writes under ``out_dir`` and returns summary
rows (``job``, ``output``, ``result``) that are printed as one table at the end. A failing job is
reported and the remaining jobs still run; the command then exits with status 1.

Resumable: each job that completes is recorded in ``<out_dir>/.fastem-demo.json`` (written
atomically, with its summary rows). A rerun without ``overwrite`` on a folder holding that
manifest skips the completed jobs and runs the missing or failed ones, so an interrupted demo
(Ctrl-C, SIGKILL, a full disk) is finished by running it again; temporaries left by a killed
run are removed first. A non-empty folder without the manifest is refused unless ``overwrite``;
a folder made with the other ``quick`` setting is refused too. One demo at a time per folder
(an exclusive lock).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .config import settings
from .errors import OutputExistsError

__all__ = ["discover_jobs", "run_demo", "format_summary", "MANIFEST"]

#: the record of completed jobs in a demo folder
MANIFEST = ".fastem-demo.json"
_MANIFEST_VERSION = 1
_FAILURES: list[BaseException] = []
_TEMP = re.compile(r"^\.(.+)\.\d+-[0-9a-f]+\.tmp$")


def discover_jobs() -> list[tuple[str, Any]]:
    """``[(package name, demo module)]`` sorted by the modules' ``ORDER``."""
    import fastem

    jobs = []
    for info in pkgutil.iter_modules(fastem.__path__):
        if not info.ispkg:
            continue
        name = f"fastem.{info.name}.demo"
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:   # the package needs an optional extra (fastem.nn: torch) and has no demo then
            continue
        if spec is None:
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


def _read_manifest(out: Path) -> dict | None:
    """The manifest of ``out`` (``None`` when there is none or it is not ours)."""
    path = out / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _MANIFEST_VERSION or not isinstance(data.get("jobs"), dict):
        return None
    return data


def _write_manifest(out: Path, manifest: dict) -> None:
    from .io import atomic_output

    with atomic_output(out / MANIFEST, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, default=str))


def _clean_temporaries(out: Path) -> None:
    """Remove temporaries (``.NAME.PID-XXXX.tmp``) of processes that no longer run, anywhere under ``out``."""
    from .io import clean_stale_temporaries

    for folder, _dirs, files in os.walk(out):
        for name in files:
            m = _TEMP.match(name)
            if m:
                clean_stale_temporaries(Path(folder) / m.group(1))


def _outputs_present(out: Path, rows: list) -> bool:
    """Every output a completed job reported (``output`` = a path under ``out``) still exists."""
    for r in rows:
        name = str(r.get("output", "")) if isinstance(r, dict) else ""
        looks_like_file = name and not any(c.isspace() for c in name) and Path(name).suffix
        if looks_like_file and not os.path.isabs(name) and not (out / name).exists():
            return False
    return True


def _start_manifest(out: Path, *, overwrite: bool, quick: bool) -> dict:
    """The manifest to continue (resume) or a fresh one; refuses a folder that is not a demo's."""
    fresh = {"version": _MANIFEST_VERSION, "quick": bool(quick), "jobs": {}}
    if overwrite or not out.exists():
        return fresh
    entries = [e for e in out.iterdir() if MANIFEST not in e.name or e.name == MANIFEST]  # not our lock/temporaries
    if not entries:
        return fresh
    manifest = _read_manifest(out)
    if manifest is None:
        raise OutputExistsError(f"{out}: demo output folder exists, is not empty and is not a fastem demo folder "
                                f"(pass --overwrite to reuse it, or choose another --out)")
    if bool(manifest.get("quick")) != bool(quick):
        made = "with --quick" if manifest.get("quick") else "without --quick"
        raise OutputExistsError(f"{out}: this demo folder was made {made}; run it the same way to complete it, "
                                f"or pass --overwrite to start again")
    return manifest


def run_demo(out_dir: Path | str = "demo-output", *, overwrite: bool = False, quick: bool = False,
             only: list[str] | None = None, echo: Callable[[str], Any] = print) -> tuple[list[dict], list[str]]:
    """Run the demo jobs; return (summary rows, names of failed jobs).

    Parameters
    ----------
    out_dir : path
        The demo folder (created).
    overwrite : bool
        Run every job again in a folder that holds anything (outputs are replaced).
        Without it, a folder of an interrupted demo is completed: jobs recorded as done in
        its manifest are skipped.
    quick : bool
        Tiny sizes.
    only : list of str, optional
        Run only these jobs.

    Raises
    ------
    OutputExistsError
        A non-empty folder that is not a demo folder, or one made with the other ``quick``.
    OutputBusyError
        Another demo is writing into the same folder.
    InputError
        Unknown job names.
    """
    from .io import output_lock

    if not isinstance(out_dir, (str, os.PathLike)):
        from .errors import InputError

        raise InputError(f"out_dir must be a folder name, got {type(out_dir).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from .errors import InputError

        raise InputError(f"{out}: the demo output is a file, not a folder; choose another --out")
    jobs = discover_jobs()
    if only:
        known = {name for name, _ in jobs}
        missing = [o for o in only if o not in known]
        if missing:
            from .errors import InputError

            raise InputError(f"unknown demo job(s) {', '.join(missing)}; available: {', '.join(sorted(known))}")
    manifest = _start_manifest(out, overwrite=overwrite, quick=quick)  # refuses before creating anything
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out / MANIFEST):
        manifest = _start_manifest(out, overwrite=overwrite, quick=quick)  # again, now that we hold the lock
        _clean_temporaries(out)
        _write_manifest(out, manifest)
        return _run_jobs(out, jobs, manifest, quick=quick, only=only, echo=echo)


def _run_jobs(out: Path, jobs, manifest: dict, *, quick: bool, only, echo) -> tuple[list[dict], list[str]]:
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
        done = manifest["jobs"].get(name)
        if isinstance(done, dict) and _outputs_present(out, done.get("rows", [])):
            if not settings.quiet:
                echo(f"[demo] {name}: already complete in {out} (skipped; --overwrite runs it again)")
            rows.extend(r for r in done.get("rows", []) if isinstance(r, dict))
            continue
        t0 = time.perf_counter()
        if not settings.quiet:
            echo(f"[demo] {name} ...")
        try:
            job_rows = mod.run(out, overwrite=True, quick=quick) or []
        except Exception as exc:  # report, keep going with the other jobs
            _FAILURES.append(exc)  # freeing a failed HDF5 write's frames can crash HDF5 (see cli/main.py)
            manifest["jobs"].pop(name, None)
            failed.append(name)
            rows.append({"job": name, "output": "-", "result": f"FAILED: {type(exc).__name__}: {exc}"})
            if settings.debug:
                echo(traceback.format_exc())
            continue
        dt = time.perf_counter() - t0
        for r in job_rows:
            r.setdefault("job", name)
            rows.append(r)
        from .io.provenance import to_jsonable

        manifest["jobs"][name] = {"rows": to_jsonable(list(job_rows)), "seconds": round(dt, 2),
                                  "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        _write_manifest(out, manifest)  # the job is complete only once this is on disk
        if not settings.quiet:
            echo(f"[demo] {name} done in {dt:.1f} s")
    return rows, failed
