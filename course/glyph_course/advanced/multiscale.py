"""A multi-scale energy: one network per resolution, energies summed (Du et al. 2021, Sec. 2.4).

``E(x) = sum_s E_s(pool_s(x))`` with ``pool_s`` the ``s x s`` average pooling (full, half and
quarter resolution by default). For a JEM the *logits* are summed,

    logits(x) = sum_s logits_s(pool_s(x))            (B, C)
    f(x)      = logsumexp_y logits(x)[y]             (B,)   = -E(x)
    f(x, y)   = logits(x)[y]                         (B,)

so the sum is still a classifier (``softmax(logits)``), and the class-conditional energies are
sums over scales as well. Average pooling is differentiable, so Langevin sampling runs on the
full-resolution image unchanged. The exercise's ``CNNModel`` accepts any input size (adaptive
pooling), so the same architecture serves every scale (56, 28 and 14 pixels for glyphs); the
coarse networks cost about 1/4 and 1/16 of the full one.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from glyph_ebm.errors import GlyphEBMError


class MultiScaleEnergy(nn.Module):
    """Sum of networks on average-pooled copies of the input.

    Args:
        nets: one network per scale, each with ``get_logits(x) -> (B, C)``.
        scales: pooling factor of each network (1 = full resolution, 2 = half, 4 = quarter).
    """

    def __init__(self, nets: Sequence[nn.Module], scales: Sequence[int] = (1, 2, 4)):
        super().__init__()
        if len(nets) != len(scales) or not nets:
            raise GlyphEBMError(f"MultiScaleEnergy needs one network per scale; got {len(nets)} networks "
                                f"for scales {list(scales)}")
        if any(int(s) != s or s < 1 for s in scales):
            raise GlyphEBMError(f"scales must be whole numbers >= 1, got {list(scales)}")
        self.nets = nn.ModuleList(nets)
        self.scales = tuple(int(s) for s in scales)
        self.num_classes = getattr(nets[0], "num_classes", None)

    @classmethod
    def from_factory(cls, make_net: Callable[[], nn.Module], scales: Sequence[int] = (1, 2, 4)) -> "MultiScaleEnergy":
        """One fresh network per scale from ``make_net()``."""
        return cls([make_net() for _ in scales], scales)

    @staticmethod
    def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H // scale, W // scale)`` by average pooling (identity for 1)."""
        if scale == 1:
            return x
        if x.shape[-1] < scale or x.shape[-2] < scale:
            raise GlyphEBMError(f"images of size {tuple(x.shape[-2:])} are too small for scale {scale}")
        return F.avg_pool2d(x, scale)

    def get_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Summed class logits ``(B, C)`` of all scales; ``x``: ``(B, 1, H, W)`` in [-1, 1]."""
        return sum(net.get_logits(self.downsample(x, s)) for net, s in zip(self.nets, self.scales))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``f(x) = -E(x)`` of shape ``(B,)``: logsumexp of the summed logits, or the summed
        logit of class ``y[i]`` when labels are given (as ``CNNModel.forward``)."""
        logits = self.get_logits(x)
        if y is None:
            return torch.logsumexp(logits, dim=1)
        return logits.gather(1, y.view(-1, 1).long()).squeeze(1)
