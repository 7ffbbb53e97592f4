"""Pruning an energy model: unstructured (single weights) and structured (whole channels).

* :func:`prune_unstructured` - L1-magnitude pruning of ``amount`` of the weights, either
  ``global`` (all conv and linear layers ranked together) or ``conv`` (conv layers only). The
  masks are made permanent, so the returned model is a plain module whose zeros are real zeros;
  the file shrinks with the bitmask format of :func:`compact_state_dict` (one bit per weight
  plus the non-zero values: 50 % sparsity gives about 1.9x smaller weight tensors, where
  torch's own COO format, with an int64 index per dimension, would be larger than dense).
* :func:`prune_channels` - L1 or L2 norm channel pruning that **removes** the channels: the
  convolutions get fewer output (and the next layer fewer input) channels, so the model really
  is smaller and faster. Works on the exercise's layout (``features`` = a Sequential of
  convolutions and activations, ``pool``, ``head`` = Flatten, Linear, activation, Linear);
  ``global`` scope also removes hidden units of the head.

Both return a new model and leave the original untouched; ``forward(x, y=None)`` keeps its
meaning, ``f(x) = -E(x)``.
"""
from __future__ import annotations

import copy
import io

import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.prune as torch_prune

from glyph_ebm.errors import GlyphEBMError

SCOPES = ("global", "conv")


class PruningError(GlyphEBMError):
    """The model or the request cannot be pruned as asked."""


def _check(amount: float, scope: str) -> None:
    if not 0.0 <= amount < 1.0:
        raise PruningError(f"pruning amount must be in [0, 1), got {amount}")
    if scope not in SCOPES:
        raise PruningError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")


def prunable(model: nn.Module, scope: str = "global") -> list[nn.Module]:
    """The layers whose weights a ``scope`` prunes."""
    kinds = (nn.Conv2d, nn.Linear) if scope == "global" else (nn.Conv2d,)
    return [m for m in model.modules() if isinstance(m, kinds)]


def prune_unstructured(model: nn.Module, amount: float, scope: str = "global") -> nn.Module:
    """A copy of ``model`` with the ``amount`` smallest-magnitude weights (of ``scope``) set to 0."""
    _check(amount, scope)
    pruned = copy.deepcopy(model)
    layers = prunable(pruned, scope)
    if not layers:
        raise PruningError("the model has no Conv2d/Linear layers to prune")
    params = [(layer, "weight") for layer in layers]
    if amount > 0:
        torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=amount)
        for layer, name in params:
            torch_prune.remove(layer, name)          # permanent: weight is a plain tensor again
    return pruned


def sparsity(model: nn.Module, scope: str = "global") -> float:
    """Share of exactly-zero weights among the layers of ``scope``."""
    weights = [m.weight.detach() for m in prunable(model, scope)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / max(total, 1)


MASKED = "__bitmask__"


def compact_state_dict(model: nn.Module) -> dict:
    """``model``'s state dict with every weight tensor that has enough zeros stored as a bitmask
    plus its non-zero values: ``{"__bitmask__": True, "shape": (...), "mask": uint8 (packed bits,
    1 = non-zero), "values": (nnz,) same dtype}``. A float32 tensor with a share ``z`` of zeros
    then costs ``n / 8 + 4 n (1 - z)`` bytes instead of ``4 n``, which pays off from ``z > 1/32``.
    Other entries are kept as they are. :func:`expand_state_dict` undoes it exactly."""
    out = {}
    for name, value in model.state_dict().items():
        if value.is_floating_point() and value.dim() > 1:
            flat = value.detach().flatten()
            nonzero = flat != 0
            if (~nonzero).float().mean() > 1 / 32:
                bits = np.packbits(nonzero.numpy().astype(np.uint8))
                out[name] = {MASKED: True, "shape": tuple(value.shape), "mask": torch.from_numpy(bits),
                             "values": flat[nonzero].clone()}
                continue
        out[name] = value
    return out


def expand_state_dict(compact: dict) -> dict:
    """The plain state dict of :func:`compact_state_dict`'s output (dense tensors again)."""
    out = {}
    for name, value in compact.items():
        if isinstance(value, dict) and value.get(MASKED):
            shape = tuple(value["shape"])
            n = int(np.prod(shape))
            nonzero = torch.from_numpy(np.unpackbits(value["mask"].numpy())[:n].astype(bool))
            dense = torch.zeros(n, dtype=value["values"].dtype)
            dense[nonzero] = value["values"]
            value = dense.view(shape)
        out[name] = value
    return out


def compact_size_bytes(model: nn.Module) -> int:
    """Bytes of the :func:`compact_state_dict` file (same compact format as
    :func:`glyph_course.metrics.model_size_bytes`)."""
    buf = io.BytesIO()
    torch.save(compact_state_dict(model), buf, _use_new_zipfile_serialization=False)
    return buf.getbuffer().nbytes


# -- structured -------------------------------------------------------------------------------
def _layout(model: nn.Module):
    features, pool, head = (getattr(model, n, None) for n in ("features", "pool", "head"))
    if not (isinstance(features, nn.Sequential) and isinstance(head, nn.Sequential)
            and isinstance(pool, nn.AdaptiveAvgPool2d)):
        raise PruningError("channel removal needs the exercise's layout: features (Sequential of convs), "
                           "pool (AdaptiveAvgPool2d) and head (Flatten, Linear, activation, Linear)")
    convs = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    linears = [i for i, m in enumerate(head) if isinstance(m, nn.Linear)]
    if not convs or len(linears) != 2 or any(features[i].groups != 1 for i in convs):
        raise PruningError("channel removal needs plain convolutions and a head with two Linear layers")
    return features, pool, head, convs, linears


def _keep(weight: torch.Tensor, amount: float, norm: int) -> torch.Tensor:
    """Indices of the output units to keep: the largest L``norm`` norms, in their original order."""
    n_out = weight.shape[0]
    n_keep = max(1, n_out - int(round(amount * n_out)))
    scores = weight.detach().flatten(1).norm(p=norm, dim=1)
    return scores.topk(n_keep).indices.sort().values


def _slice_conv(conv: nn.Conv2d, out_idx=None, in_idx=None) -> nn.Conv2d:
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else None
    if out_idx is not None:
        w, b = w[out_idx], (b[out_idx] if b is not None else None)
    if in_idx is not None:
        w = w[:, in_idx]
    new = nn.Conv2d(w.shape[1], w.shape[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    bias=b is not None, padding_mode=conv.padding_mode)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def _slice_linear(lin: nn.Linear, out_idx=None, in_idx=None) -> nn.Linear:
    w, b = lin.weight.detach(), (lin.bias.detach() if lin.bias is not None else None)
    if out_idx is not None:
        w, b = w[out_idx], (b[out_idx] if b is not None else None)
    if in_idx is not None:
        w = w[:, in_idx]
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def prune_channels(model: nn.Module, amount: float, norm: int = 1, scope: str = "conv") -> nn.Module:
    """A smaller copy of ``model`` without the ``amount`` of channels with the smallest L``norm``
    filter norms in every conv layer (and, with ``scope="global"``, of the head's hidden units)."""
    _check(amount, scope)
    if norm not in (1, 2):
        raise PruningError(f"norm must be 1 or 2, got {norm}")
    pruned = copy.deepcopy(model)
    features, pool, head, convs, linears = _layout(pruned)
    keep_in = None
    for i in convs:
        conv = features[i]
        keep_out = _keep(conv.weight, amount, norm) if amount > 0 else None
        features[i] = _slice_conv(conv, keep_out, keep_in)
        keep_in = keep_out
    first, last = linears
    in_idx = None
    if keep_in is not None:      # flatten is channel-major: channel c owns pool*pool features
        size = pool.output_size
        h, w = (size, size) if isinstance(size, int) else size
        cells = h * w
        in_idx = (keep_in[:, None] * cells + torch.arange(cells)[None, :]).flatten()
    hidden = _keep(head[first].weight, amount, norm) if scope == "global" and amount > 0 else None
    head[first] = _slice_linear(head[first], hidden, in_idx)
    if hidden is not None:
        head[last] = _slice_linear(head[last], None, hidden)
    return pruned
