"""Ablation of the quick recipe: train the reference with the quick profile and some settings
changed, and compare what `make demo` reports (accuracy, the energy's AUROC on every OOD set,
the judge's inception score and classes among the long-run samples, training time).

    .venv/bin/python benchmarks/recipe.py NAME [--set FIELD=VALUE ...] [--threads 1] [--seed 0]
    .venv/bin/python benchmarks/recipe.py --table        # every finished run of runs/recipe/

Each run goes to runs/recipe/NAME (kept; a finished run is not trained again). The table is
printed as Markdown, for docs/recipe.md. Settings are applied on top of today's quick profile,
which includes glyph_ebm.config.QUICK_RECIPE; the plain recipe the ablation started from is
``--set start_augment=0 --set reinit_frac=0.05 --set ema_decay=0``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "recipe"
SETS = ("noise", "uniform", "rotated", "flipped", "small", "digits", "blank", "blots", "between", "degraded",
        "symbols")


def train(name: str, settings: list[str], threads: int, seed: int) -> dict:
    out = RUNS / name
    if (out / "metrics.json").exists():
        return json.loads((out / "metrics.json").read_text())
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "ex3_main.py", "--profile", "quick", "--seed", str(seed), "--out", str(out), "--overwrite",
           "--no-progress", *[a for s in settings for a in ("--set", s)]]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT / "solutions", env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: run {name} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["wall_seconds"] = round(time.time() - start, 1)
    metrics["settings"] = settings
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def table() -> str:
    rows = []
    for path in sorted(RUNS.glob("*/metrics.json"), key=lambda p: p.stat().st_mtime):
        m = json.loads(path.read_text())
        q = m.get("samples", {})
        seed = json.loads((path.parent / "config.json").read_text()).get("seed", 0)
        settings = [*m.get("settings", []), *([f"seed {seed}"] if seed else [])]
        rows.append([path.parent.name, " ".join(settings) or "(quick profile)",
                     f"{m['test_accuracy']:.3f}", *(f"{m['ood_auroc'].get(s, float('nan')):.3f}" for s in SETS),
                     f"{q.get('inception_score', float('nan')):.1f}", str(q.get("classes_covered", "")),
                     f"{m.get('wall_seconds', float('nan')):.0f}"])
    head = ["run", "settings", "acc", *SETS, "IS", "classes", "wall s"]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", action="store_true")
    args = p.parse_args(argv)
    if args.name:
        m = train(args.name, args.set, args.threads, args.seed)
        print(json.dumps({k: m[k] for k in ("test_accuracy", "ood_auroc", "samples", "wall_seconds") if k in m}))
    if args.table or not args.name:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
