"""Exercise 3.2: the energy function, a small CNN.

Sign convention (as in the sheet and the JEM paper): the network returns the *negative*
energy, ``f(x) = -E(x)``. High f means low energy means high probability.

Three uses of one network with ``C`` outputs ("logits"):

* EBM / unconditional JEM: ``f(x) = logsumexp_y logits(x)[y]``  (so ``E(x) = -f(x)``)
* class-conditional JEM:   ``f(x, y) = logits(x)[y]``
* classifier:              ``q(y | x) = softmax(logits(x))[y]``

For a plain EBM, the logsumexp of the logits is just one scalar head built from ``C`` numbers,
so the same network serves all three cases.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class CNNModel(nn.Module):
    """Small convolutional energy network for grey images of any size.

    Args:
        num_classes: number of logits ``C`` (42 for the glyph set; comes from the data).
        hidden: width of the first conv layer; deeper layers use 2x and 4x this width.
        in_channels: image channels (1 for grey glyphs).
        pool: side of the grid the feature maps are averaged to.

    The architecture (the conv stack ``features`` is given; you add the rest, Exercise 3.2a):

    1. ``features``: four 3x3/5x5 convolutions with SiLU, ``hidden -> 2 hidden -> 4 hidden``
       channels, the image side shrinking 8-fold (56 -> 7);
    2. adaptive average pooling of the feature maps to a ``pool x pool`` grid, whatever the
       input size (56x56 glyphs, 28x28 thumbnails, ...); a small grid rather than one average
       keeps *where* the strokes are, which letters need (b, d, p and q differ mainly by position);
    3. a head: flatten, a linear layer to ``4 hidden`` units, SiLU, a linear layer to
       ``num_classes`` logits.

    What the checks test is the contract of :meth:`get_logits`, not this exact layout: you may
    adapt the internals (more layers, other widths) as long as images of any size give ``(B, C)``
    logits, every parameter is used, and the images of a batch do not influence each other (so
    no batch norm: it couples the chains of an SGLD batch and breaks sampling). Keep the
    activations smooth (SiLU/Swish), so that input gradients are informative everywhere. (The
    shipped pretrained weights fit only the layout above.)
    """

    def __init__(self, num_classes: int = 42, hidden: int = 32, in_channels: int = 1, pool: int = 4):
        super().__init__()
        c1, c2, c3 = hidden, 2 * hidden, 4 * hidden
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5, stride=2, padding=2),  # 56 -> 28
            nn.SiLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),           # 28 -> 14
            nn.SiLU(),
            nn.Conv2d(c2, c2, kernel_size=3, stride=1, padding=1),
            nn.SiLU(),
            nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1),           # 14 -> 7
            nn.SiLU(),
        )
        # BEGIN SOLUTION 3.2a: the pooling to a pool x pool grid and the head of the class docstring (steps 2 and 3)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * pool * pool, c3),
            nn.SiLU(),
            nn.Linear(c3, num_classes),
        )
        # END SOLUTION

    def get_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (raw scores, no softmax). ``x``: ``(B, C_in, H, W)`` in [-1, 1], any
        ``H, W`` -> ``(B, num_classes)``; image ``i``'s logits depend on image ``i`` only."""
        # BEGIN SOLUTION 3.2a: return the class logits of the images x, shape (B, C)
        return self.head(self.pool(self.features(x)))
        # END SOLUTION

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Negative energy ``f(x) = -E(x)``, shape ``(B,)``, computed from the logits that
        :meth:`get_logits` returns for the images.

        ``y is None``: ``logsumexp`` over the class logits (EBM / unconditional JEM).
        ``y`` given (``(B,)`` integer labels): the logit of class ``y[i]`` for image ``i``
        (conditional JEM). Must stay accurate when the logits are large (hundreds).
        """
        # BEGIN SOLUTION 3.2b: logsumexp of the logits if y is None, else the logit of class y
        logits = self.get_logits(x)
        if y is None:
            return torch.logsumexp(logits, dim=1)
        return logits.gather(1, y.view(-1, 1).long()).squeeze(1)
        # END SOLUTION
