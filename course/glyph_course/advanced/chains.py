"""Where Langevin chains start: the lecture's three choices side by side.

The three implementations of the synthesis step differ only in the start ``x0`` of the chain
(``chain_init`` of :class:`~.sampler.ChapterSampler`, which training uses):

* ``persistent`` - continue past chains: start from the replay buffer, optionally augmented
  (improved CD's data-augmentation transitions);
* ``data``       - contrastive divergence proper: ``k`` steps starting at training images;
* ``noise``      - non-persistent short-run MCMC: ``k`` steps from fresh noise every time.

:func:`compare_chain_inits` starts chains in each of the three ways with one sampler (a given
buffer, given data images, fresh noise), runs the same number of the exercise's SGLD steps from
each and judges the results with the energy, the distance moved and (optionally) the glyph
classifier (IS/FID).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .sampler import sampler_for


@torch.no_grad()
def _energy(model: nn.Module, x: torch.Tensor) -> float:
    return float((-model(x)).mean())


def compare_chain_inits(model: nn.Module, data: torch.Tensor, steps: int, step_size: float, noise: float,
                        buffer: torch.Tensor | None = None, judge: nn.Module | None = None,
                        reference: torch.Tensor | None = None, n: int = 128, grad_clip: float | None = None,
                        fresh: str = "uniform", seed: int = 0) -> dict[str, dict]:
    """Run ``steps`` SGLD steps from each kind of start and describe the results.

    Args:
        model: ``forward(x) = f(x) = -E(x)`` (unconditional).
        data: images to start CD chains from (e.g. test images), ``(N, 1, H, W)``.
        buffer: a trained run's replay buffer for the persistent start (skipped when None).
        judge, reference: glyph classifier and real images for IS/FID (skipped when None).
        fresh: ``"uniform"`` or ``"gaussian"`` (std 1, clamped) noise for the short-run start.

    Returns ``{mode: {"energy_start", "energy_end", "moved" (mean L2 distance per image),
    "is", "fid"}}`` for the modes ``persistent`` (if a buffer is given), ``data`` and ``noise``.
    """
    from .. import metrics

    device = next(model.parameters()).device
    sampler = sampler_for(model, seed=seed, grad_clip=grad_clip, img_shape=data.shape[1:], fresh=fresh,
                          init_std=1.0, reinit_frac=0.0)
    if buffer is not None and len(buffer):      # a full buffer: every persistent chain comes from it
        sampler.buffer, sampler.max_len = buffer.detach().cpu().float(), len(buffer)
        sampler.buffer_labels = torch.full((len(buffer),), -1, dtype=torch.long)
    sampler.data = (data.to(device), None)
    out = {}
    for mode in ("persistent", "data", "noise"):
        if mode == "persistent" and not len(sampler.buffer):
            continue
        sampler.chain_init = mode
        x0 = sampler.start_chains(n)[0].to(device)
        x = sampler.langevin(x0, steps, step_size, noise)
        row = {"energy_start": _energy(model, x0), "energy_end": _energy(model, x),
               "moved": float((x - x0).flatten(1).norm(dim=1).mean())}
        if judge is not None and reference is not None:
            row.update(metrics.sample_quality(judge, x.cpu(), reference))
        out[mode] = row
    return out
