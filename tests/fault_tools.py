"""Helpers of the fault-injection suite (``tests/test_faults_*.py``).

Every fault case runs the real command line in a child process, as a user would, and checks
the outcome class: a clear one-line error (exit 1, ``fastem: error: ...``, no traceback), a
usage error (exit 2, click's message naming the flag), or success with a finite result.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

FASTEM = [sys.executable, "-m", "fastem.cli.main"]


def run_cli(args, *, cwd=None, fsize_kb: int | None = None, timeout: float = 300, env: dict | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``fastem ARGS`` in a child process and return the completed process (text mode).

    ``fsize_kb`` sets ``ulimit -f`` in the child (the disk-full drill: a write past it fails
    with EFBIG, and SIGXFSZ is ignored by fastem).
    """
    def limit():
        if fsize_kb is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_kb * 1024, fsize_kb * 1024))

    full_env = dict(os.environ)
    full_env.setdefault("FASTEM_FFT_PLANNER", "FFTW_ESTIMATE")
    full_env["PYTHONWARNINGS"] = full_env.get("PYTHONWARNINGS", "")
    if env:
        full_env.update(env)
    return subprocess.run([*FASTEM, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env, preexec_fn=limit if fsize_kb is not None else None, input=input)


def assert_clean_error(proc: subprocess.CompletedProcess, *words: str, status: int = 1) -> str:
    """Assert a one-line error: exit ``status``, no traceback, every word in the message; returns it."""
    err = proc.stderr
    assert "Traceback" not in err, f"traceback instead of a one-line error:\n{err}"
    assert proc.returncode == status, f"exit {proc.returncode} (expected {status}); stderr:\n{err}\nstdout:\n{proc.stdout}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if status == 1:
        errors = [ln for ln in lines if ln.startswith("fastem: error:")]
        assert len(errors) == 1, f"expected one 'fastem: error:' line, got:\n{err}"
        msg = errors[0]
    else:
        msg = err
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in the message: {msg}"
    return msg


def leftover_temporaries(folder) -> list[Path]:
    """Temporary files of fastem's naming (``.NAME.*.tmp``) under ``folder``."""
    return sorted(p for p in Path(folder).rglob(".*.tmp"))
