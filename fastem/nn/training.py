"""One generic training loop with exact checkpoint / resume, progress callbacks and curves.

A *task* (the completion GAN's :class:`~fastem.nn.completion_train.CompletionTask`, issue 13's
pretext / fine-tuning tasks) owns the networks and knows how to take one step; the
:class:`Trainer` drives it. A task provides:

``modules`` : dict of name -> ``nn.Module``
    Everything with state (networks, :class:`~fastem.train.ALRCLoss` modules).
``optimizers`` : dict of name -> ``torch.optim.Optimizer``
``schedulers`` : dict of name -> object with ``state_dict``/``load_state_dict`` (may be empty)
``total_steps`` : int
``train_step(step) -> dict[str, float]``
    One step; returns the losses/metrics to record.
``validate() -> dict[str, float]``
    Validation metrics (no grad).
``extra_state() -> dict`` / ``load_extra_state(dict)``
    Everything else (replay buffer, the task's ``numpy.random.Generator`` state, ...).
``fingerprint() -> dict``
    :func:`fastem.io.run_fingerprint` of the data and every training parameter; a checkpoint
    resumes only when it matches (:func:`fastem.io.check_fingerprint`).

A checkpoint (``torch.save`` of plain containers, written with :func:`fastem.io.atomic_output`
so a kill never leaves a partial file) holds the step counter, every module's and optimiser's
state, the task's extra state, the history and the RNG states of torch (CPU and CUDA), NumPy's
global generator and Python's ``random``: a run of N steps equals N/2 steps + resume + N/2
bit for bit on the CPU.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fastem.errors import InputError
from fastem.io import atomic_output, check_fingerprint

__all__ = ["Trainer", "History", "write_curves", "load_checkpoint", "CHECKPOINT_KIND", "numpy_state_to_json",
           "numpy_state_from_json"]

CHECKPOINT_KIND = "fastem-nn-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class History:
    """Loss / metric history: ``train`` and ``val`` are lists of ``{"step": int, name: float, ...}``."""

    train: list = field(default_factory=list)
    val: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"train": list(self.train), "val": list(self.val)}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(list(d.get("train", [])), list(d.get("val", [])))

    def series(self, name: str, which: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one metric (entries without it are skipped)."""
        rows = [r for r in getattr(self, which) if name in r]
        return (np.array([r["step"] for r in rows], dtype=np.int64),
                np.array([r[name] for r in rows], dtype=np.float64))

    def last(self, which: str = "val") -> dict:
        rows = getattr(self, which)
        return dict(rows[-1]) if rows else {}


def numpy_state_to_json(state) -> dict:
    """A ``bit_generator.state`` / ``np.random.get_state()`` as plain Python containers."""
    if isinstance(state, tuple):  # legacy np.random.get_state()
        name, key, pos, has_gauss, gauss = state
        return {"legacy": [name, np.asarray(key).tolist(), int(pos), int(has_gauss), float(gauss)]}

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return {"__array__": v.tolist(), "dtype": str(v.dtype)}
        if isinstance(v, np.generic):
            return v.item()
        return v

    return plain(state)


def numpy_state_from_json(state):
    """Inverse of :func:`numpy_state_to_json`."""
    if "legacy" in state:
        name, key, pos, has_gauss, gauss = state["legacy"]
        return (name, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss)

    def back(v):
        if isinstance(v, dict):
            if "__array__" in v:
                return np.asarray(v["__array__"], dtype=v["dtype"])
            return {k: back(x) for k, x in v.items()}
        return v

    return back(state)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state_to_json(np.random.get_state()),
             "python": _python_state(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state(s):
    version, internal, gauss = s
    return [int(version), list(internal), gauss]


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(numpy_state_from_json(state["numpy"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path, *, map_location="cpu") -> dict:
    """Read a training checkpoint written by :class:`Trainer` (one-line ``InputError`` otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint file")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure means a bad file
        raise InputError(f"{p}: not a readable fastem training checkpoint (corrupt or truncated: "
                         f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        raise InputError(f"{p}: not a fastem training checkpoint")
    return ckpt


class Trainer:
    """Drive a task's steps with validation, history, callbacks and atomic checkpoints.

    Parameters
    ----------
    task
        See the module docstring.
    checkpoint : path, optional
        Checkpoint file, rewritten atomically every ``checkpoint_every`` steps and at the end.
    checkpoint_every : int
        0: only at the end (when ``checkpoint`` is given).
    validate_every : int
        Run ``task.validate()`` every this many steps (and after the last); 0: only at the end.
    callback : callable, optional
        Called as ``callback(event)`` with ``event = {"kind": "train" | "val" | "checkpoint",
        "step": int, "total": int, **metrics}`` -- the CLI draws its progress bar from it.
    """

    def __init__(self, task, *, checkpoint=None, checkpoint_every: int = 0, validate_every: int = 0,
                 callback: Callable[[dict], None] | None = None):
        self.task = task
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every = int(checkpoint_every)
        self.validate_every = int(validate_every)
        self.callback = callback
        self.step = 0
        self.history = History()
        self.elapsed = 0.0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        t = self.task
        return {
            "kind": CHECKPOINT_KIND,
            "version": CHECKPOINT_VERSION,
            "step": int(self.step),
            "elapsed": float(self.elapsed),
            "fingerprint": t.fingerprint(),
            "modules": {k: m.state_dict() for k, m in t.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in t.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in getattr(t, "schedulers", {}).items()},
            "extra": t.extra_state(),
            "rng": _rng_state(),
            "history": self.history.to_dict(),
        }

    def load_state_dict(self, ckpt: dict, *, where: str = "checkpoint") -> None:
        t = self.task
        check_fingerprint(ckpt.get("fingerprint"), t.fingerprint(), where=where)
        missing = [k for k in t.modules if k not in ckpt["modules"]] + \
                  [k for k in t.optimizers if k not in ckpt["optimizers"]]
        if missing:
            raise InputError(f"{where}: the checkpoint lacks {', '.join(missing)}")
        for k, m in t.modules.items():
            m.load_state_dict(ckpt["modules"][k])
        for k, o in t.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        for k, s in getattr(t, "schedulers", {}).items():
            s.load_state_dict(ckpt["schedulers"][k])
        t.load_extra_state(ckpt["extra"])
        _set_rng_state(ckpt["rng"])
        self.step = int(ckpt["step"])
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        self.history = History.from_dict(ckpt.get("history", {}))

    def save(self, path=None) -> Path:
        """Write the checkpoint atomically (temporary file + rename); returns its path."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            raise InputError("no checkpoint path given")
        state = self.state_dict()
        with atomic_output(path, overwrite=True) as tmp:
            torch.save(state, tmp)
        self._emit({"kind": "checkpoint", "path": str(path)})
        return path

    def resume(self, path=None) -> int:
        """Load the checkpoint (refused unless the task's fingerprint matches); returns the step."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            raise InputError("no checkpoint path given")
        device = getattr(self.task, "device", "cpu")
        self.load_state_dict(load_checkpoint(path, map_location=device), where=str(path))
        return self.step

    # ------------------------------------------------------------------ loop
    def _emit(self, event: dict) -> None:
        if self.callback is not None:
            self.callback({"step": self.step, "total": self.task.total_steps, **event})

    def validate(self) -> dict:
        metrics = {k: float(v) for k, v in self.task.validate().items()}
        row = {"step": int(self.step), **metrics}
        self.history.val.append(row)
        self._emit({"kind": "val", **metrics})
        return metrics

    def run(self, until: int | None = None) -> History:
        """Train from the current step to ``until`` (default ``task.total_steps``)."""
        total = int(self.task.total_steps)
        until = total if until is None else min(int(until), total)
        t0 = time.perf_counter()
        try:
            while self.step < until:
                metrics = self.task.train_step(self.step)
                self.step += 1
                row = {"step": int(self.step), **{k: float(v) for k, v in metrics.items()}}
                bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
                if bad:
                    raise InputError(f"training diverged at step {self.step}: {', '.join(bad)} not finite")
                self.history.train.append(row)
                self._emit({"kind": "train", **metrics})
                if self.validate_every and self.step % self.validate_every == 0 and self.step < until:
                    self.validate()
                if (self.checkpoint is not None and self.checkpoint_every and self.step % self.checkpoint_every == 0
                        and self.step < until):
                    self.elapsed += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.save()
        finally:
            self.elapsed += time.perf_counter() - t0
        if not self.history.val or self.history.val[-1]["step"] != self.step:
            self.validate()
        if self.checkpoint is not None:
            self.save()
        return self.history


def write_curves(history: History, path, *, train: tuple = ("loss_g", "rmse"), val: tuple = ("rmse",),
                 baselines: dict | None = None, title: str = "", overwrite: bool = True) -> Path:
    """Loss / metric curves as a PNG (matplotlib, Agg), written atomically.

    One panel per training series (a running mean over ~1 % of the steps drawn over the raw
    values) and one for the validation series with optional horizontal ``baselines``
    (``{label: value}``, e.g. linear interpolation's RMSE).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    names = [n for n in train if history.series(n)[0].size]
    vnames = [n for n in val if history.series(n, "val")[0].size]
    panels = len(names) + (1 if vnames else 0)
    fig = Figure(figsize=(4.2 * max(panels, 1), 3.4))
    for i, n in enumerate(names):
        ax = fig.add_subplot(1, max(panels, 1), i + 1)
        s, v = history.series(n)
        ax.plot(s, v, lw=0.5, alpha=0.35, color="C0")
        k = max(1, len(v) // 100)
        if k > 1:
            sm = np.convolve(v, np.ones(k) / k, mode="valid")
            ax.plot(s[k - 1:], sm, lw=1.2, color="C0")
        ax.set_xlabel("step")
        ax.set_title(f"train {n}")
        if np.all(v > 0):
            ax.set_yscale("log")
    if vnames:
        ax = fig.add_subplot(1, panels, panels)
        for j, n in enumerate(vnames):
            s, v = history.series(n, "val")
            ax.plot(s, v, marker="o", ms=3, color=f"C{j + 1}", label=f"val {n}")
        for j, (label, value) in enumerate((baselines or {}).items()):
            ax.axhline(value, ls="--", lw=1, color=f"C{j + 4}", label=label)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.set_title("validation")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)
