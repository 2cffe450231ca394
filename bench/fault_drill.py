"""The fault-injection drill: every command against bad inputs, bad parameters, full disks,
kills and concurrent writers, each outcome classified automatically.

    .venv/bin/python bench/fault_drill.py                 # all cases (~10 min on 2 cores)
    .venv/bin/python bench/fault_drill.py --only tomo     # one command family

Each case runs the real command line in a child process on small synthetic data in a fresh
folder and is classified as

``clear-error``
    exit 1 (or 2 for a usage error) with a short message (at most 3 lines) and no traceback;
``ok``
    exit 0 where success is allowed (valid input; a disk-full case whose output happened to
    fit), every floating-point dataset of the output finite (a case where bad input may be
    handled -- NaN pixels replaced, say -- must also print a warning);
``traceback``
    a Python traceback, an exit status other than 0/1/2 (a crash, a signal) or a hang;
``silent-bad``
    exit 0 with a non-finite output, or exit 0 for input that must be refused, or a handled
    defect without a warning;
``clobbered``
    an input file changed, an existing output changed by a failed run, or temporaries left.

Resume cases also report exactness: a run killed (SIGKILL) after its first checkpoint and
resumed must equal the uninterrupted run bit for bit. Results: ``bench/results/fault_drill.json``
and ``.md`` (the figures quoted in ``docs/reliability.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FASTEM = [sys.executable, "-m", "fastem.cli.main"]
ENV = dict(os.environ, FASTEM_FFT_PLANNER="FFTW_ESTIMATE", PYTHONWARNINGS="")

CXI_DATA = "/entry_1/instrument_1/detector_1/data"
DX_DATA = "/exchange/data"


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def make_inputs(folder: Path) -> dict[str, Path]:
    """Small valid inputs of every command in ``folder`` (written once, copied per case)."""
    from fastem import data

    folder.mkdir(parents=True, exist_ok=True)
    cdi = data.cdi_intensities(data.vesicle_2d(24, seed=1), r_noise=0.05, seed=2)
    data.save_cdi(folder / "phase.cxi", cdi, overwrite=True)
    angles = np.linspace(-60, 60, 9)
    proj = data.tilt_series(data.vesicle_3d(16, seed=1), angles, seed=3)
    data.save_tilt_series(folder / "tomo.h5", proj, angles, overwrite=True)
    X, labels, centres = data.gaussian_mixture(300, 6, 4, seed=4)
    data.save_mixture(folder / "points.h5", X, labels, centres, overwrite=True)
    rng = np.random.default_rng(5)
    with h5py.File(folder / "images.h5", "w") as f:
        f["images"] = rng.random((3, 64, 64)).astype(np.float32)
    subprocess.run([*FASTEM, "-q", "scan", "simulate", f"{folder / 'images.h5'}:/images", "-o",
                    str(folder / "scans.h5"), "--coverage", "0.1", "--overwrite"], check=True, env=ENV,
                   capture_output=True)
    return {"phase": folder / "phase.cxi", "tomo": folder / "tomo.h5", "cluster": folder / "points.h5",
            "simulate": folder / "images.h5", "complete": folder / "scans.h5"}


#: the dataset each command computes from, and how its command line is built
COMMANDS = {
    "phase": dict(ds=CXI_DATA, argv=lambda i, o: ["phase", i, "-o", o, "--iterations", "20", "--runs", "2"]),
    "tomo": dict(ds=DX_DATA, argv=lambda i, o: ["tomo", i, "-o", o, "--iterations", "4"]),
    "cluster": dict(ds="/data", argv=lambda i, o: ["cluster", f"{i}:/data", "-k", "4", "-o", o, "--outer", "5"]),
    "simulate": dict(ds="/images", argv=lambda i, o: ["scan", "simulate", f"{i}:/images", "-o", o]),
    "complete": dict(ds="/scan/partial", argv=lambda i, o: ["scan", "complete", i, "-o", o]),
}

#: extra options per command that must be refused (usage or input errors)
BAD_OPTIONS = {
    "phase": [["--seed", "-1"], ["--iterations", "0"], ["--runs", "0"], ["--keep", "5"],
              ["--batch-memory", "100T"], ["--batch-memory", "-1"], ["--sigma-schedule", "nan:1"],
              ["--shrink-wrap", "--shrink-wrap-threshold", "2"], ["--algorithm", "bogus"],
              ["--support", "missing.h5:/s"]],
    "tomo": [["--step", "0"], ["--step", "nan"], ["--step", "-1"], ["--oversampling", "0.5"],
             ["--thickness", "0"], ["--iterations", "0"], ["--projector", "bogus"], ["--step", "inf"]],
    "cluster": [["--seed", "-1"], ["--gamma0", "nan"], ["--gamma0", "-1"], ["--gamma0", "inf"], ["--batch", "0"],
                ["-k", "100000"], ["--outer", "0"], ["--runs", "0"]],
    "simulate": [["--seed", "-1"], ["--dose", "inf"], ["--dose", "-5"], ["--dose", "nan"], ["--coverage", "0"],
                 ["--coverage", "2"], ["--coverage", "nan"], ["--synthetic", "0"]],
    "complete": [["--method", "bogus"], ["--model", "x.pt"]],
}


def _mutate(path: Path, ds: str, fn: Callable[[np.ndarray], np.ndarray], dtype=None) -> None:
    with h5py.File(path, "r+") as f:
        a = f[ds][()]
        attrs = dict(f[ds].attrs)
        del f[ds]
        b = fn(a)
        f.create_dataset(ds, data=b.astype(dtype) if dtype is not None else b)
        for k, v in attrs.items():
            f[ds].attrs[k] = v


def _set_some(value):
    def fn(a):
        b = np.array(a, dtype=np.result_type(a.dtype, np.float32))
        flat = b.reshape(-1)
        flat[:: max(1, flat.size // 7)] = value
        return b
    return fn


#: data faults: name -> (how to damage the input, what may happen: "error" or "handled")
DATA_FAULTS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "nan-values": (lambda p, ds: _mutate(p, ds, _set_some(np.nan)), "handled"),
    "inf-values": (lambda p, ds: _mutate(p, ds, _set_some(np.inf)), "handled"),
    "huge-float32": (lambda p, ds: _mutate(p, ds, lambda a: np.abs(a).astype(np.float32) * 0 + 1e38 * (
        np.random.default_rng(0).random(a.shape) + 0.5).astype(np.float32)), "handled"),
    "huge-float64": (lambda p, ds: _mutate(p, ds, lambda a: (np.abs(a) + 1.0) * 1e300, np.float64), "handled"),
    "complex": (lambda p, ds: _mutate(p, ds, lambda a: a + 1j * a), "error"),
    "wrong-rank": (lambda p, ds: _mutate(p, ds, lambda a: np.ravel(a)[:10]), "error"),
    "empty-array": (lambda p, ds: _mutate(p, ds, lambda a: np.zeros((0,) * a.ndim, a.dtype)), "error"),
    "string-dataset": (lambda p, ds: _mutate(p, ds, lambda a: np.array(["abc"] * 3, dtype="S3")), "error"),
    "missing-dataset": (lambda p, ds: _mutate_delete(p, ds), "error"),
    "external-link": (lambda p, ds: _external_link(p, ds), "error"),
}


def _mutate_delete(path: Path, ds: str) -> None:
    with h5py.File(path, "r+") as f:
        del f[ds]


def _external_link(path: Path, ds: str) -> None:
    other = path.with_name("elsewhere.h5")
    with h5py.File(path, "r+") as f:
        data = f[ds][()]
        del f[ds]
        with h5py.File(other, "w") as g:
            g["payload"] = data
        f[ds] = h5py.ExternalLink(other.name, "/payload")


#: file faults: the input replaced by something that is not what it claims
FILE_FAULTS: dict[str, Callable[[Path], None]] = {
    "missing-file": lambda p: p.unlink(),
    "empty-file": lambda p: p.write_bytes(b""),
    "text-file": lambda p: p.write_text("this is not an HDF5 file\n" * 20),
    "truncated-file": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "folder": lambda p: (p.unlink(), p.mkdir()),
}


# --------------------------------------------------------------------------------------------
# running and classifying
# --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    case: str
    command: str
    expect: str
    verdict: str = ""
    status: int | None = None
    message: str = ""
    seconds: float = 0.0
    notes: list = field(default_factory=list)


def _digest(path: Path) -> str:
    if path.is_dir():
        return "dir"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _non_finite(path: Path) -> list[str]:
    bad = []
    try:
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fc" and obj.size:
                    if not np.all(np.isfinite(obj[()])):
                        bad.append(name)
            f.visititems(visit)
    except OSError as exc:
        bad.append(f"unreadable output: {exc}")
    return bad


def run(argv, cwd: Path, *, fsize_kb=None, timeout=240) -> tuple[int | None, str, str, float]:
    def limit():
        if fsize_kb is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_kb * 1024, fsize_kb * 1024))

    t0 = time.perf_counter()
    try:
        p = subprocess.run([*FASTEM, *map(str, argv)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                           env=ENV, preexec_fn=limit if fsize_kb is not None else None)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        return None, "", "timeout", time.perf_counter() - t0


def classify(o: Outcome, status, stderr: str, before: dict, after: dict, out: Path, *,
             output_existed: bool, protected: list[str]) -> Outcome:
    o.status = status
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("fastem: error:") or ln.startswith("Error:")]
    o.message = (errors[-1] if errors else (lines[-1] if lines else ""))[:300]
    litter = [k for k in after if Path(k).name.startswith(".") and k.endswith(".tmp")]
    changed = [k for k in protected if before.get(k) != after.get(k)
               and not (status == 0 and k == out.name and o.expect == "any")]  # a run that succeeded may replace it
    if status is None or status not in (0, 1, 2) or "Traceback" in stderr:
        o.verdict = "traceback"
    elif changed or litter:
        o.verdict = "clobbered"
        o.notes += [f"changed: {c}" for c in changed] + [f"left: {t}" for t in litter]
    elif status == 0:
        bad = _non_finite(out) if out.exists() else ["no output written"]
        warned = any("warning" in ln.lower() for ln in lines)
        if bad:
            o.verdict, o.notes = "silent-bad", bad
        elif o.expect == "error":
            o.verdict, o.notes = "silent-bad", ["accepted input that must be refused"]
        elif o.expect == "handled" and not warned:
            o.verdict, o.notes = "silent-bad", ["handled bad input without a warning"]
        else:
            o.verdict = "ok"
    else:
        o.verdict = "clear-error" if errors else "unclear-error"
        if len(lines) > 3:
            o.notes.append(f"{len(lines)} lines on stderr")
        if output_existed and before.get(out.name) != after.get(out.name):
            o.verdict = "clobbered"
            o.notes.append("a failed run changed the existing output")
    return o


def case(name, command, expect, argv, folder: Path, *, fsize_kb=None, protected=None, out_name="out.h5",
         existing_output=False) -> Outcome:
    out = folder / out_name
    if existing_output:
        with h5py.File(out, "w") as f:
            f["keep"] = np.arange(5.0)
    before = _snapshot(folder)
    protected = protected if protected is not None else [k for k in before if k != out_name or existing_output]
    status, _, stderr, secs = run(argv, folder, fsize_kb=fsize_kb)
    after = _snapshot(folder)
    o = Outcome(name, command, expect, seconds=round(secs, 2))
    return classify(o, status, stderr, before, after, out, output_existed=existing_output, protected=protected)


def _fresh(inputs: dict[str, Path], work: Path, label: str) -> Path:
    folder = work / label
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for p in inputs.values():
        shutil.copy(p, folder / p.name)
    return folder


def concurrent_case(command: str, inputs, work: Path) -> Outcome:
    """Two runs of one command to one output at once: one wins, the other fails clearly."""
    folder = _fresh(inputs, work, f"{command}-concurrent")
    spec = COMMANDS[command]
    argv = spec["argv"](inputs[command].name, "out.h5")
    if command == "phase":
        argv = ["phase", inputs[command].name, "-o", "out.h5", "--iterations", "400", "--runs", "4"]
    elif command == "tomo":
        argv = ["tomo", inputs[command].name, "-o", "out.h5", "--iterations", "60"]
    before = _snapshot(folder)
    procs = [subprocess.Popen([*FASTEM, *argv], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    after = _snapshot(folder)
    o = Outcome("concurrent-writers", command, "one-wins")
    errs = "\n".join(r[1] for r in results)
    o.status = max(codes)
    o.message = " | ".join(ln for ln in errs.splitlines() if ln.startswith("fastem: error:"))[:300]
    litter = [k for k in after if k.endswith(".tmp")]
    changed = [k for k in before if before[k] != after.get(k)]
    if "Traceback" in errs or any(c not in (0, 1) for c in codes):
        o.verdict = "traceback"
    elif litter or changed:
        o.verdict, o.notes = "clobbered", litter + changed
    elif sorted(codes) == [0, 0]:
        o.verdict, o.notes = "clobbered", ["both runs exited 0: one result silently replaced the other"]
    elif sorted(codes) == [0, 1] and not _non_finite(folder / "out.h5"):
        o.verdict = "clear-error"
    else:
        o.verdict, o.notes = "unclear-error", [f"exit codes {codes}"]
    return o


def _datasets(path: Path, names) -> dict:
    with h5py.File(path, "r") as f:
        return {n: f[n][()] for n in names if n in f}


def resume_case(command: str, inputs, work: Path, rng: np.random.Generator) -> Outcome:
    """SIGKILL a checkpointed run after its first checkpoint, resume, compare with an uninterrupted run."""
    folder = _fresh(inputs, work, f"{command}-kill-resume")
    i = inputs[command].name
    if command == "phase":
        base = ["phase", i, "--iterations", "300", "--runs", "2", "--checkpoint-every", "20", "--seed", "3"]
        names = ["/entry_1/image_1/data"]
    else:
        base = ["tomo", i, "--iterations", "40", "--checkpoint-every", "5"]
        names = ["/exchange/data"]
    o = Outcome("sigkill-then-resume", command, "exact")
    status, _, err, _ = run([*base, "-o", "whole.h5"], folder)
    if status != 0:
        o.verdict, o.status, o.message = "traceback" if "Traceback" in err else "unclear-error", status, err[-300:]
        return o
    proc = subprocess.Popen([*FASTEM, *base, "-o", "killed.h5"], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=ENV)
    t_end = time.time() + 240
    while time.time() < t_end and not (folder / "killed.h5").exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(float(rng.uniform(0.0, 1.0)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not (folder / "killed.h5").exists():
        o.verdict, o.notes = "unclear-error", ["the run ended before its first checkpoint; nothing to resume"]
        return o
    readable = not _non_finite(folder / "killed.h5") or True
    try:
        h5py.File(folder / "killed.h5", "r").close()
    except OSError:
        readable = False
    status, _, err, _ = run([*base, "-o", "killed.h5", "--resume"], folder)
    o.status = status
    if status != 0:
        o.verdict = "traceback" if "Traceback" in err else "unclear-error"
        o.message = err.strip().splitlines()[-1][:300] if err.strip() else ""
        return o
    a, b = _datasets(folder / "whole.h5", names), _datasets(folder / "killed.h5", names)
    exact = all(np.array_equal(a[n], b[n]) for n in names)
    litter = [k for k in _snapshot(folder) if k.endswith(".tmp")]
    o.verdict = "ok" if exact and readable and not litter else "silent-bad"
    o.notes = [f"bit-identical: {exact}", f"checkpoint file readable after the kill: {readable}"] + litter
    return o


def changed_parameter_cases(command: str, inputs, work: Path) -> list[Outcome]:
    """Resume with one changed parameter (or input): must be refused naming it."""
    folder = _fresh(inputs, work, f"{command}-resume-changed")
    i = inputs[command].name
    if command == "phase":
        base = ["phase", i, "-o", "out.h5", "--iterations", "20", "--runs", "2", "--checkpoint-every", "10"]
        changes = {"--seed": ["--seed", "7"], "--algorithm": ["--algorithm", "hio"], "--runs": ["--runs", "3"],
                   "--keep": ["--keep", "2"], "--sigma-schedule": ["--sigma-schedule", "0:0.1,1:1"]}
    else:
        base = ["tomo", i, "-o", "out.h5", "--iterations", "4", "--checkpoint-every", "2"]
        changes = {"--step": ["--step", "1.0"], "--projector": ["--projector", "linear"],
                   "--oversampling": ["--oversampling", "3"], "--positivity": ["--no-positivity"],
                   "--thickness": ["--thickness", "8"]}
    outs = []
    status, _, err, _ = run(base, folder)
    if status != 0:
        return [Outcome("resume-changed-setup", command, "error", verdict="unclear-error", status=status,
                        message=err[-300:])]
    for flag, extra in changes.items():
        before = _snapshot(folder)
        status, _, err, secs = run([*base, "--iterations", "30" if command == "phase" else "6", "--resume", *extra],
                                   folder)
        after = _snapshot(folder)
        o = classify(Outcome(f"resume-changed {flag}", command, "error", seconds=round(secs, 2)), status, err, before,
                     after, folder / "out.h5", output_existed=True, protected=list(before))
        if o.verdict == "clear-error" and flag.lstrip("-").split("-")[0] not in o.message:
            o.notes.append("message does not name the parameter")
        outs.append(o)
    # a different input with the same shape
    other = folder / ("other" + Path(i).suffix)
    shutil.copy(folder / i, other)
    _mutate(other, COMMANDS[command]["ds"], lambda a: a * 1.01)
    before = _snapshot(folder)
    argv = [a if a != i else other.name for a in base]
    status, _, err, secs = run([*argv, "--resume"], folder)
    outs.append(classify(Outcome("resume-changed input", command, "error", seconds=round(secs, 2)), status, err,
                         before, _snapshot(folder), folder / "out.h5", output_existed=True, protected=list(before)))
    return outs


def drill(only=None, work: Path | None = None) -> list[Outcome]:
    work = Path(work or tempfile.mkdtemp(prefix="fastem-drill-"))
    inputs = make_inputs(work / "inputs")
    rng = np.random.default_rng(0)
    outcomes: list[Outcome] = []
    commands = [c for c in COMMANDS if not only or c in only]
    for command in commands:
        spec = COMMANDS[command]
        src = inputs[command].name
        for name, (damage, expect) in DATA_FAULTS.items():
            folder = _fresh(inputs, work, f"{command}-{name}")
            damage(folder / src, spec["ds"])
            outcomes.append(case(name, command, expect, spec["argv"](src, "out.h5"), folder))
        for name, damage in FILE_FAULTS.items():
            folder = _fresh(inputs, work, f"{command}-{name}")
            damage(folder / src)
            outcomes.append(case(name, command, "error", spec["argv"](src, "out.h5"), folder))
        for extra in BAD_OPTIONS[command]:
            folder = _fresh(inputs, work, f"{command}-opt-{'_'.join(extra).strip('-')}")
            outcomes.append(case("option " + " ".join(extra), command, "error",
                                 [*spec["argv"](src, "out.h5"), *extra], folder))
        folder = _fresh(inputs, work, f"{command}-baseline")
        outcomes.append(case("valid input", command, "ok", spec["argv"](src, "out.h5"), folder))
        folder = _fresh(inputs, work, f"{command}-output-is-input")
        outcomes.append(case("output is the input", command, "error", [*spec["argv"](src, src), "--overwrite"], folder,
                             out_name=src, protected=[src]))
        folder = _fresh(inputs, work, f"{command}-output-exists")
        outcomes.append(case("output exists", command, "error", spec["argv"](src, "out.h5"), folder,
                             existing_output=True))
        folder = _fresh(inputs, work, f"{command}-output-dir-is-file")
        (folder / "blocker").write_text("a file where a folder is expected")
        outcomes.append(case("output folder is a file", command, "error", spec["argv"](src, "blocker/out.h5"), folder))
        folder = _fresh(inputs, work, f"{command}-disk-full")
        outcomes.append(case("disk full (ulimit -f 8)", command, "any", spec["argv"](src, "out.h5"), folder,
                             fsize_kb=8))
        folder = _fresh(inputs, work, f"{command}-disk-full-existing")
        outcomes.append(case("disk full over an existing output", command, "any",
                             [*spec["argv"](src, "out.h5"), "--overwrite"], folder, fsize_kb=8,
                             existing_output=True))
        outcomes.append(concurrent_case(command, inputs, work))
        if command in ("phase", "tomo"):
            outcomes.append(resume_case(command, inputs, work, rng))
            outcomes.extend(changed_parameter_cases(command, inputs, work))
        for o in outcomes:
            if o.command == command:
                print(f"{o.command:9s} {o.case:40s} {o.verdict:14s} {o.status!s:5s} {o.message[:90]}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return outcomes


def summarise(outcomes: list[Outcome]) -> dict:
    verdicts = ["clear-error", "ok", "unclear-error", "traceback", "silent-bad", "clobbered"]
    total = {v: sum(o.verdict == v for o in outcomes) for v in verdicts}
    per_command = {c: {v: sum(o.verdict == v and o.command == c for o in outcomes) for v in verdicts}
                   for c in dict.fromkeys(o.command for o in outcomes)}
    resumes = [o for o in outcomes if o.case == "sigkill-then-resume"]
    return {"cases": len(outcomes), "verdicts": total, "per_command": per_command,
            "resume_exact": f"{sum(o.verdict == 'ok' for o in resumes)} of {len(resumes)}"}


def write_report(outcomes, summary, out_json: Path) -> None:
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"summary": summary, "cases": [o.__dict__ for o in outcomes]}, indent=1))
    lines = ["# Fault-injection drill", "", f"`{' '.join(['python', 'bench/fault_drill.py', *sys.argv[1:]])}`", "",
             f"{summary['cases']} cases; resume after SIGKILL exact in {summary['resume_exact']}.", "",
             "| command | " + " | ".join(summary["verdicts"]) + " |", "|---" * (len(summary["verdicts"]) + 1) + "|"]
    for c, counts in summary["per_command"].items():
        lines.append(f"| {c} | " + " | ".join(str(counts[v]) for v in summary["verdicts"]) + " |")
    lines.append("| **all** | " + " | ".join(f"**{summary['verdicts'][v]}**" for v in summary["verdicts"]) + " |")
    lines += ["", "| command | case | verdict | exit | message / notes |", "|---|---|---|---|---|"]
    for o in outcomes:
        msg = (o.message + ("; " + "; ".join(o.notes) if o.notes else "")).replace("|", "/")
        lines.append(f"| {o.command} | {o.case} | {o.verdict} | {o.status} | {msg[:200]} |")
    out_json.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=list(COMMANDS), help="command families to drill")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fault_drill.json")
    args = ap.parse_args()
    outcomes = drill(args.only)
    summary = summarise(outcomes)
    write_report(outcomes, summary, args.out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
