"""How much the judged samples of one trained model move with the sampling seed alone.

`make demo` draws its 256 long-run samples (256 SGLD steps from noise, the run's seed) once and
reports the judge's inception score and the number of the 42 classes among them. This script
draws them again from the same trained model with other seeds (the exercise's `run_generation`,
with the run's own SGLD settings) and prints one Markdown row per run:

    .venv/bin/python benchmarks/sample_spread.py RUN [RUN ...] [--seeds 4] [--noise S] [--step-size A]
        [--labels run|prior|none]

RUN is a run folder (`runs/demo`, `runs/recipe/NAME`) or a pretrained weights file. Seed 0 of a
run made with seed 0 repeats the run's own samples. `--noise` and `--step-size` draw with another
SGLD noise or step than the run trained with (the table's first column then names them).
`--labels`: `run` (default) draws as the run does (class-conditional runs, `mode=jem_cond`, with
labels from the class frequencies of the training split, the others without labels); `prior` and
`none` force either way, e.g. to see what the labels do to a model trained without them. With
labels, the table adds how often the judge reads a sample as the letter it was drawn for.
`--real` adds a row for real glyphs: 256 test images of the embedded set (seed 0) drawn at random,
one draw per sampling seed, judged the same way (what a perfect sampler of the data would score).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from recipe import markdown_table

from glyph_course.reference import reference
from glyph_course.subject import load_subject
from glyph_ebm.judge import load_judge, sample_quality
from glyph_ebm.runner import generation_labels


def labels_for(subject, how: str, n: int, seed: int):
    if how == "none":
        return None
    if how == "prior":
        return generation_labels("jem_cond", subject.splits.train_y, len(subject.splits.classes), n, seed=seed)
    return subject.generation_labels(n, seed=seed)


def spread(run: str, seeds: int, labels: str = "run", **sgld_changes) -> list[dict]:
    subject = load_subject(run)
    ex3 = reference()
    judge = load_judge(subject.splits.classes)
    if judge is None:
        raise SystemExit(f"error: {run} was not trained on the embedded glyph set; the judge knows only its classes")
    c = subject.config
    rows = []
    for seed in range(seeds):
        start = time.time()
        y = labels_for(subject, labels, c["gen_samples"], seed)
        gen = ex3.main.run_generation(subject.model.eval(), K=c["gen_steps"], n=c["gen_samples"],
                                      img_shape=(1, *subject.splits.train_x.shape[1:]), y=y,
                                      seed=seed, **{**subject.sgld(), **sgld_changes})
        rows.append({**sample_quality(judge, gen["samples"], y), "seconds": time.time() - start})
    return rows


def real_spread(seeds: int, n: int = 256) -> list[dict]:
    from glyph_ebm.datasets import to_tensor
    from glyph_ebm.glyphs import load_glyphs

    splits = load_glyphs(seed=0)
    judge = load_judge(splits.classes)
    test = to_tensor(splits.test_x)
    return [sample_quality(judge, test[np.random.default_rng(seed).choice(len(test), n, replace=False)])
            for seed in range(seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", metavar="RUN")
    parser.add_argument("--real", action="store_true", help="add a row for 256 real test glyphs per seed")
    parser.add_argument("--seeds", type=int, default=4, help="sampling seeds 0 .. N-1 (default 4)")
    parser.add_argument("--noise", type=float, help="SGLD noise of the draws (default: the run's)")
    parser.add_argument("--step-size", type=float, help="SGLD step size of the draws (default: the run's)")
    parser.add_argument("--labels", choices=("run", "prior", "none"), default="run",
                        help="draw as the run does (default), with labels from the class frequencies, or without")
    args = parser.parse_args()
    changes = {k: v for k, v in (("noise", args.noise), ("step_size", args.step_size)) if v is not None}
    label = "".join(f" ({k} {v:g})" for k, v in changes.items())
    label += {"run": "", "prior": " (labels from the class frequencies)", "none": " (no labels)"}[args.labels]
    table, agreement = [], False
    jobs = [(run + label, lambda run=run: spread(run, args.seeds, labels=args.labels, **changes)) for run in args.runs]
    if args.real:
        jobs.append(("real test glyphs (256 at random)", lambda: real_spread(args.seeds)))
    for name, job in jobs:
        rows = job()
        score = np.array([r["inception_score"] for r in rows])
        classes = np.array([r["classes_covered"] for r in rows])
        agree = [r["label_agreement"] for r in rows if "label_agreement" in r]
        agreement |= bool(agree)
        table.append([name, " / ".join(f"{s:.1f}" for s in score), f"{score.mean():.1f}",
                      f"{score.min():.1f}-{score.max():.1f}", " / ".join(str(k) for k in classes),
                      f"{classes.mean():.1f}", f"{classes.min()}-{classes.max()}",
                      f"{np.mean(agree):.2f}" if agree else "-"])
    head = ["run", "IS by sampling seed", "mean", "range", "classes by sampling seed", "mean", "range",
            "read as their label"]
    if not agreement:
        head, table = head[:-1], [row[:-1] for row in table]
    print(markdown_table(head, table))


if __name__ == "__main__":
    main()
