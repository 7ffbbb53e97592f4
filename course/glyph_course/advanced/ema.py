"""Exponential moving average (EMA) of the weights, the model that samples and is evaluated.

After every optimiser step::

    theta_ema <- decay * theta_ema + (1 - decay) * theta        (every parameter)
    buffers_ema <- buffers                                        (copied, e.g. spectral-norm u, v)

Du et al. (2021) evaluate and sample with the EMA model (decay 0.9999 over a day of training);
short CPU runs need a shorter memory (0.99-0.999: the average covers ~1/(1 - decay) steps).
The averaged weights change more slowly than the trained ones, so samples from the EMA model
do not chase the last few noisy updates.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from glyph_ebm.errors import GlyphEBMError


class EMA:
    """Keeps ``model_ema``, a frozen copy of ``model`` whose weights follow ``model``'s by EMA.

    ``ema.model`` has ``forward(x, y=None) = f(x) = -E(x)`` like the original, no parameter of it
    requires a gradient, and it stays in eval mode. It is deliberately not a submodule of the
    trained module (its weights are saved separately, see :meth:`state_dict`).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise GlyphEBMError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current parameters; buffers are copied."""
        source = dict(model.named_parameters())
        for name, p_ema in self.model.named_parameters():
            if name not in source:
                raise GlyphEBMError(f"EMA: the model has no parameter {name!r}; was its architecture changed?")
            p_ema.mul_(self.decay).add_(source[name].detach().to(p_ema.dtype), alpha=1.0 - self.decay)
        buffers = dict(model.named_buffers())
        for name, b_ema in self.model.named_buffers():
            if name in buffers:
                b_ema.copy_(buffers[name])
        self.updates += 1

    def to(self, device) -> "EMA":
        self.model.to(device)
        return self

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates,
                "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["model"])
