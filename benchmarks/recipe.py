"""Ablation of the quick recipe: train the reference with the quick profile and some settings
changed, and compare what `make demo` reports (accuracy, the energy's AUROC on every OOD set,
the judge's inception score and classes among the long-run samples, training time).

    .venv/bin/python benchmarks/recipe.py NAME [--set FIELD=VALUE ...] [--threads 1] [--seed 0]
    .venv/bin/python benchmarks/recipe.py --table        # every finished run of runs/recipe/
    .venv/bin/python benchmarks/recipe.py --ood-table NAME ...   # the OOD study of those runs
    .venv/bin/python benchmarks/recipe.py --groups "LABEL=NAME,NAME,..." ...   # issue 17's targets, mean over runs

Each run goes to runs/recipe/NAME (kept; a finished run is not trained again). The table is
printed as Markdown, for docs/recipe.md. ``--ood-table`` runs ``glyph-course ood`` (1,000 images
per set) on the runs named, into runs/recipe/NAME/ood (kept), and prints each set's best score.
Settings are applied on top of today's quick profile, which includes
glyph_ebm.config.QUICK_RECIPE; the plain recipe the ablation started from is
``--set start_augment=0 --set reinit_frac=0.05 --set ema_decay=0 --set hidden=16 --set mode=jem``
(the quick profile trains the class-conditional JEM since 2026-12-03; the runs before name no mode
and are unconditional, ``mode`` in their config.json). The table's
``width`` column is the CNN's ``hidden`` from each run's config.json (24 in today's quick profile;
the runs of docs/recipe.md before it was adopted are 16 wide unless made with ``--set hidden=24``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

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


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def table() -> str:
    rows = []
    for path in sorted(RUNS.glob("*/metrics.json"), key=lambda p: p.stat().st_mtime):
        m = json.loads(path.read_text())
        q = m.get("samples", {})
        config = json.loads((path.parent / "config.json").read_text())
        seed = config.get("seed", 0)
        settings = [s for s in m.get("settings", []) if not s.startswith("hidden=")]
        settings += [f"seed {seed}"] if seed else []
        rows.append([path.parent.name, " ".join(settings) or "(quick profile)", str(config["hidden"]),
                     f"{m['test_accuracy']:.3f}", *(f"{m['ood_auroc'].get(s, float('nan')):.3f}" for s in SETS),
                     f"{q.get('inception_score', float('nan')):.1f}", str(q.get("classes_covered", "")),
                     f"{m.get('wall_seconds', float('nan')):.0f}"])
    head = ["run", "settings", "width", "acc", *SETS, "IS", "classes", "wall s"]
    return markdown_table(head, rows)


#: issue 17's targets for `make demo`: (column, metrics.json reader, what is asked)
TARGETS = (
    ("acc", lambda m: m["test_accuracy"], ">= 0.94"),
    ("small", lambda m: m["ood_auroc"]["small"], ">= 0.85"),
    ("digits", lambda m: m["ood_auroc"]["digits"], ">= 0.95"),
    ("noise, uniform", lambda m: min(m["ood_auroc"]["noise"], m["ood_auroc"]["uniform"]), "1.00"),
    ("IS", lambda m: m["samples"]["inception_score"], ">= 20"),
    ("classes", lambda m: m["samples"]["classes_covered"], ">= 35"),
)


def run_metrics(name: str) -> dict:
    """metrics.json of runs/recipe/NAME, of the run folder NAME (e.g. runs/pretrained), or what a
    pretrained file NAME (e.g. pretrained/jem_quick.pt) stores of its run's metrics."""
    if name.endswith(".pt"):
        from glyph_course import pretrained

        return pretrained.info(ROOT / name)["metrics"]
    folder = RUNS / name if (RUNS / name).is_dir() else ROOT / name
    if not (folder / "metrics.json").exists():
        raise SystemExit(f"error: no finished run {name} (looked for {folder / 'metrics.json'})")
    return json.loads((folder / "metrics.json").read_text())


def groups_table(groups: list[str]) -> str:
    """Issue 17's targets for groups of runs ("LABEL=NAME,NAME,..."): the mean, and each run's
    value in order, for every target."""
    head = ["runs", *(f"{col} ({asked})" for col, _, asked in TARGETS)]
    rows = []
    for group in groups:
        label, _, names = group.partition("=")
        if not names:
            raise SystemExit(f"error: expected LABEL=NAME,NAME,... got {group!r}")
        metrics = [run_metrics(n) for n in names.split(",")]
        cells = []
        for col, read, _ in TARGETS:
            try:
                values = [float(read(m)) for m in metrics]
            except KeyError:                       # a pretrained file made before it stored the samples' figures
                cells.append("-")
                continue
            fmt = "{:.0f}" if col == "classes" else "{:.1f}" if col == "IS" else "{:.3f}"
            if len(values) == 1:
                cells.append(fmt.format(values[0]))
            else:                                  # the mean (of classes: one decimal), then each run's value
                mean = ("{:.1f}" if col == "classes" else fmt).format(np.mean(values))
                cells.append(f"{mean} (" + " / ".join(fmt.format(v) for v in values) + ")")
        rows.append([label, *cells])
    return markdown_table(head, rows)


def ood_table(names: list[str]) -> str:
    """The best AUROC of every OOD set (and which score gives it) in the OOD study of each run."""
    import csv

    from glyph_course.ood_study import best_per_set

    rows = []
    for name in names:
        out = RUNS / name / "ood"
        if not (out / "results.csv").exists():
            cmd = [sys.executable, "-m", "glyph_course", "ood", str(RUNS / name), "--out", str(out), "--overwrite",
                   "--no-progress"]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if proc.returncode != 0:
                raise SystemExit(f"error: the OOD study of {name} failed:\n{proc.stderr[-3000:]}")
        with open(out / "results.csv", newline="") as fh:
            results = [{**r, "auroc": float(r["auroc"])} for r in csv.DictReader(fh)]
        best = best_per_set(results)
        cells = []
        for s in SETS:
            ceiling = best[s].get("ceiling")
            cells.append(f"{best[s]['auroc']:.3f} {best[s]['score']}" + (f" (ceiling {float(ceiling):.3f})" if ceiling else ""))
        rows.append([name, *cells])
    head = ["run", *SETS]
    return markdown_table(head, rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", action="store_true")
    p.add_argument("--ood-table", nargs="+", metavar="NAME", help="print the best OOD score per set of these runs")
    p.add_argument("--groups", nargs="+", metavar="LABEL=NAME,...", help="print issue 17's targets per group of runs")
    args = p.parse_args(argv)
    if args.groups:
        print(groups_table(args.groups))
        return 0
    if args.ood_table:
        print(ood_table(args.ood_table))
        return 0
    if args.name:
        m = train(args.name, args.set, args.threads, args.seed)
        print(json.dumps({k: m[k] for k in ("test_accuracy", "ood_auroc", "samples", "wall_seconds") if k in m}))
    if args.table or not args.name:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
