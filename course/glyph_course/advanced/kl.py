"""The KL term of improved contrastive divergence (Du et al. 2021, Sec. 2.1-2.2).

Contrastive divergence ignores that the samples ``q_theta`` depend on the parameters. The
missing gradient is that of

    L_KL = E_{x ~ q_theta}[ E_{stop_grad(theta)}(x) ] + E_{x ~ q_theta}[ log q_theta(x) ],

two parts that reach ``theta`` only through the sampler:

* ``L_opt`` (:func:`sampler_energy_loss`): the energy of the sampler's output, evaluated with a
  *frozen* copy of the parameters. The last Langevin step(s)
  ``x_k = x_{k-1} + step_size * grad_x f_theta(x_{k-1}) / T (+ noise)`` keep their graph to the
  parameters (:meth:`ChapterSampler.kl_path <glyph_course.advanced.sampler.ChapterSamplerMixin.kl_path>`:
  the exercise's own SGLD step, with the graph of its move attached), so ``d L_opt / d theta``
  is ``dE/dx (x_k) * d x_k / d theta``: it teaches the network to be *easy to sample*, not to
  change the energy of the samples (that is the contrastive term's job);
* ``L_ent`` (:func:`nn_entropy`): ``-log`` of the distance of each sample to its nearest
  neighbour in a set of past samples (the paper uses 100 from the replay buffer), the
  nearest-neighbour entropy estimate up to constants; minimising ``-nn_entropy`` keeps the
  chains from collapsing onto a few images.

Only the last step is differentiated, as in the paper (memory); ``steps`` > 1 is allowed.
The stop-gradient is :func:`frozen_energy`: ``torch.func.functional_call`` with detached
parameters, so no gradient reaches ``theta`` through the energy evaluation itself.

:func:`kozachenko_leonenko` is the full entropy estimate with its constants (in nats), used to
check the estimator against distributions of known entropy.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.func import functional_call

from glyph_ebm.errors import GlyphEBMError


def frozen_energy(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """``E_{stop_grad(theta)}(x) = -f(x)`` of shape ``(B,)``: the model's energy evaluated with
    detached parameters. Gradients flow to ``x`` (and through ``x`` to whatever produced it),
    never directly to the parameters. Evaluated in eval mode (no power-iteration or other
    buffer updates), the mode is restored."""
    state = {name: p.detach() for name, p in model.named_parameters()}
    state.update(dict(model.named_buffers()))
    was_training = model.training
    model.eval()
    try:
        f = functional_call(model, state, (x,) if y is None else (x, y))
    finally:
        model.train(was_training)
    return -f


def sampler_energy_loss(model: nn.Module, x_last: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """``L_opt = mean E_{stop_grad(theta)}(x_last)`` (a scalar). ``x_last`` should come from
    the sampler's ``kl_path``; its gradient reaches ``theta`` only through the sampler."""
    return frozen_energy(model, x_last, y).mean()


def _flat(x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2:
        raise GlyphEBMError(f"expected a batch of points (N, ...) with N >= 1, got shape {tuple(x.shape)}")
    return x.flatten(1)


def nn_distance(samples: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distance ``(N,)`` of each sample to its nearest neighbour in ``reference``
    (``(M, ...)``, same point shape), or among the other samples when ``reference`` is None.

    The neighbour is chosen without gradient; the distance to it is differentiable in
    ``samples`` (and computed exactly, not from the ``|a|^2 + |b|^2 - 2ab`` expansion).
    """
    a = _flat(samples)
    b = a if reference is None else _flat(reference).to(a.dtype)
    if reference is None and len(a) < 2:
        raise GlyphEBMError("nearest-neighbour distances among the samples need at least 2 of them")
    if len(b) == 0:
        raise GlyphEBMError("the nearest-neighbour reference set is empty")
    if b.shape[1] != a.shape[1]:
        raise GlyphEBMError(f"samples {tuple(samples.shape)} and reference {tuple(reference.shape)} "
                            "have points of different sizes")
    with torch.no_grad():
        ad, bd = a.detach(), b.detach()
        d2 = (ad.pow(2).sum(1, keepdim=True) + bd.pow(2).sum(1)[None, :] - 2 * ad @ bd.T).clamp_min(0)
        if reference is None:
            d2.fill_diagonal_(float("inf"))
        nearest = d2.argmin(1)
    return (a - b[nearest].detach()).pow(2).sum(1).add(1e-12).sqrt()


def nn_entropy(samples: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_i log NN(x_i, reference)``: the nearest-neighbour entropy estimate up to the factor
    ``d`` and additive constants (Du et al. 2021, Eq. 8: ``L_ent = -nn_entropy``). Scaling every
    point by ``s`` adds exactly ``log s``. Differentiable in ``samples``; a scalar."""
    return nn_distance(samples, reference).log().mean()


def kozachenko_leonenko(samples: torch.Tensor) -> float:
    """Kozachenko-Leonenko entropy estimate in nats of ``N`` points in ``d`` dimensions
    (``(N, d)`` or ``(N, ...)``), using each point's nearest neighbour among the others::

        H = d * mean_i log rho_i + log V_d + psi(N) - psi(1),   V_d = pi^(d/2) / Gamma(d/2 + 1)

    (``psi`` the digamma function). Consistent as ``N`` grows; biased in high dimensions."""
    x = _flat(samples).double()
    n, d = x.shape
    mean_log = float(nn_distance(x).log().mean())
    log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
    digamma = float(torch.special.digamma(torch.tensor(float(n), dtype=torch.float64))) + 0.5772156649015329
    return d * mean_log + log_unit_ball + digamma
