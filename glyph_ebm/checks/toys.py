"""Small models with known answers, used by the grading checks instead of a trained CNN.

They follow the exercise's convention: ``forward(x, y=None)`` returns ``f(x) = -E(x)`` of shape
``(B,)``; ``get_logits(x)`` returns ``(B, K)``. Because their energies are simple quadratics,
the checks know exactly where SGLD must go, what a loss must be, and which images an OOD
detector must rank higher.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class QuadraticEnergy(nn.Module):
    """``E_k(x) = precision / 2 * ||x - c_k||^2`` around one centre image ``c_k`` per class.

    * ``forward(x)`` uses the first centre: ``f(x) = -E_0(x)``, i.e. the Gibbs density is a
      Gaussian with mean ``c_0`` and variance ``1 / precision`` in every pixel;
    * ``forward(x, y)`` uses the centre of class ``y[i]`` for image ``i``;
    * ``get_logits(x)[:, k] = -E_k(x)``.

    ``precision = 0`` gives a flat energy (zero gradient everywhere). The centres are
    parameters, so stray parameter gradients can be detected; ``grad_calls`` counts the
    evaluations made with an input that requires a gradient (one per SGLD step) and
    ``labels_seen`` records the ``y`` of every call.
    """

    def __init__(self, centers: torch.Tensor, precision: float = 1.0):
        super().__init__()
        centers = torch.as_tensor(centers, dtype=torch.float32)
        self.centers = nn.Parameter(centers.clone())                      # (K, C, H, W)
        self.register_buffer("precision", torch.tensor(float(precision)))
        self.calls = 0
        self.grad_calls = 0
        self.labels_seen: list = []

    def energy_per_class(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.unsqueeze(1) - self.centers.unsqueeze(0)                # (B, K, C, H, W)
        return 0.5 * self.precision * diff.pow(2).flatten(2).sum(2)       # (B, K)

    def get_logits(self, x: torch.Tensor) -> torch.Tensor:
        return -self.energy_per_class(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        self.grad_calls += int(x.requires_grad)
        self.labels_seen.append(None if y is None else y.detach().cpu().clone())
        center = self.centers[0].expand_as(x) if y is None else self.centers[y.long()]
        return -0.5 * self.precision * (x - center).pow(2).flatten(1).sum(1)


def constant_images(values, img_shape) -> torch.Tensor:
    """One image per value, every pixel equal to it: ``(len(values), *img_shape)``."""
    values = torch.as_tensor(values, dtype=torch.float32)
    return values.view(-1, *([1] * len(img_shape))).expand(-1, *img_shape).clone()


class FixedSampler:
    """Stands in for the SGLD sampler in loss checks: every ``sample`` call returns the same
    "fake" images (``len(y)`` of them when labels are given) and records its labels."""

    def __init__(self, x_fake: torch.Tensor):
        self.x_fake = x_fake
        self.sample_size = len(x_fake)
        self.labels: list = []

    def sample(self, *args, y=None, **kwargs) -> torch.Tensor:
        if y is None and len(args) >= 4:   # sample(steps, step_size, noise, y)
            y = args[3]
        self.labels.append(None if y is None else torch.as_tensor(y).detach().cpu().clone())
        n = len(self.x_fake) if y is None else len(y)
        return self.x_fake[torch.arange(n) % len(self.x_fake)].clone()
