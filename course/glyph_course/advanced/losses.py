"""Losses for the generative term ``log p(x)`` of an EBM/JEM, all on energies ``E = -f``.

Inputs are energies of shape ``(B,)``: ``e_real = E(x+)`` of training images (with gradient)
and ``e_fake = E(x-)`` of *detached* sampler outputs (with gradient through the network only).

* :func:`contrastive_loss` - the exercise's CD loss ``mean E(x+) - mean E(x-)`` (IGEBM Eq. 3,
  improved CD's ``L_CD``);
* :func:`softmax_ml_loss` - IGEBM's "approximate maximum likelihood" (Eq. 7)
  ``mean E(x+) + log sum_i exp(-E(x_i-))`` in its stable form (Eq. 8)
  ``mean E(x+) - sum_i stop_grad(w_i) E(x_i-)``, ``w = softmax(-E(x-))``: negatives with low
  energy (the ones the model likes best) get the largest weight. The printed Eq. 8 has a stray
  second minus sign and Algorithm 1 writes ``softmax(e_neg)``; both contradict Eq. 7, whose
  gradient ``-sum_i w_i dE(x_i-)`` with ``w = softmax(-E)`` is what is implemented. The ``eps``
  in Eq. 8's denominator is not needed with a max-shifted softmax;
* :func:`l2_regulariser` - ``mean E(x+)^2 + mean E(x-)^2`` (IGEBM Eq. 10), weight ``alpha``;
* :func:`kl_loss` - improved CD's ``L_KL = kl_weight * L_opt - entropy_weight * nn_entropy``
  (see :mod:`.kl`).
"""
from __future__ import annotations

import torch

from glyph_ebm.errors import ConfigError, GlyphEBMError

ML_LOSSES = ("contrastive", "softmax")


def _check(e_real: torch.Tensor, e_fake: torch.Tensor) -> None:
    if e_real.dim() != 1 or e_fake.dim() != 1 or not len(e_real) or not len(e_fake):
        raise GlyphEBMError(f"energies must be non-empty vectors (B,); got {tuple(e_real.shape)} and "
                            f"{tuple(e_fake.shape)}")


def contrastive_loss(e_real: torch.Tensor, e_fake: torch.Tensor) -> torch.Tensor:
    """``mean E(x+) - mean E(x-)`` (a scalar)."""
    _check(e_real, e_fake)
    return e_real.mean() - e_fake.mean()


def softmax_weights(e_fake: torch.Tensor) -> torch.Tensor:
    """``w = softmax(-E(x-))`` ``(B,)``, without gradient: the weight of each negative."""
    return torch.softmax(-e_fake.detach(), dim=0)


def softmax_ml_loss(e_real: torch.Tensor, e_fake: torch.Tensor) -> torch.Tensor:
    """IGEBM's ``mean E(x+) - sum_i stop_grad(w_i) E(x_i-)`` (a scalar); its gradient equals that
    of ``mean E(x+) + log sum_i exp(-E(x_i-))``. Equal energies give equal weights ``1/B``, i.e.
    the contrastive loss."""
    _check(e_real, e_fake)
    return e_real.mean() - (softmax_weights(e_fake) * e_fake).sum()


def l2_regulariser(e_real: torch.Tensor, e_fake: torch.Tensor) -> torch.Tensor:
    """``mean E(x+)^2 + mean E(x-)^2``: keeps energies near 0 (they are only defined up to a shift)."""
    _check(e_real, e_fake)
    return e_real.pow(2).mean() + e_fake.pow(2).mean()


def px_loss(e_real: torch.Tensor, e_fake: torch.Tensor, alpha: float,
            kind: str = "contrastive") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``ML + alpha * L2`` with ``kind`` = ``"contrastive"`` or ``"softmax"``.
    Returns ``(loss, {"ml": ..., "reg": ...})``."""
    if kind not in ML_LOSSES:
        raise ConfigError(f"unknown maximum-likelihood loss {kind!r}; choose one of {', '.join(ML_LOSSES)}")
    ml = contrastive_loss(e_real, e_fake) if kind == "contrastive" else softmax_ml_loss(e_real, e_fake)
    reg = alpha * l2_regulariser(e_real, e_fake)
    return ml + reg, {"ml": ml, "reg": reg}


def kl_loss(sampler_energy: torch.Tensor | None, entropy: torch.Tensor | None, kl_weight: float,
            entropy_weight: float) -> torch.Tensor:
    """``kl_weight * L_opt - entropy_weight * nn_entropy`` (terms given as None count as 0).
    ``sampler_energy``: :func:`.kl.sampler_energy_loss`; ``entropy``: :func:`.kl.nn_entropy`."""
    total = torch.zeros(())
    if sampler_energy is not None and kl_weight:
        total = kl_weight * sampler_energy
    if entropy is not None and entropy_weight:
        total = total - entropy_weight * entropy
    return total
