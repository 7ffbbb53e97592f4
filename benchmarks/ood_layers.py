"""Which depths the OOD study's layered nearest-neighbour score (`knn_layers`) reads.

`glyph_course.ood_study.layer_features(model, x, maps=M)` takes the per-channel mean and standard
deviation of the last ``M`` convolutional feature maps beside the penultimate features; the
study's `knn_layers` uses ``M = 2``. This script scores the study's images (1,000 test glyphs and
1,000 per set, seed 0) with the ``k``-th neighbour distance (``k`` as in the study) on the
features of every ``M`` from 0 (the penultimate features alone: the study's `knn`) to 4 (every
map of the exercise's CNN), and prints one Markdown table of AUROC per run::

    .venv/bin/python benchmarks/ood_layers.py RUN [RUN ...] [--maps 0 1 2 3 4] [--threads 2]

RUN is a run folder or a pretrained weights file. ``M = 2`` was chosen on the shipped model and
checked on five other trained models (docs/measurements.md).
"""
from __future__ import annotations

import argparse

import torch

from glyph_course import ood_study as study
from glyph_course.metrics import auroc
from glyph_course.subject import load_subject
from glyph_ebm.datasets import spread_subset, to_tensor
from glyph_ebm.ood import make_ood_sets


def layer_table(run: str, maps: list[int], n: int = 1000) -> str:
    subject = load_subject(run)
    model = subject.model.float().eval()
    test_x, _ = subject.splits.split("test")
    test_x = test_x[spread_subset(len(test_x), n, 0)]
    train_x = subject.splits.split("train")[0]
    k = study.knn_k(len(train_x), len(subject.splits.classes))
    banks = {m: study.NearestNeighbours(study.image_features(
        model, train_x, extract=lambda net, x, m=m: study.layer_features(net, x, maps=m)), k) for m in maps}

    def scores(images):
        x = to_tensor(images)
        return {m: bank.score(study.layer_features(model, x, maps=m)) for m, bank in banks.items()}

    test = scores(test_x)
    lines = [f"{run} (k = {k})", "", "| set | " + " | ".join(f"M = {m}" for m in maps) + " |",
             "|---|" + "---|" * len(maps)]
    for name, images in make_ood_sets(test_x, n=n, seed=0).items():
        other = scores(images)
        lines.append(f"| {name} | " + " | ".join(f"{auroc(test[m], other[m]):.3f}" for m in maps) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--maps", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for run in args.runs:
        print(layer_table(run, args.maps) + "\n", flush=True)


if __name__ == "__main__":
    main()
