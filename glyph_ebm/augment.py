"""Augmented chain starts: transitions that move a chain somewhere new before it runs.

Persistent chains explore slowly: a chain taken from the replay buffer starts where it stopped,
so the negatives of one training step look much like those of the last, and whole regions of
image space (small glyphs, faint prints, shifted crops) are never visited by any chain, and their
energy is never pushed up. Improved contrastive divergence (Du et al. 2021, Sec. 3.2) therefore
applies data augmentations as Markov-chain transitions. :class:`ChainStartAugment` does this for
the exercise's sampler (``MCMCSampler(start_transform=...)``, given code): each start is, with
probability ``p``, zoomed (out or in), turned, shifted and faded towards its paper, then the
Langevin steps continue from there.

Images are ``(N, 1, H, W)`` in [-1, 1] (ink dark); the transform keeps that range.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class ChainStartAugment:
    """Random zoom, turn, shift and fade of a share ``p`` of chain starts.

    Args:
        p: probability that a start is transformed.
        scale: range of the zoom factor (< 1 shrinks the glyph, > 1 enlarges it).
        degrees: largest turn, either way.
        shift: largest shift, as a share of the image side.
        fade: range of the contrast kept (1 = unchanged, 0.3 = a faint print).
    """

    def __init__(self, p: float = 0.5, scale=(0.5, 1.2), degrees: float = 15.0, shift: float = 0.15,
                 fade=(0.3, 1.0)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.scale, self.degrees, self.shift, self.fade = float(p), scale, float(degrees), float(shift), fade

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Transformed starts ``(N, C, H, W)`` (``x`` is not changed in place)."""
        n = len(x)
        if n == 0 or self.p == 0:
            return x

        def uniform(lo, hi):
            return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float32)

        chosen = torch.rand(n, generator=generator) < self.p
        zoom, turn = uniform(*self.scale), uniform(-self.degrees, self.degrees) * math.pi / 180
        tx, ty = uniform(-self.shift, self.shift) * 2, uniform(-self.shift, self.shift) * 2
        keep = uniform(*self.fade)
        if not bool(chosen.any()):
            return x
        source = x.detach().float().cpu()
        paper = source.flatten(1).quantile(0.9, dim=1).view(-1, 1, 1, 1)      # the background level
        cos, sin = torch.cos(turn) / zoom, torch.sin(turn) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(source.shape), align_corners=False)
        moved = F.grid_sample(source - paper, grid, align_corners=False, padding_mode="zeros") * keep.view(-1, 1, 1, 1)
        out = torch.where(chosen.view(-1, 1, 1, 1), (moved + paper).clamp(-1.0, 1.0), source)
        return out.to(device=x.device, dtype=x.dtype)
