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


def graph_size(t: torch.Tensor, cap: int = 100_000) -> int:
    """Number of autograd nodes behind ``t`` (0 for a leaf or a tensor without history),
    counted up to ``cap``: grows with every step of a chain that keeps its graph."""
    seen, todo = set(), [t.grad_fn] if t.grad_fn is not None else []
    while todo and len(seen) < cap:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(nxt for nxt, _ in node.next_functions)
    return len(seen)


class GraphProbe(QuadraticEnergy):
    """A :class:`QuadraticEnergy` that also records, for every evaluation, the size of the
    autograd graph behind its input (:func:`graph_size`) in ``graph_sizes``."""

    def __init__(self, centers: torch.Tensor, precision: float = 1.0):
        super().__init__(centers, precision)
        self.graph_sizes: list[int] = []

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.graph_sizes.append(graph_size(x))
        return super().forward(x, y)


class StandInNetwork(QuadraticEnergy):
    """Takes the place of the student's ``CNNModel`` while another task is checked, so that a
    bug (or a missing part) of the network costs points in task 3.2 only.

    Same constructor as ``CNNModel(num_classes, hidden, in_channels, ...)``; one constant
    centre image per class (broadcast over any image size), ``E_k(x) = ||x - c_k||^2 / 2``.
    """

    def __init__(self, num_classes: int = 42, hidden: int = 32, in_channels: int = 1, *args, **kwargs):
        super().__init__(torch.zeros(num_classes, in_channels, 1, 1), precision=1.0)
        self.num_classes = num_classes

    def energy_per_class(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.unsqueeze(1) - self.centers.unsqueeze(0)
        return 0.5 * self.precision * diff.pow(2).flatten(2).sum(2)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        self.grad_calls += int(x.requires_grad)
        self.labels_seen.append(None if y is None else y.detach().cpu().clone())
        center = self.centers[0] if y is None else self.centers[y.long()]
        return -0.5 * self.precision * (x - center).pow(2).flatten(1).sum(1)


def with_logits(network_class: type, logits_fn) -> nn.Module:
    """An instance of a subclass of ``network_class`` (the student's ``CNNModel``) whose
    ``get_logits(x)`` returns ``logits_fn(x)`` and whose own ``__init__`` is not run: the
    student's ``forward`` is then checked against known logits, whatever ``get_logits`` does."""

    class KnownLogits(network_class):
        def __init__(self):
            nn.Module.__init__(self)

        def get_logits(self, x):
            return logits_fn(x)

    KnownLogits.__name__ = KnownLogits.__qualname__ = f"{network_class.__name__}WithKnownLogits"
    return KnownLogits()


class ShiftChains:
    """Stands in for the Langevin step while the replay buffer is checked: every call moves
    each chain by ``shift`` per step (clamped to [-1, 1]) and records its starts, so the buffer
    can be checked without depending on the student's SGLD. Use :func:`with_shift_chains`."""

    shift = 0.0

    def langevin(self, x, steps, step_size, noise, y=None, keep_steps=()):
        self.langevin_starts = x.detach().clone()
        out = (x.detach() + self.shift * steps).clamp(-1.0, 1.0)
        if keep_steps:
            return out, {k: (x.detach() + self.shift * k).clamp(-1.0, 1.0) for k in keep_steps}
        return out


def with_shift_chains(sampler_class: type, shift: float) -> type:
    """A subclass of the student's ``MCMCSampler`` whose ``langevin`` is :class:`ShiftChains`."""
    return type(f"{sampler_class.__name__}WithShiftChains", (ShiftChains, sampler_class), {"shift": float(shift)})


class StandInSampler:
    """Takes the place of the student's ``MCMCSampler`` while ``run_generation`` (3.5) is
    checked: the same constructor and methods, chains that start at ``init_std * N(0, I)`` and
    move by ``+step_size`` per step (no Langevin dynamics), and a record of every call in
    ``StandInSampler.made`` so the check can see what ``run_generation`` asked for."""

    made: list = []

    def __init__(self, model, img_shape, sample_size, max_len=10000, reinit_frac=0.05, init_std=0.01,
                 grad_clip=None, seed=0, **kwargs):
        self.model, self.img_shape, self.sample_size = model, tuple(img_shape), int(sample_size)
        self.settings = {"max_len": max_len, "reinit_frac": reinit_frac, "init_std": init_std,
                         "grad_clip": grad_clip, "seed": seed, **kwargs}
        self.calls: list[tuple] = []
        self.generator = torch.Generator().manual_seed(int(seed))
        StandInSampler.made.append(self)

    def sample_initial(self, n, y=None):
        self.calls.append(("sample_initial", n, y))
        x0 = self.settings["init_std"] * torch.randn((n, *self.img_shape), generator=self.generator)
        return x0, torch.full((n,), -1, dtype=torch.long)

    def langevin(self, x, steps, step_size, noise, y=None, keep_steps=()):
        self.calls.append(("langevin", steps, step_size, noise, y))
        self.started_from = x.detach().clone()
        final = x.detach() + step_size * steps
        if keep_steps:
            return final, {k: x.detach() + step_size * k for k in keep_steps}
        return final

    def update_buffer(self, x, slots, y=None):
        self.calls.append(("update_buffer", len(x)))

    def sample(self, steps=20, step_size=1.0, noise=0.01, y=None):
        n = self.sample_size if y is None else len(y)
        x0, slots = self.sample_initial(n, y)
        x = self.langevin(x0, steps, step_size, noise, y=y)
        self.update_buffer(x, slots, y)
        return x
