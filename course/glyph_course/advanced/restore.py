"""Image restoration with an energy model: inpainting and denoising by Langevin dynamics
(IGEBM, Sec. 4.2: "if a model is able to reliably restore test images, it is likely a good
likelihood model").

* :func:`inpaint` - the hidden pixels start from noise (or the mean of the visible ones) and
  follow the exercise's SGLD on ``p(x)``; the visible pixels are clamped, i.e. they stay
  *exactly* the observed values (``ChapterSampler.langevin(..., observed=(images, ~hole))``);
* :func:`denoise` - SGLD from the corrupted image itself (no pixel is trusted);
* :func:`corrupt` - salt-and-pepper or Gaussian corruption, seeded;
* :func:`inpainting_report` - mean squared error on the hidden pixels of the restored images
  against a baseline that fills them with the mean of the *visible pixels of the same image*.

Images are ``(B, 1, H, W)`` in [-1, 1]; masks are boolean, ``True`` = hidden (to restore).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from glyph_ebm.errors import GlyphEBMError
from .sampler import sampler_for

CORRUPTIONS = ("salt_pepper", "gaussian")


def centre_mask(shape, frac: float = 0.3) -> torch.Tensor:
    """Boolean mask ``(1, 1, H, W)``, ``True`` on a centred square covering ``frac`` of the pixels
    (side ``round(sqrt(frac * H * W))``, at most ``min(H, W)``); ``shape`` ends with ``(H, W)``."""
    if not 0.0 < frac < 1.0:
        raise GlyphEBMError(f"the hidden fraction must be in (0, 1), got {frac}")
    if len(shape) < 2:
        raise GlyphEBMError(f"centre_mask needs a shape ending in (H, W), got {tuple(shape)}")
    h, w = int(shape[-2]), int(shape[-1])
    side = min(h, w, max(1, round(math.sqrt(frac * h * w))))
    top, left = (h - side) // 2, (w - side) // 2
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
    mask[..., top:top + side, left:left + side] = True
    return mask


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4:
        raise GlyphEBMError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")


def _visible_mean(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    visible = (~hole).expand_as(images).to(images.dtype)
    return (images * visible).sum((1, 2, 3), keepdim=True) / visible.sum((1, 2, 3), keepdim=True).clamp_min(1)


def mean_fill(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The baseline: hidden pixels replaced by the mean of the visible pixels of each image."""
    return torch.where(hole, _visible_mean(images, hole), images)


def inpaint(model: nn.Module, images: torch.Tensor, hole: torch.Tensor, steps: int = 100,
            step_size: float = 10.0, noise: float = 0.005, y: torch.Tensor | None = None,
            temperature: float = 1.0, grad_clip: float | None = 0.03, fill: str = "noise",
            seed: int = 0, keep_steps=(), chains: int = 1):
    """Restore the pixels where ``hole`` is True by SGLD with the other pixels clamped.

    ``fill``: how the hidden pixels start, ``"noise"`` (uniform in [-1, 1]) or ``"mean"`` (the
    visible mean). ``chains > 1`` runs that many independent chains per image and returns their
    average: one chain is a *sample* of the hidden pixels given the visible ones, the average
    estimates the posterior *mean*, which is the restoration with the least expected squared
    error (a sample pays for every stroke it draws in the wrong place). Returns the restored
    images ``(B, C, H, W)`` (or ``(images, {step: images})`` with ``keep_steps``); visible pixels
    are bitwise equal to ``images``.
    """
    _check_images(images)
    if chains < 1:
        raise GlyphEBMError(f"chains must be at least 1, got {chains}")
    if chains > 1:
        many = images.repeat_interleave(chains, 0)
        ys = None if y is None else torch.as_tensor(y).repeat_interleave(chains, 0)
        out = inpaint(model, many, hole, steps, step_size, noise, ys, temperature, grad_clip, fill, seed, keep_steps)
        if keep_steps:
            final, kept = out
            return (_chain_mean(final, chains, images, hole),
                    {k: _chain_mean(v, chains, images, hole) for k, v in kept.items()})
        return _chain_mean(out, chains, images, hole)
    hole = torch.as_tensor(hole, device=images.device).bool().expand_as(images)
    sampler = sampler_for(model, seed=seed, grad_clip=grad_clip, temperature=temperature)
    if fill == "noise":
        start = (torch.rand(images.shape, generator=sampler.generator) * 2 - 1).to(images.device, images.dtype)
    elif fill == "mean":
        start = _visible_mean(images, hole).expand_as(images)
    else:
        raise GlyphEBMError(f"unknown fill {fill!r}; choose 'noise' or 'mean'")
    x0 = torch.where(hole, start, images)
    return sampler.langevin(x0, steps, step_size, noise, y=y, keep_steps=keep_steps, observed=(images, ~hole))


def _chain_mean(restored: torch.Tensor, chains: int, images: torch.Tensor, hole) -> torch.Tensor:
    """Average ``chains`` consecutive restorations per image; the visible pixels are copied back
    from ``images`` so that they stay bitwise exact (an average of equal floats can round)."""
    mean = restored.view(len(images), chains, *images.shape[1:]).mean(1)
    return torch.where(torch.as_tensor(hole, device=images.device).bool().expand_as(images), mean, images)


def corrupt(images: torch.Tensor, kind: str = "salt_pepper", amount: float = 0.1, seed: int = 0) -> torch.Tensor:
    """``salt_pepper``: a share ``amount`` of the pixels set to -1 or +1 (half each);
    ``gaussian``: add ``N(0, amount^2)`` noise. Values clamped to [-1, 1]."""
    _check_images(images)
    if kind not in CORRUPTIONS:
        raise GlyphEBMError(f"unknown corruption {kind!r}; choose one of {', '.join(CORRUPTIONS)}")
    if not amount >= 0:
        raise GlyphEBMError(f"corruption amount must be >= 0, got {amount}")
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return (images + amount * torch.randn(images.shape, generator=g).to(images)).clamp(-1, 1)
    u = torch.rand(images.shape, generator=g).to(images.device)
    salt = torch.rand(images.shape, generator=g).to(images.device) < 0.5
    return torch.where(u < amount, torch.where(salt, 1.0, -1.0).to(images.dtype), images)


def denoise(model: nn.Module, noisy: torch.Tensor, steps: int = 50, step_size: float = 10.0,
            noise: float = 0.005, y: torch.Tensor | None = None, temperature: float = 1.0,
            grad_clip: float | None = 0.03, seed: int = 0) -> torch.Tensor:
    """SGLD from the corrupted images (all pixels free); returns ``(B, C, H, W)``."""
    _check_images(noisy)
    sampler = sampler_for(model, seed=seed, grad_clip=grad_clip, temperature=temperature)
    return sampler.langevin(noisy, steps, step_size, noise, y=y)


def _masked_mse(a: torch.Tensor, b: torch.Tensor, hole: torch.Tensor) -> float:
    m = hole.expand_as(a).to(a.dtype)
    return float(((a - b).pow(2) * m).sum() / m.sum().clamp_min(1))


def inpainting_report(model: nn.Module, images: torch.Tensor, hole: torch.Tensor | None = None,
                      frac: float = 0.3, steps: int = 100, step_size: float = 10.0, noise: float = 0.005,
                      grad_clip: float | None = 0.03, fill: str = "noise", seed: int = 0,
                      chains: int = 1, y: torch.Tensor | None = None) -> dict:
    """Inpaint ``images`` (hole: ``centre_mask(images.shape, frac)`` unless given) and compare.

    Returns ``{"mse_restored", "mse_mean_fill", "ratio", "factor"}``: mean squared pixel error on
    the hidden pixels of the SGLD restoration and of the baseline that fills them with the mean of
    each image's visible pixels; ``ratio = mse_restored / mse_mean_fill`` (< 1: better than the
    baseline) and ``factor = 1 / ratio`` (> 1: how many times smaller the error is). ``chains``:
    see :func:`inpaint`; ``y``: restore under the class energy ``f(x, y)`` (the label is told).
    """
    _check_images(images)
    hole = centre_mask(images.shape, frac) if hole is None else torch.as_tensor(hole).bool()
    hole = hole.to(images.device)
    restored = inpaint(model, images, hole, steps, step_size, noise, y=y, grad_clip=grad_clip, fill=fill,
                       seed=seed, chains=chains)
    mse_restored = _masked_mse(restored, images, hole)
    mse_mean = _masked_mse(mean_fill(images, hole.expand_as(images)), images, hole)
    ratio = mse_restored / mse_mean if mse_mean > 0 else float("nan")
    return {"mse_restored": mse_restored, "mse_mean_fill": mse_mean, "ratio": ratio,
            "factor": 1 / ratio if ratio > 0 else float("inf")}
