"""How much the judged samples of one trained model move with the sampling seed alone.

`make demo` draws its 256 long-run samples (256 SGLD steps from noise, the run's seed) once and
reports the judge's inception score and the number of the 42 classes among them. This script
draws them again from the same trained model with other seeds (the exercise's `run_generation`,
with the run's own SGLD settings) and prints one Markdown row per run:

    .venv/bin/python benchmarks/sample_spread.py RUN [RUN ...] [--seeds 4] [--noise S] [--step-size A]

RUN is a run folder (`runs/demo`, `runs/recipe/NAME`) or a pretrained weights file. Seed 0 of a
run made with seed 0 repeats the run's own samples. `--noise` and `--step-size` draw with another
SGLD noise or step than the run trained with (the table's first column then names them).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from recipe import markdown_table

from glyph_course.reference import reference
from glyph_course.subject import load_subject
from glyph_ebm.judge import load_judge, sample_quality


def spread(run: str, seeds: int, **sgld_changes) -> list[dict]:
    subject = load_subject(run)
    ex3 = reference()
    judge = load_judge(subject.splits.classes)
    if judge is None:
        raise SystemExit(f"error: {run} was not trained on the embedded glyph set; the judge knows only its classes")
    c = subject.config
    rows = []
    for seed in range(seeds):
        start = time.time()
        gen = ex3.main.run_generation(subject.model.eval(), K=c["gen_steps"], n=c["gen_samples"],
                                      img_shape=(1, *subject.splits.train_x.shape[1:]),
                                      seed=seed, **{**subject.sgld(), **sgld_changes})
        rows.append({**sample_quality(judge, gen["samples"]), "seconds": time.time() - start})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--seeds", type=int, default=4, help="sampling seeds 0 .. N-1 (default 4)")
    parser.add_argument("--noise", type=float, help="SGLD noise of the draws (default: the run's)")
    parser.add_argument("--step-size", type=float, help="SGLD step size of the draws (default: the run's)")
    args = parser.parse_args()
    changes = {k: v for k, v in (("noise", args.noise), ("step_size", args.step_size)) if v is not None}
    label = "".join(f" ({k} {v:g})" for k, v in changes.items())
    table = []
    for run in args.runs:
        rows = spread(run, args.seeds, **changes)
        score = np.array([r["inception_score"] for r in rows])
        classes = np.array([r["classes_covered"] for r in rows])
        table.append([run + label, " / ".join(f"{s:.1f}" for s in score), f"{score.mean():.1f}",
                      f"{score.min():.1f}-{score.max():.1f}", " / ".join(str(k) for k in classes),
                      f"{classes.mean():.1f}", f"{classes.min()}-{classes.max()}"])
    print(markdown_table(["run", "IS by sampling seed", "mean", "range", "classes by sampling seed",
                          "mean", "range"], table))


if __name__ == "__main__":
    main()
