"""Ablations of the completion GAN on a short schedule (issue 12 s.4; seed 000 s.2.2-2.3).

Trains the full configuration and four ablations -- no adversarial stage, no ALRC (the
Huberised losses are not clipped), no experience replay, no auxiliary trainer -- with the same
seed, the same data (``fastem.nn.train_completion``: the same synthetic pool and stream of fresh
partial scans) and the same initial weights, then scores every network on one fixed validation
set (``make_validation_set`` with ``--eval-seed``, never a training pool) beside linear
interpolation on the same examples. RMSE on [0, 1] intensities. With several ``--seeds`` every
configuration is trained once per seed and the table gives the mean and spread, so a difference
smaller than the spread reads as what it is: nothing.

Writes ``bench/results/completion_ablation.json`` and ``.md`` (``completion_ablation_quick.*``
with ``--quick``) after every finished run. The run is resumable: configurations already in the
JSON (same settings) are skipped, and an interrupted training resumes from its checkpoint in
``--work-dir`` (default ``<out-dir>/completion_ablation_models/``, git-ignored; it holds the model
files too).

    .venv/bin/python bench/ablate_completion.py                    # 5 x 1500 steps, crop 64, batch 4
    .venv/bin/python bench/ablate_completion.py --seeds 0,1,2      # three seeds per configuration
    .venv/bin/python bench/ablate_completion.py --quick            # tiny networks, 6 steps: seconds
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

#: name -> (CompletionConfig switches, what is removed)
ABLATIONS = {
    "full": ({}, "nothing (the paper's method)"),
    "no-adversarial": ({"adversarial": False}, "the adversarial stage (eq. 8 and the discriminators)"),
    "no-alrc": ({"alrc": False}, "adaptive learning rate clipping of the losses (eq. 9)"),
    "no-replay": ({"replay": False}, "experience replay of hard examples (eqs. 11-15)"),
    "no-auxiliary": ({"auxiliary": False}, "the auxiliary trainer on the inner generator (eq. 7)"),
}
DEFAULTS = {"steps": 1500, "crop": 64, "batch": 4, "synthetic": 256, "val_count": 64, "eval_crop": 128,
            "eval_seed": 0, "path": "spiral", "coverage": 1 / 20, "width": 0.25}
QUICK = {"steps": 6, "crop": 64, "batch": 2, "synthetic": 4, "val_count": 2, "eval_crop": 64, "width": 0.1}
#: settings that must match for a finished run in the JSON to count (device and seeds may differ)
MATCHED = ("steps", "crop", "batch", "synthetic", "val_count", "eval_crop", "eval_seed", "path", "coverage", "width")


def run(out_dir=None, *, seeds=(0,), configs=None, device: str = "cpu", work_dir=None, quick: bool = False,
        restart: bool = False, echo=print, **settings) -> dict:
    """Train and score the ablations; write ``completion_ablation[_quick].{json,md}``; return the JSON dict.

    Parameters
    ----------
    out_dir : path, optional
        Results folder (default ``bench/results`` beside this script).
    seeds : sequence of int
        Training seeds (data stream and initial weights); every configuration runs once per seed.
    configs : sequence of str, optional
        Subset of :data:`ABLATIONS` (default all five).
    device : {"cpu", "cuda"}
    work_dir : path, optional
        Model files and checkpoints (default ``<out_dir>/completion_ablation_models[_quick]``).
    quick : bool
        :data:`QUICK` settings (a smoke run of seconds) unless given explicitly.
    restart : bool
        Ignore finished runs and checkpoints (otherwise a JSON with other settings is refused).
    settings
        Any of :data:`DEFAULTS`: ``steps``, ``crop``, ``batch``, ``synthetic`` (training pool size),
        ``val_count`` (validation examples), ``eval_crop`` (their side, px), ``eval_seed``, ``path``,
        ``coverage`` (dose fraction), ``width`` (``CompletionConfig.width``).

    Returns
    -------
    dict
        ``settings``, ``linear_val_rmse`` (the same for every run), ``runs`` (``"name/seedS"`` ->
        ``val_rmse``, ``ratio_to_linear``, ``train_seconds``, the validation curve, ...) and
        ``summary`` (per configuration: mean and std over seeds, difference to the full method).
    """
    from fastem.errors import InputError
    from fastem.io import output_lock

    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InputError(f"unknown ablation setting(s) {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **(QUICK if quick else {}), **{k: v for k, v in settings.items() if v is not None}}
    s["coverage"] = float(s["coverage"])
    configs = list(configs or ABLATIONS)
    bad = [c for c in configs if c not in ABLATIONS]
    if bad:
        raise InputError(f"configs: unknown {', '.join(bad)}; known: {', '.join(ABLATIONS)}")
    seeds = [int(v) for v in seeds]
    if not seeds:
        raise InputError("seeds: give at least one seed")
    for key in ("steps", "crop", "batch", "synthetic", "val_count", "eval_crop"):
        if int(s[key]) < 1:
            raise InputError(f"{key} must be >= 1, got {s[key]}")
    out_dir = Path(out_dir) if out_dir else Path(__file__).resolve().parent / "results"
    stem = "completion_ablation_quick" if quick else "completion_ablation"
    work = Path(work_dir) if work_dir else out_dir / f"{stem.replace('ablation', 'ablation_models')}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    out_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / ".gitignore").exists():
        (work / ".gitignore").write_text("*\n")   # model files and checkpoints stay out of git

    with output_lock(json_path):
        result = _load(json_path, s, restart)
        result.setdefault("machine", platform.processor() or platform.machine())
        result["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        import torch

        from fastem.nn.completion_data import baseline_rmse, make_validation_set

        valset = make_validation_set(None, count=int(s["val_count"]), synthetic=max(4, int(s["val_count"]) // 2),
                                     crop=int(s["eval_crop"]), kind=s["path"], coverage=s["coverage"],
                                     seed=int(s["eval_seed"]))
        linear = baseline_rmse(valset, "linear")
        result["linear_val_rmse"] = linear
        result["torch"] = torch.__version__
        for seed in seeds:
            for name in configs:
                key = f"{name}/seed{seed}"
                if key in result["runs"]:
                    echo(f"{key:26s} done before: val RMSE {result['runs'][key]['val_rmse'] * 100:.2f} % (skipped)")
                    continue
                entry = _train_one(name, seed, s, work, device, restart, valset, linear, echo)
                result["runs"][key] = entry
                result["summary"] = summarise(result["runs"])
                _write(json_path, md_path, result)
                echo(f"{key:26s} val RMSE {entry['val_rmse'] * 100:.2f} % ({entry['ratio_to_linear']:.2f}x linear "
                     f"{linear * 100:.2f} %), {entry['train_seconds']:.0f} s")
        result["summary"] = summarise(result["runs"])
        _write(json_path, md_path, result)
    echo(format_table(result))
    return result


def _load(json_path: Path, s: dict, restart: bool) -> dict:
    """The JSON of an earlier run with the same settings, or a fresh one; other settings are refused."""
    from fastem.errors import InputError

    fresh = {"settings": dict(s), "runs": {}, "summary": {}}
    if restart or not json_path.is_file():
        return fresh
    try:
        old = json.loads(json_path.read_text())
        prev = old["settings"]
        old["runs"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{json_path}: not an ablation results file (move it away or pass --restart)") from None
    diff = [f"{k} {prev.get(k)!r} -> {s[k]!r}" for k in MATCHED if prev.get(k) != s[k]]
    if diff:
        raise InputError(f"{json_path}: made with other settings ({'; '.join(diff)}); pass --restart to start "
                         "over or choose another --out-dir")
    return old


def _train_one(name, seed, s, work: Path, device, restart, valset, linear, echo) -> dict:
    """Train one configuration (resuming its checkpoint when there is one) and score it on ``valset``."""
    from fastem.errors import InputError
    from fastem.nn.completion import CompletionConfig
    from fastem.nn.completion_train import validation_rmse
    from fastem.nn.train_completion import default_checkpoint, train_completion

    switches, _ = ABLATIONS[name]
    cfg = CompletionConfig(width=float(s["width"]), **switches)
    model = work / f"{name}_seed{seed}.pt"
    steps = int(s["steps"])
    every = max(1, steps // 5)

    def report(ev):
        if ev.get("kind") == "val":
            echo(f"  {name} seed {seed}: step {ev['step']}/{ev['total']} "
                 f"val RMSE {ev.get('rmse', float('nan')) * 100:.2f} %")

    kw = dict(synthetic=int(s["synthetic"]), path=s["path"], coverage=s["coverage"], steps=steps,
              crop=int(s["crop"]), batch=int(s["batch"]), seed=seed, config=cfg, device=device,
              checkpoint_every=every, validate_every=every, val_count=min(int(s["val_count"]), 16), callback=report,
              command=f"ablate_completion.py config {name} seed {seed}")
    resume = default_checkpoint(model).is_file() and not restart
    try:
        gen, history, record = train_completion(model, resume=resume, overwrite=True, **kw)
    except InputError as exc:
        if not resume:
            raise
        echo(f"  {name} seed {seed}: checkpoint not resumable ({exc}); training from the start")
        gen, history, record = train_completion(model, resume=False, overwrite=True, **kw)
    val = validation_rmse(gen, valset)
    if not math.isfinite(val):
        raise InputError(f"{name} seed {seed}: validation RMSE is not finite (training diverged); nothing written")
    return {"config": name, "seed": seed, "removed": ABLATIONS[name][1], "switches": switches,
            "val_rmse": val, "ratio_to_linear": val / linear, "train_seconds": record["train_seconds"],
            "device": record["device"], "device_name": record["device_name"], "model_file": str(model),
            "curve": [[r["step"], r["rmse"]] for r in history.val if "rmse" in r and math.isfinite(r["rmse"])],
            "totals": {k: float(sum(r.get(k, 0.0) for r in history.train)) for k in ("replayed", "clipped")},
            "final_train": {k: v for k, v in (history.train[-1] if history.train else {}).items()
                            if isinstance(v, (int, float)) and math.isfinite(v)}}


def summarise(runs: dict) -> dict:
    """Per configuration: mean/std of validation RMSE over seeds and the difference to ``full``.

    ``delta_vs_full`` = mean RMSE of the ablation - mean RMSE of the full method (positive: the
    removed component lowers the error by that much); ``spread`` = the largest seed std of the two.
    """
    import numpy as np

    by = {}
    for r in runs.values():
        by.setdefault(r["config"], []).append(r)
    out = {}
    for name in [n for n in ABLATIONS if n in by]:
        vals = np.array([r["val_rmse"] for r in by[name]])
        out[name] = {"val_rmse_mean": float(vals.mean()), "val_rmse_std": float(vals.std()), "seeds": len(vals),
                     "ratio_to_linear": float(np.mean([r["ratio_to_linear"] for r in by[name]])),
                     "train_seconds_mean": float(np.mean([r["train_seconds"] for r in by[name]]))}
    if "full" in out:
        f = out["full"]
        for name, o in out.items():
            o["delta_vs_full"] = o["val_rmse_mean"] - f["val_rmse_mean"]
            o["relative_vs_full"] = o["delta_vs_full"] / f["val_rmse_mean"]
            o["spread"] = max(o["val_rmse_std"], f["val_rmse_std"])
    return out


def format_table(result: dict) -> str:
    s, summ = result["settings"], result.get("summary") or {}
    lines = [f"Completion-GAN ablations: {s['steps']} steps of {s['batch']} x {s['crop']} px crops, width "
             f"{s['width']}, {s['path']} 1/{round(1 / s['coverage'])}, synthetic pool of {s['synthetic']}; validation: "
             f"{s['val_count']} fixed {s['eval_crop']} px examples (seed {s['eval_seed']}), RMSE on [0, 1].", "",
             "| configuration | removed | val RMSE | seeds | / linear | vs full | train time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, o in summ.items():
        spread = f" ± {o['val_rmse_std'] * 100:.2f}" if o["seeds"] > 1 else ""
        vs = "-" if name == "full" or "delta_vs_full" not in o else \
            f"{o['delta_vs_full'] * 100:+.2f} pp ({o['relative_vs_full'] * 100:+.0f} %)"
        lines.append(f"| {name} | {ABLATIONS[name][1]} | {o['val_rmse_mean'] * 100:.2f}{spread} % | {o['seeds']} | "
                     f"{o['ratio_to_linear']:.2f} | {vs} | {o['train_seconds_mean']:.0f} s |")
    lin = result.get("linear_val_rmse")
    lines += ["", f"Linear interpolation on the same examples: {lin * 100:.2f} %." if lin is not None else "",
              "'vs full': ablation minus full method; positive = the removed component lowers the error by that much. "
              + ("With one seed there is no spread: differences of a few tenths of a point may be noise "
                 "(rerun with --seeds 0,1,2)." if all(o["seeds"] < 2 for o in summ.values())
                 else "Compare with the ± spread over seeds: a smaller difference is noise.")]
    return "\n".join(lines) + "\n"


def _write(json_path: Path, md_path: Path, result: dict) -> None:
    from fastem.io import atomic_output

    with atomic_output(json_path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2))
    with atomic_output(md_path, overwrite=True) as tmp:
        Path(tmp).write_text(format_table(result))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help=f"training steps per run (default {DEFAULTS['steps']})")
    p.add_argument("--crop", type=int, default=None, help=f"training crop side, px (default {DEFAULTS['crop']})")
    p.add_argument("--batch", type=int, default=None, help=f"batch size (default {DEFAULTS['batch']})")
    p.add_argument("--synthetic", type=int, default=None, help=f"training pool size (default {DEFAULTS['synthetic']})")
    p.add_argument("--val-count", type=int, default=None, help=f"validation examples (default {DEFAULTS['val_count']})")
    p.add_argument("--eval-crop", type=int, default=None,
                   help=f"validation example side (default {DEFAULTS['eval_crop']})")
    p.add_argument("--eval-seed", type=int, default=None)
    p.add_argument("--path", choices=("spiral", "grid"), default=None)
    p.add_argument("--coverage", type=float, default=None, help="dose fraction (default 0.05)")
    p.add_argument("--width", type=float, default=None, help="CompletionConfig.width (default 0.25)")
    p.add_argument("--seeds", default="0", help="comma list of training seeds (default 0)")
    p.add_argument("--configs", default=None, help=f"comma list among {','.join(ABLATIONS)} (default all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--work-dir", type=Path, default=None)
    p.add_argument("--restart", action="store_true", help="ignore finished runs and checkpoints")
    p.add_argument("--quick", action="store_true", help="tiny networks, 6 steps (a smoke run of seconds)")
    a = p.parse_args(argv)
    try:
        seeds = [int(v) for v in a.seeds.split(",") if v.strip()]
    except ValueError:
        p.error(f"--seeds: expected a comma list of integers, got {a.seeds!r}")
    configs = [c.strip() for c in a.configs.split(",") if c.strip()] if a.configs else None
    if configs and any(c not in ABLATIONS for c in configs):
        p.error(f"--configs: choose among {', '.join(ABLATIONS)}, got {a.configs!r}")
    from fastem.errors import InputError

    try:
        run(a.out_dir, seeds=seeds, configs=configs, device=a.device, work_dir=a.work_dir, quick=a.quick,
            restart=a.restart, steps=a.steps, crop=a.crop, batch=a.batch, synthetic=a.synthetic,
            val_count=a.val_count, eval_crop=a.eval_crop, eval_seed=a.eval_seed, path=a.path, coverage=a.coverage,
            width=a.width)
    except (InputError, ImportError) as exc:
        sys.exit(f"{Path(sys.argv[0]).name}: error: {exc}")


if __name__ == "__main__":
    main()
