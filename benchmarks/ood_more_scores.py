"""Scores tried beside the OOD study's seven and not taken into it: do they close its gaps?

With its first seven scores, `glyph-course ood RUN` reached AUROC 0.95 (or the set's ceiling) on
nine of its eleven sets with the shipped model; worn type (`degraded`) and non-letter marks
(`symbols`) stayed just under (the study's eighth score, `knn_layers`, closes both:
benchmarks/ood_layers.py). This script scores the same images (the study's 1,000 test glyphs and
1,000 per set, same seed) with further scores built on the same penultimate features ``h`` (the
input of the last linear layer, ``logits = W h + b``), higher = more out-of-distribution:

* ``energy``: ``E(x) = -f(x)``, the exercise's score, for comparison;
* ``vim``: Virtual-logit Matching (Wang et al. 2022): the norm of ``h - u`` outside the principal
  subspace of the training features (``u = -W^+ b``; the subspace of the ``D`` largest
  eigenvalues, ``D`` = a third of the dimension), scaled by ``alpha`` = mean max logit / mean
  residual norm on training glyphs, minus ``logsumexp(logits)``; ``vim_residual``: that norm alone;
* ``react``: the energy of the logits after clipping ``h`` at the 90th percentile of the
  training features (ReAct, Sun et al. 2021);
* ``knn_k``: the study's nearest-neighbour score (Sun et al. 2022) with ``k`` = 1, 3, 10, 50
  (the study uses ``k = 3``);
* ``energy+knn``: the sum of the energy and the ``k = 3`` score, each standardised on the test
  glyphs (mean 0, standard deviation 1).

Prints a Markdown table of AUROC, one row per set::

    .venv/bin/python benchmarks/ood_more_scores.py pretrained/jem_quick.pt [--n 1000] [--threads 2]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from glyph_course import ood_study as study
from glyph_course.metrics import auroc, energies
from glyph_course.subject import load_subject
from glyph_ebm.datasets import spread_subset, to_tensor
from glyph_ebm.ood import make_ood_sets

K_VALUES = (1, 3, 10, 50)


class FeatureScores:
    """The further scores of one model, fitted on the penultimate features of its training glyphs."""

    def __init__(self, model: torch.nn.Module, train_x: np.ndarray):
        self.model = model.float().eval()
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        self.W, self.b = last.weight.detach().double(), last.bias.detach().double()
        train = study.image_features(self.model, train_x)
        self.origin = -torch.linalg.pinv(self.W) @ self.b
        centred = train - self.origin
        evals, evecs = torch.linalg.eigh(centred.T @ centred / len(centred))
        keep = train.shape[1] // 3
        self.null_space = evecs[:, evals.argsort(descending=True)[keep:]]
        self.alpha = float(self.logits(train).max(1).values.mean() / self.residual(train).mean())
        sample = train.flatten()[torch.randperm(train.numel(), generator=torch.Generator().manual_seed(0))[:10**6]]
        self.clip = float(torch.quantile(sample, 0.9))
        self.neighbours = {k: study.NearestNeighbours(train, k) for k in K_VALUES}

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.W.T + self.b

    def residual(self, h: torch.Tensor) -> torch.Tensor:
        return ((h - self.origin) @ self.null_space).norm(dim=1)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        h = study.image_features(self.model, images)
        residual = self.residual(h)
        out = {"energy": energies(self.model, to_tensor(images)),
               "vim": (self.alpha * residual - torch.logsumexp(self.logits(h), 1)).numpy(),
               "vim_residual": residual.numpy(),
               "react": (-torch.logsumexp(self.logits(h.clamp(max=self.clip)), 1)).numpy()}
        for k, neighbours in self.neighbours.items():
            out[f"knn_{k}"] = neighbours.score(h)
        return out


def standardised_sum(test: dict, other: dict, names=("energy", "knn_3")) -> tuple[np.ndarray, np.ndarray]:
    """``sum_s (score_s - mean_s) / std_s`` over ``names``, mean and std from the test glyphs."""
    a, b = 0.0, 0.0
    for s in names:
        mu, sd = test[s].mean(), test[s].std()
        a, b = a + (test[s] - mu) / sd, b + (other[s] - mu) / sd
    return a, b


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder or pretrained weights file")
    parser.add_argument("--n", type=int, default=1000, help="test glyphs and images per OOD set (the study's default)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    subject = load_subject(args.run)
    test_x, _ = subject.splits.split("test")
    test_x = test_x[spread_subset(len(test_x), args.n, 0)]          # as the study picks them
    scores = FeatureScores(subject.model, subject.splits.split("train")[0])
    test = scores(test_x)
    names = [*test, "energy+knn"]
    print(f"ViM: {scores.null_space.shape[0]}-dimensional features, alpha {scores.alpha:.4g}; "
          f"ReAct clip {scores.clip:.3g}\n")
    print("| set | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for name, images in make_ood_sets(test_x, n=args.n, seed=0).items():
        other = scores(images)
        cells = [auroc(test[s], other[s]) for s in test] + [auroc(*standardised_sum(test, other))]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
