"""One distillation run against a trained teacher, reported as the AUROC drop per OOD set.

    .venv/bin/python benchmarks/distill_sweep.py runs/demo width=8 steps=3000 lr=0.01

Options (``key=value``, defaults in ``DEFAULTS``): ``width``/``pool`` of the
:class:`~glyph_course.compression.distill.StudentEnergy`, ``steps``, ``lr``, ``batch``, ``seed``,
``copies`` (``transfer_augment`` copies per image), ``fresh`` (that many extra unlabelled
glyphs from the embedded generator with another seed, added to the transfer set) and ``tau``
(expectile of the loss: 0.5 is the MSE, smaller punishes overestimating ``f`` more).
``control=1`` trains a freshly initialised copy of the *teacher's own architecture* instead
of a ``StudentEnergy`` (``width``/``pool`` are then ignored): a student as large as the
teacher, which tells whether a gap comes from the compression or from the distillation.

Prints the student's parameter count, its AUROC change against the teacher on each OOD set, the
worst drop, and the student's MSE / bias on test and OOD images. ``docs/distillation_experiments.md``
lists the runs made with it. One CPU thread, so it can run beside another job.
"""
from __future__ import annotations

import copy
import sys
import time

import torch
import torch.nn as nn

from glyph_course import metrics
from glyph_course.compression.distill import StudentEnergy, distill, transfer_set
from glyph_course.subject import load_subject
from glyph_ebm.datasets import to_tensor
from glyph_ebm.ood import make_ood_sets

DEFAULTS = dict(width=8, pool=2, steps=3000, lr=1e-2, batch=256, seed=0, copies=3, fresh=0, tau=0.5,
                control=0)


def parse(argv: list[str]) -> tuple[str, dict]:
    if not argv or "=" in argv[0]:
        raise SystemExit(__doc__)
    opts = dict(DEFAULTS)
    for item in argv[1:]:
        key, _, value = item.partition("=")
        if key not in opts:
            raise SystemExit(f"unknown option {key!r}; known: {', '.join(opts)}")
        opts[key] = type(DEFAULTS[key])(float(value) if isinstance(DEFAULTS[key], float) else int(value))
    return argv[0], opts


def expectile_loss(f: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """``2 * mean(|tau - 1[f < target]| * (f - target)^2)``: the MSE at ``tau = 0.5``."""
    err = f - target
    return 2 * (torch.where(err > 0, 1 - tau, tau) * err.pow(2)).mean()


def evaluation_data(subject) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """A run's training and test images and its OOD sets (1,000 images each, seed 0): the same
    sets for every run of one data set, so AUROCs of different models compare directly."""
    train_np, _ = subject.splits.split("train")
    test_np, _ = subject.splits.split("test")
    ood = {k: to_tensor(v) for k, v in make_ood_sets(test_np, n=1000, seed=0).items()}
    return to_tensor(train_np), to_tensor(test_np), ood


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    run_dir, o = parse(argv)
    subject = load_subject(run_dir)
    teacher = subject.model.eval()
    train_x, test_x, ood = evaluation_data(subject)
    before = metrics.ood_auroc(teacher, test_x, ood)

    images = train_x
    if o["fresh"]:
        from glyph_ebm.glyphs import CLASSES, render_many

        labels = torch.randint(len(CLASSES), (o["fresh"],), generator=torch.Generator().manual_seed(1)).numpy()
        images = torch.cat([images, to_tensor(render_many(labels, seed=1))])
    transfer = {"train": transfer_set(teacher, images, copies=o["copies"], seed=0)}
    torch.manual_seed(o["seed"])
    student = StudentEnergy(width=o["width"], pool=o["pool"])
    if o["control"]:
        student = copy.deepcopy(teacher)
        for layer in student.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                layer.reset_parameters()
    t0 = time.time()
    distill(student, teacher, images, source="train", steps=o["steps"], lr=o["lr"], batch_size=o["batch"],
            seed=o["seed"], transfer=transfer, loss_fn=lambda f, t: expectile_loss(f, t, o["tau"]))

    after = metrics.ood_auroc(student, test_x, ood)
    drops = {k: round(after[k] - before[k], 3) for k in after}
    print(f"options {o}")
    print(f"student: {metrics.parameter_count(student)[1]:,} parameters, trained in {time.time() - t0:.0f} s")
    print("AUROC change: " + " ".join(f"{k} {v:+.3f}" for k, v in drops.items())
          + f" | worst drop {max(0.0, -min(drops.values())):.3f}")
    with torch.no_grad():
        for name, x in [("test", test_x)] + list(ood.items()):
            err = student(x) - teacher(x)
            print(f"  {name:8s} MSE {float(err.pow(2).mean()):8.3f}  bias {float(err.mean()):+.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
