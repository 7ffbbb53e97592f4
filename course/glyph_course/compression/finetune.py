"""Short fine-tuning of a compressed energy model, keeping pruned weights at zero.

The objective is the exercise's JEM loss: ``pyx_weight * CE(get_logits(x), y)`` plus, when a
sampler is given, ``px_weight * (mean E(x_real) - mean E(x_fake) + alpha * (mean E(x_real)^2 +
mean E(x_fake)^2))``. The sampler is any callable ``model -> x_fake`` (for example the
exercise's ``MCMCSampler(model, ...).sample``), so this module needs no exercise code.

With a ``teacher`` (the model before compression), an *energy anchor* is added:
``anchor_weight * mean (f(x) - f_teacher(x))^2`` over the batch and, when given, over
``anchor_images`` (e.g. the teacher's replay buffer). OOD detection reads the energy landscape
itself, not only the classifier, and the anchor restores that landscape directly; it costs
one forward pass of the teacher instead of an SGLD chain.
Weights that are exactly zero when fine-tuning starts (unstructured pruning) stay zero: their
gradients are masked and they are re-zeroed after every step.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def finetune(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 200,
             lr: float = 5e-4, batch_size: int = 128, sampler: Callable[[nn.Module], torch.Tensor] | None = None,
             px_weight: float = 0.3, pyx_weight: float = 1.0, alpha: float = 0.1, seed: int = 0,
             keep_zeros: bool = True, teacher: nn.Module | None = None, anchor_weight: float = 1.0,
             anchor_images: torch.Tensor | None = None) -> dict:
    """Fine-tune ``model`` in place; returns ``{"step": [...], "loss": [...]}`` every 10 steps."""
    if teacher is not None:
        teacher.eval()
    masks = {name: (p != 0) for name, p in model.named_parameters() if keep_zeros and p.dim() > 1}
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"step": [], "loss": []}
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=g)
        x, y = images[idx], labels[idx]
        loss = pyx_weight * F.cross_entropy(model.get_logits(x), y)
        if sampler is not None and px_weight > 0:
            x_fake = sampler(model).detach()
            e_real, e_fake = -model(x), -model(x_fake)
            loss = loss + px_weight * (e_real.mean() - e_fake.mean()
                                       + alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean()))
        if teacher is not None and anchor_weight > 0:
            xa = x
            if anchor_images is not None and len(anchor_images):
                ia = torch.randint(len(anchor_images), (len(x),), generator=g)
                xa = torch.cat([x, anchor_images[ia]])
            with torch.no_grad():
                target = teacher(xa)
            loss = loss + anchor_weight * F.mse_loss(model(xa), target)
        opt.zero_grad()
        loss.backward()
        for name, p in model.named_parameters():
            if name in masks and p.grad is not None:
                p.grad.mul_(masks[name])
        opt.step()
        with torch.no_grad():          # Adam's momentum could still move a masked weight
            for name, p in model.named_parameters():
                if name in masks:
                    p.mul_(masks[name])
        if step == 1 or step % 10 == 0 or step == steps:
            history["step"].append(step)
            history["loss"].append(float(loss.detach()))
    model.eval()
    return history
