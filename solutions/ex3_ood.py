"""Exercise 3.6 helpers: the OOD score and the OOD test sets.

Score function ``s(x) = E(x) = -f(x)``: in-distribution images get low energy, so a *higher*
score means *more* out-of-distribution. Sets (see :mod:`glyph_ebm.ood`): Gaussian and uniform
noise, glyphs rotated by 90 degrees, glyphs flipped upside down, size-reduced glyphs, and
scikit-learn's handwritten digits upscaled to glyph size.
"""
from __future__ import annotations

import numpy as np
import torch

from glyph_ebm import ood
from glyph_ebm.datasets import to_tensor


def score(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """OOD score ``E(x) = -f(x)`` of each image, shape ``(B,)`` (higher = more OOD)."""
    return -model(x, y)


def get_ood_sets(id_images: np.ndarray, n: int | None = None, seed: int = 0,
                 names=ood.OOD_SETS) -> dict[str, torch.Tensor]:
    """OOD image tensors ``{name: (n, 1, 56, 56)}`` in [-1, 1], built from the ID test images
    (uint8 ``(N, 56, 56)``) so that they share the test set's size and paper/ink colours."""
    sets = ood.make_ood_sets(id_images, n=n, seed=seed, names=names)
    return {name: to_tensor(images) for name, images in sets.items()}
