"""Spectral normalisation of every convolution and linear layer (Miyato et al. 2018), as IGEBM
uses on all layers to bound the network's Lipschitz constant and keep Langevin sampling smooth.

Each weight ``W`` is replaced by ``W / sigma(W)``, with ``sigma`` the largest singular value of
``W`` reshaped to ``(out_features, -1)``, estimated by power iteration (one iteration per
training forward pass, 15 when it is applied; none in eval mode). Note that for a convolution
this bounds the reshaped kernel matrix, as in the original method, not exactly the operator
norm of the convolution. Improved CD (Du et al. 2021) drops it once the KL term stabilises
training: it limits the model's capacity.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def apply_spectral_norm(model: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Add spectral normalisation to every conv/linear layer of ``model`` (in place; returned).
    Layers that are already normalised are left as they are."""
    for module in list(model.modules()):
        if isinstance(module, LAYER_TYPES) and not parametrize.is_parametrized(module, "weight"):
            spectral_norm(module, "weight", n_power_iterations=n_power_iterations)
    return model


@torch.no_grad()
def spectral_norms(model: nn.Module) -> dict[str, float]:
    """``{layer name: largest singular value of its effective weight reshaped to (out, -1)}`` for
    every conv/linear layer (the normalised weight where spectral norm is applied)."""
    was_training = model.training
    model.eval()                      # reading a normalised weight in train mode would iterate
    try:
        out = {}
        for name, module in model.named_modules():
            if isinstance(module, LAYER_TYPES):
                w = module.weight.detach()
                out[name] = float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1).double(), ord=2))
    finally:
        model.train(was_training)
    return out
