"""Augmented chain starts: transitions that move a chain somewhere new before it runs.

Persistent chains explore slowly: a chain taken from the replay buffer starts where it stopped,
so the negatives of one training step look much like those of the last, and whole regions of
image space (small glyphs, faint prints, shifted crops) are never visited by any chain, and their
energy is never pushed up. Improved contrastive divergence (Du et al. 2021, Sec. 3.2) therefore
applies data augmentations as Markov-chain transitions. :class:`ChainStartAugment` does this for
the exercise's sampler (``MCMCSampler(start_transform=...)``, given code): each start is, with
probability ``p``, zoomed (out or in), turned, shifted, blurred and faded towards its paper, then
the Langevin steps continue from there.

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
        blur: range of the width (pixels) of a Gaussian blur (0 = sharp), as of a soft scan.
        fade: range of the contrast kept (1 = unchanged, 0.3 = a faint print).
    """

    def __init__(self, p: float = 0.5, scale=(0.5, 1.2), degrees: float = 15.0, shift: float = 0.15,
                 blur=(0.0, 2.0), fade=(0.3, 1.0)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.scale, self.degrees, self.shift, self.fade = float(p), scale, float(degrees), float(shift), fade
        self.blur = blur

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
        sigma = uniform(*self.blur)
        if not bool(chosen.any()):
            return x
        source = x.detach().float().cpu()
        paper = source.flatten(1).quantile(0.9, dim=1).view(-1, 1, 1, 1)      # the background level
        cos, sin = torch.cos(turn) / zoom, torch.sin(turn) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(source.shape), align_corners=False)
        moved = gaussian_blur(F.grid_sample(source - paper, grid, align_corners=False, padding_mode="zeros"), sigma)
        moved = moved * keep.view(-1, 1, 1, 1)
        out = torch.where(chosen.view(-1, 1, 1, 1), (moved + paper).clamp(-1.0, 1.0), source)
        return out.to(device=x.device, dtype=x.dtype)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int | None = None) -> torch.Tensor:
    """Blur each image of ``x`` ``(N, C, H, W)`` with a Gaussian of its own width ``sigma[i]``
    (pixels; 0 leaves the image unchanged). The kernel reaches ``radius`` pixels either way
    (default: three widths of the widest blur); borders are extended with their edge values."""
    sigma = torch.as_tensor(sigma).detach().to("cpu", torch.float32).reshape(-1)    # widths on any device
    if len(sigma) != len(x):
        raise ValueError(f"one blur width per image: {len(sigma)} widths for {len(x)} images")
    if len(x) == 0 or float(sigma.max()) <= 0:
        return x
    radius = max(1, math.ceil(3 * float(sigma.max()))) if radius is None else int(radius)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t.pow(2) / (2 * sigma.clamp_min(1e-6).pow(2)[:, None]))       # (N, 2r+1)
    k = (k / k.sum(1, keepdim=True)).to(device=x.device, dtype=x.dtype)
    n, c, h, w = x.shape
    flat = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    rows = k.repeat_interleave(c, 0)                                              # (N*C, 2r+1)
    flat = F.conv2d(flat, rows.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(flat, rows.view(n * c, 1, -1, 1), groups=n * c)
    return flat.reshape(n, c, h, w)
