"""Class-preserving augmentations of printed glyphs, vectorised over a batch.

Du et al. (2021, Sec. 2.3) start training chains from *augmented* replay-buffer samples and,
during long-run generation, apply an augmentation jump every 20 Langevin steps, so that chains
move between similar images instead of freezing in one mode. Their augmentations were made for
photos (colour jitter, horizontal flips, crops, blur). For glyphs a flip changes the letter
(b/d, p/q), so here only changes that a printed letter survives are used:

* a small random affine map: shift (pixels), rotation (degrees), scale;
* stroke weight: thicker (3x3 min-pooling, ink is dark) or thinner (3x3 max-pooling) strokes;
* blur (3x3 Gaussian), as from a worn type or a soft scan;
* contrast and ink/paper brightness jitter.

Images are ``(B, 1, H, W)`` tensors in [-1, 1] (-1 = ink, +1 = paper); every image gets its own
random parameters. All random draws come from a ``torch.Generator`` (the augmenter's own,
seeded, or one passed to the call), so a seed gives the same augmentations on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from glyph_ebm.augment import gaussian_blur
from glyph_ebm.errors import GlyphEBMError


@dataclass
class GlyphAugment:
    """Random glyph augmentation; call it on a batch: ``GlyphAugment(seed=0)(x)``.

    Args:
        shift: largest translation in pixels (uniform in ``[-shift, shift]`` per axis).
        rotate: largest rotation in degrees.
        scale: ``(low, high)`` range of the zoom factor (> 1 = larger glyph).
        stroke_prob: probability of changing the stroke weight (thicker or thinner, half each).
        stroke_amount: how far towards the 3x3 min/max-pooled image (1 = one pixel all round).
        blur_prob: probability of a 3x3 Gaussian blur of width ``blur_sigma`` pixels.
        contrast: contrast factor uniform in ``[1 - contrast, 1 + contrast]`` around the image mean.
        ink: brightness shift uniform in ``[-ink, ink]`` (in the [-1, 1] pixel scale).
        strength: multiplies ``shift``, ``rotate``, the scale range's distance from 1,
            ``contrast`` and ``ink`` (0 = only the probabilistic stroke/blur changes remain).
        seed: seed of the augmenter's own generator.
    """

    shift: float = 2.0
    rotate: float = 6.0
    scale: tuple[float, float] = (0.92, 1.08)
    stroke_prob: float = 0.3
    stroke_amount: float = 0.6
    blur_prob: float = 0.2
    blur_sigma: float = 0.6
    contrast: float = 0.15
    ink: float = 0.1
    strength: float = 1.0
    seed: int = 0
    generator: torch.Generator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lo, hi = self.scale
        checks = {"shift": self.shift, "rotate": self.rotate, "contrast": self.contrast, "ink": self.ink,
                  "strength": self.strength, "blur_sigma": self.blur_sigma}
        for name, value in checks.items():
            if not value >= 0:
                raise GlyphEBMError(f"augmentation {name} must be >= 0, got {value}")
        if not 0 < lo <= hi:
            raise GlyphEBMError(f"augmentation scale range must satisfy 0 < low <= high, got {self.scale}")
        for name in ("stroke_prob", "stroke_amount", "blur_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise GlyphEBMError(f"augmentation {name} must be in [0, 1], got {getattr(self, name)}")
        if self.contrast * self.strength >= 1:
            raise GlyphEBMError(f"augmentation contrast x strength must be < 1, got {self.contrast * self.strength}")
        self.generator = torch.Generator().manual_seed(int(self.seed))

    # -- state (for exact resume) ----------------------------------------------------------
    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    # -- the augmentation ------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augmented copy of ``x`` (``(B, C, H, W)`` in [-1, 1]); same shape, values in [-1, 1]."""
        if x.dim() != 4:
            raise GlyphEBMError(f"augmentations expect images (B, C, H, W), got shape {tuple(x.shape)}")
        g = self.generator if generator is None else generator
        n, dev, s = len(x), x.device, self.strength

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return (lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)).to(dev, x.dtype)

        angle = uniform(-1, 1) * math.radians(self.rotate * s)
        lo, hi = 1 + (self.scale[0] - 1) * s, 1 + (self.scale[1] - 1) * s
        zoom = uniform(math.log(lo), math.log(hi)).exp()
        h, w = x.shape[-2:]
        tx, ty = uniform(-1, 1) * (2 * self.shift * s / w), uniform(-1, 1) * (2 * self.shift * s / h)
        stroke = torch.rand(n, generator=g)
        blur = torch.rand(n, generator=g) < self.blur_prob
        contrast = uniform(1 - self.contrast * s, 1 + self.contrast * s)
        ink = uniform(-self.ink * s, self.ink * s)

        out = self._affine(x, angle, zoom, tx, ty)
        out = self._stroke(out, stroke)
        out = self._blur(out, blur.to(dev))
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * contrast.view(-1, 1, 1, 1) + mean + ink.view(-1, 1, 1, 1)
        return out.clamp(-1.0, 1.0)

    @staticmethod
    def _affine(x, angle, zoom, tx, ty) -> torch.Tensor:
        # output pixel p samples the input at A p + t, A = R(angle) / zoom (normalised coordinates)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _stroke(self, x, u) -> torch.Tensor:
        thicker = (u < self.stroke_prob / 2).to(x.device).view(-1, 1, 1, 1)
        thinner = ((u >= self.stroke_prob / 2) & (u < self.stroke_prob)).to(x.device).view(-1, 1, 1, 1)
        if not bool(thicker.any() or thinner.any()):
            return x
        dark = -F.max_pool2d(-x, 3, stride=1, padding=1)    # min-pooling spreads the (dark) ink
        light = F.max_pool2d(x, 3, stride=1, padding=1)     # max-pooling spreads the paper
        target = torch.where(thicker, dark, torch.where(thinner, light, x))
        return x + self.stroke_amount * (target - x)

    def _blur(self, x, mask) -> torch.Tensor:
        return gaussian_blur(x, mask.float() * self.blur_sigma, radius=1)     # width 0: unchanged
