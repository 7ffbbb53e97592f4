"""How far apart are the OOD AUROCs of teachers trained the same way? (the yardstick for distillation)

    cd solutions && ../.venv/bin/python ex3_main.py --profile quick --seed 1 --out ../runs/seed1
    .venv/bin/python benchmarks/teacher_spread.py runs/demo runs/seed1

Prints each run's AUROC per OOD set, all on the *first* run's test images and OOD sets
(``distill_sweep.evaluation_data``), and each later run's difference to the first. With the
embedded data, ``--seed`` also draws another sample of glyphs from the same generator, so two
runs that differ only in the seed show what retraining on fresh data of the same kind changes:
the run-to-run noise of an AUROC, the yardstick for how closely a student can be asked to agree
with one particular teacher.
"""
from __future__ import annotations

import sys

import torch

from distill_sweep import evaluation_data
from glyph_course import metrics
from glyph_course.subject import load_subject


def main(runs: list[str]) -> None:
    if len(runs) < 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    aurocs, test_x, ood = {}, None, None
    for run in runs:
        subject = load_subject(run)
        if test_x is None:
            _, test_x, ood = evaluation_data(subject)
        aurocs[run] = metrics.ood_auroc(subject.model.eval(), test_x, ood)
        print(f"{run:24s} " + " ".join(f"{k} {v:.3f}" for k, v in aurocs[run].items()), flush=True)
    first = aurocs[runs[0]]
    for run in runs[1:]:
        diff = {k: aurocs[run][k] - first[k] for k in first}
        print(f"{run} - {runs[0]}: " + " ".join(f"{k} {v:+.3f}" for k, v in diff.items())
              + f" | largest |difference| {max(abs(v) for v in diff.values()):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
