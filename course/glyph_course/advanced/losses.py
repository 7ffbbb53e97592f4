"""The chapter's own terms of the generative loss, on energies ``E = -f``.

The contrastive loss ``mean E(x+) - mean E(x-)`` and the L2 regulariser
``alpha * (mean E(x+)^2 + mean E(x-)^2)`` are the exercise's (``JEM.px_step``); the chapter adds:

* :func:`softmax_correction` - IGEBM's "approximate maximum likelihood" (Eq. 7)
  ``mean E(x+) + log sum_i exp(-E(x_i-))``, in its stable form (Eq. 8)
  ``mean E(x+) - sum_i stop_grad(w_i) E(x_i-)``, ``w = softmax(-E(x-))``: negatives with low
  energy (the ones the model likes best) get the largest weight. It is written as a correction
  of the exercise's contrastive loss, ``sum_i (1/B - stop_grad(w_i)) E(x_i-)``, so that
  ``contrastive + correction`` is the softmax-weighted loss. The printed Eq. 8 has a stray
  second minus sign and Algorithm 1 writes ``softmax(e_neg)``; both contradict Eq. 7, whose
  gradient ``-sum_i w_i dE(x_i-)`` with ``w = softmax(-E)`` is what is implemented. The ``eps``
  in Eq. 8's denominator is not needed with a max-shifted softmax;
* :func:`kl_loss` - improved CD's ``L_KL = kl_weight * L_opt - entropy_weight * nn_entropy``
  (see :mod:`.kl`).
"""
from __future__ import annotations

import torch

from glyph_ebm.errors import GlyphEBMError

ML_LOSSES = ("contrastive", "softmax")


def softmax_weights(e_fake: torch.Tensor) -> torch.Tensor:
    """``w = softmax(-E(x-))`` ``(B,)``, without gradient: the weight of each negative."""
    return torch.softmax(-e_fake.detach(), dim=0)


def softmax_correction(e_fake: torch.Tensor) -> torch.Tensor:
    """``sum_i (1/B - stop_grad(w_i)) E(x_i-)`` (a scalar) for energies ``e_fake`` ``(B,)`` of the
    negatives: added to the contrastive loss it gives IGEBM's softmax-weighted ML loss, whose
    gradient is that of ``mean E(x+) + log sum_i exp(-E(x_i-))``. Equal energies give 0."""
    if e_fake.dim() != 1 or not len(e_fake):
        raise GlyphEBMError(f"energies must be a non-empty vector (B,); got shape {tuple(e_fake.shape)}")
    return ((1.0 / len(e_fake) - softmax_weights(e_fake)) * e_fake).sum()


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
