"""Post-training int8 quantization of an energy model, for **scoring** (OOD detection).

* :func:`quantize_static` - observers calibrated on training images, weights *and* activations
  in int8 (FX graph mode, the x86 backend). Ops without an int8 kernel (here the smooth SiLU and
  the final logsumexp) run in float between dequantize/quantize pairs.
* :func:`quantize_dynamic` - int8 weights of the linear layers only, activations quantized on
  the fly: the easy comparison.

Why an int8 model cannot drive SGLD: quantized kernels have no autograd, so there is no
``grad_x E(x)`` to follow, and even a differentiable stand-in would see a staircase energy
(flat between quantization levels). The practical split is to **sample with the float model and
score with the int8 one** (:class:`ScoreOnly` makes that explicit).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EnergyScorer(nn.Module):
    """``x -> f(x) = -E(x)`` of ``model`` with ``y=None`` (the unconditional energy): a
    one-argument module that FX can trace."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ScoreOnly(nn.Module):
    """Wraps a quantized scorer: ``forward(x) = f(x)``; asking for input gradients raises a
    clear error instead of failing deep inside a quantized kernel."""

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        if y is not None:
            raise ValueError("the int8 scorer only gives the unconditional energy (y=None)")
        if x.requires_grad:
            raise RuntimeError("int8 models have no input gradients: sample with the float model, "
                               "score with the int8 one")
        with torch.no_grad():
            return self.scorer(x)


def quantize_static(model: nn.Module, calibration: torch.Tensor, batch_size: int = 256,
                    backend: str = "x86") -> ScoreOnly:
    """An int8 copy of ``model`` for scoring, calibrated on ``calibration`` images ``(N, C, H, W)``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = backend
    scorer = EnergyScorer(copy.deepcopy(model).float().eval()).eval()
    example = (calibration[:2].float(),)
    prepared = prepare_fx(scorer, get_default_qconfig_mapping(backend), example_inputs=example)
    with torch.no_grad():
        for i in range(0, len(calibration), batch_size):
            prepared(calibration[i:i + batch_size].float())
    return ScoreOnly(convert_fx(prepared).eval())


def quantize_dynamic(model: nn.Module) -> ScoreOnly:
    """int8 weights for the ``nn.Linear`` layers, activations quantized at run time."""
    from torch.ao.quantization import quantize_dynamic as _dynamic

    scorer = EnergyScorer(copy.deepcopy(model).float().eval()).eval()
    return ScoreOnly(_dynamic(scorer, {nn.Linear}, dtype=torch.qint8).eval())
