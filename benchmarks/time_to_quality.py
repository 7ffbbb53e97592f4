"""Time to quality: our ``quick`` profile against the tutorial's recipe, same wall-clock budget.

Both are trained by the project's own job (``glyph_ebm.runner.train_and_evaluate`` with the
reference ``solutions/ex3_main.py``) on the same data (the embedded glyph set, full size),
with the same CNN, for at most ``--budget`` seconds of training each (Lightning ``max_time``),
and evaluated the same way: test accuracy and the energy-score OOD AUROC of every OOD set.

* ``ours``: ``profile_config("quick")`` as it stands, with ``max_time_s = budget``;
* ``tutorial``: the recipe of the UvA tutorial 8 (Deep Energy Models) in JEM mode, expressed as
  overrides of the same profile: Adam lr 1e-4, betas (0.0, 0.999), no lr decay, parameter
  gradient norm clipped at 0.1 (the tutorial's ``gradient_clip_val``), batch 128, 128 chains
  of 60 SGLD steps of size 10 with noise 0.005 and input-gradient clamp 0.03, replay buffer
  8192 with 5 % re-initialisation, alpha 0.1, p(x) and p(y|x) weights 1 from the first step.

Approximated: the tutorial starts fresh chains from uniform noise in [-1, 1]; here they start
from ``N(0, 1)`` clamped to [-1, 1]. Not reproduced: the tutorial adds N(0, 0.005^2) noise to the
real images. Both recipes use the same implementation speed-ups (channels-last weights), so
only the recipe differs.

Both use ``gen_steps`` (default 32) for the generation figure, to keep evaluation short. The
two runs go one after the other, each in a fresh Python process (no heap, thread pool or cache
carried over from the first run); the load average is printed with each so that a disturbed
run can be spotted. The last line is JSON::

    {"budget_s": .., "ours": {"test_accuracy": .., "ood_auroc": {...}, ...}, "tutorial": {...}}

    python benchmarks/time_to_quality.py [--budget 300] [--out runs/bench_ttq] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOLUTIONS = ROOT / "solutions"
if str(SOLUTIONS) not in sys.path:
    sys.path.insert(0, str(SOLUTIONS))

MARKER = "ttq_run.json"
RECIPES = ("ours", "tutorial")


def tutorial_overrides(budget_s: float, gen_steps: int) -> dict:
    """The tutorial's recipe as ``TrainConfig`` fields."""
    return dict(
        mode="jem", lr=1e-4, beta1=0.0, beta2=0.999, weight_decay=0.0, lr_decay=1.0,
        grad_clip=0.1, sgld_steps=60, step_size=10.0, noise=0.005, sgld_grad_clip=0.03,
        alpha=0.1, batch_size=128, sample_size=128, buffer_size=8192, reinit_frac=0.05,
        warmup_epochs=0.0, px_weight=1.0, pyx_weight=1.0, hidden=32, epochs=10_000,
        max_steps_per_epoch=None, max_time_s=budget_s, gen_steps=gen_steps,
        init_std=1.0, channels_last=True,
    )


def recipe_config(name: str, budget_s: float, gen_steps: int, seed: int = 0):
    from glyph_ebm.config import profile_config

    if name == "ours":
        return profile_config("quick", max_time_s=budget_s, gen_steps=gen_steps, seed=seed)
    if name == "tutorial":
        return profile_config("quick", seed=seed, **tutorial_overrides(budget_s, gen_steps))
    raise ValueError(f"unknown recipe {name!r}")


def _fresh_dir(run_dir: Path) -> None:
    """Start with an empty run folder; only folders made by this harness are removed."""
    if run_dir.exists() and any(run_dir.iterdir()):
        if not (run_dir / MARKER).exists():
            raise SystemExit(f"error: {run_dir} exists and was not made by this benchmark; "
                             "choose another --out")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run_recipe(name: str, args) -> dict:
    import ex3_main
    from glyph_ebm.runner import train_and_evaluate

    cfg = recipe_config(name, args.budget, args.gen_steps, args.seed)
    run_dir = Path(args.out) / name
    _fresh_dir(run_dir)
    (run_dir / MARKER).write_text(json.dumps({"recipe": name, "budget_s": args.budget}) + "\n")
    print(f"[{name}] training for at most {args.budget:g} s (load average {_load()}) -> {run_dir}",
          flush=True)
    t0 = time.time()
    metrics = train_and_evaluate(ex3_main, cfg, run_dir, progress=args.progress)
    total = time.time() - t0
    print(f"[{name}] done: {metrics['global_steps']} steps, {metrics['train_seconds']:.0f} s "
          f"training, {total:.0f} s in all (load average {_load()})", flush=True)
    return {"test_accuracy": metrics["test_accuracy"], "ood_auroc": metrics["ood_auroc"],
            "global_steps": metrics["global_steps"], "epochs": metrics["epochs"],
            "train_seconds": metrics["train_seconds"], "total_seconds": round(total, 1),
            "guard_rollbacks": metrics["guard_rollbacks"]}


def run_child(name: str, args) -> dict:
    """``run_recipe`` in a fresh interpreter; its result comes back as the JSON last line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--in-process", "--only", name,
           "--budget", str(args.budget), "--out", str(args.out), "--gen-steps", str(args.gen_steps),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    if args.progress:
        cmd.append("--progress")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    print("\n".join(line for line in lines if line.startswith(f"[{name}]")), flush=True)
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: the {name} run failed (exit code {proc.returncode})")
    return json.loads(lines[-1])[name]


def table(results: dict) -> str:
    names = list(results)
    ood = sorted({k for r in results.values() for k in r["ood_auroc"]})
    rows = [("steps", lambda r: f"{r['global_steps']}"),
            ("train s", lambda r: f"{r['train_seconds']:.0f}"),
            ("rollbacks", lambda r: f"{r['guard_rollbacks']}"),
            ("test accuracy", lambda r: "-" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}")]
    rows += [(f"AUROC {k}", (lambda k: lambda r: f"{r['ood_auroc'].get(k, float('nan')):.4f}")(k)) for k in ood]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{'':<{width}}" + "".join(f"{n:>12}" for n in names)]
    lines += [f"{label:<{width}}" + "".join(f"{fmt(results[n]):>12}" for n in names) for label, fmt in rows]
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per recipe (default 300)")
    p.add_argument("--out", default="runs/bench_ttq", help="folder for the two run folders")
    p.add_argument("--gen-steps", type=int, default=32, help="SGLD steps of the generation figure (default 32)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=RECIPES, action="append", default=None,
                   help="run only this recipe (repeatable)")
    p.add_argument("--progress", action="store_true", help="show Lightning progress bars")
    p.add_argument("--in-process", action="store_true",
                   help="run the recipes in this process instead of one fresh process each")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.budget <= 0:
        raise SystemExit("error: --budget must be positive")
    warnings.filterwarnings("ignore")
    import logging

    import pytorch_lightning  # noqa: F401  (sets its loggers up on import; quieten them after)
    import torch

    for logger in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(logger).setLevel(logging.ERROR)

    torch.set_num_threads(args.threads)
    import ex3_data

    t = time.time()
    splits = ex3_data.load_splits(seed=args.seed, progress=False)    # build/cache the data once
    print(f"data: {splits.source}, {splits.num_classes} classes, sizes {splits.sizes()} "
          f"({time.time() - t:.0f} s); torch {torch.__version__}, {torch.get_num_threads()} threads",
          flush=True)
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if args.threads > 1 and load > cores - args.threads + 0.5:
            print(f"warning: load average {load:.1f} on {cores} cores: with {args.threads} threads "
                  "every parallel region waits for descheduled threads and training slows down by "
                  "up to an order of magnitude; --threads 1 gives steadier numbers", flush=True)
    except (OSError, AttributeError):
        pass
    results = {}
    for name in args.only or RECIPES:
        results[name] = run_recipe(name, args) if args.in_process else run_child(name, args)
    print()
    print(table(results))
    out = {"budget_s": args.budget, **results}
    if not (args.in_process and args.only and len(args.only) == 1):    # not a child run
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "result.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
