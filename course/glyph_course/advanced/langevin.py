"""Stochastic gradient Langevin dynamics (SGLD): the one sampler of the advanced chapter.

One step, in the order of the exercise's reference sampler (all elementwise)::

    x <- clamp(x + noise * eps),  eps ~ N(0, I)                    # perturb
    x <- clamp(x + step_size * clip(grad_x f(x) / T))              # move to lower energy

with ``f(x) = -E(x)`` the network's output, so the drift goes *down* the energy. ``T`` is the
temperature of ``p_T(x) ∝ exp(f(x) / T) = exp(-E(x) / T)``: ``T < 1`` sharpens the
distribution towards the modes of ``p(x)`` (low-temperature samples), ``T > 1`` flattens it.
The step size and the noise scale are independent (as in Du & Mordatch 2019), so the
temperature acts on the drift only; ``grad_clip`` clamps the (tempered) input gradient
elementwise, as IGEBM does for stability.

Extras used by the later modules:

* ``observed = (x_obs, mask)``: pixels with ``mask == 1`` are set to ``x_obs`` after every
  move, so they stay *exactly* (bitwise) fixed (inpainting, :mod:`.restore`);
* ``energy_fn``: any callable ``x -> f(x)`` of shape ``(B,)`` instead of ``model(x, y)``
  (sums of energies, :mod:`.compose`);
* ``augment_every`` + ``augment``: an augmentation jump after every ``augment_every`` steps
  (Algorithm 2 of Du et al. 2021, long-run generation; never after the last step).

Only input gradients are taken (``torch.autograd.grad`` with respect to ``x``): no parameter
gradient is left behind, and the train/eval mode of the model is restored afterwards.
:func:`sgld_step` with ``create_graph=True`` is the differentiable step that the KL term of
improved CD back-propagates through (:mod:`.kl`).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn

from glyph_ebm.errors import GlyphEBMError

EnergyFn = Callable[[torch.Tensor], torch.Tensor]   # x (B, ...) -> f(x) = -E(x), shape (B,)
Observed = tuple[torch.Tensor, torch.Tensor]        # (x_obs, mask), mask == 1: observed pixel


def gaussian_noise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``N(0, I)`` noise shaped like ``x`` on ``x``'s device (drawn on the CPU when a generator
    is given, so a seed gives the same chains on every device)."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def _apply_observed(x: torch.Tensor, observed: Observed | None) -> torch.Tensor:
    if observed is None:
        return x
    x_obs, mask = observed
    return torch.where(mask, x_obs, x)


def check_observed(x: torch.Tensor, observed: Observed | None) -> Observed | None:
    """``(x_obs, mask)`` on ``x``'s device with a boolean mask that broadcasts to ``x``."""
    if observed is None:
        return None
    try:
        x_obs, mask = observed
    except (TypeError, ValueError):
        raise GlyphEBMError("observed must be a pair (x_obs, mask) with mask == 1 on the observed pixels") from None
    x_obs = torch.as_tensor(x_obs, dtype=x.dtype, device=x.device)
    mask = torch.as_tensor(mask, device=x.device).bool()
    try:
        torch.broadcast_shapes(x_obs.shape, x.shape, mask.shape)
    except RuntimeError:
        raise GlyphEBMError(f"observed images {tuple(x_obs.shape)} and mask {tuple(mask.shape)} do not fit "
                            f"the chains {tuple(x.shape)}") from None
    return x_obs.expand_as(x), mask.expand_as(x)


def sgld_step(energy: EnergyFn, x: torch.Tensor, step_size: float, noise: float,
              generator: torch.Generator | None = None, temperature: float = 1.0,
              grad_clip: float | None = None, observed: Observed | None = None,
              create_graph: bool = False) -> torch.Tensor:
    """One SGLD step from ``x`` (``(B, ...)``, values in [-1, 1]); returns the new ``x``.

    ``create_graph=False``: the result is detached. ``create_graph=True``: the result keeps the
    graph of the move ``x + step_size * grad_x f_theta(x) / T`` (and of ``x`` itself if it has
    one), so a loss on it reaches the parameters ``theta`` through the sampler (:mod:`.kl`).
    """
    if noise > 0:
        x = x + noise * gaussian_noise(x, generator)
    x = _apply_observed(x.clamp(-1.0, 1.0), observed)
    if not create_graph:
        x = x.detach().requires_grad_(True)
    elif not x.requires_grad:
        x = x.requires_grad_(True)
    f = energy(x)
    if f.shape != (x.shape[0],):
        raise GlyphEBMError(f"the energy must return one value f(x) = -E(x) per image, shape ({x.shape[0]},); "
                            f"got shape {tuple(f.shape)}")
    (grad,) = torch.autograd.grad(f.sum() / temperature, x, create_graph=create_graph)
    if grad_clip is not None:
        grad = grad.clamp(-grad_clip, grad_clip)
    base = x if create_graph else x.detach()
    return _apply_observed((base + step_size * grad).clamp(-1.0, 1.0), observed)


def check_sgld_settings(steps: int, step_size: float, noise: float, temperature: float = 1.0,
                        grad_clip: float | None = None) -> None:
    """Clear messages for impossible sampler settings."""
    if int(steps) != steps or steps < 0:
        raise GlyphEBMError(f"the number of Langevin steps must be a whole number >= 0, got {steps}")
    if not step_size >= 0:
        raise GlyphEBMError(f"the Langevin step size must be >= 0, got {step_size}")
    if not noise >= 0:
        raise GlyphEBMError(f"the Langevin noise scale must be >= 0, got {noise}")
    if not temperature > 0:
        raise GlyphEBMError(f"the temperature must be > 0, got {temperature}")
    if grad_clip is not None and not grad_clip > 0:
        raise GlyphEBMError(f"grad_clip must be > 0 or None (off), got {grad_clip}")


def _modules(*candidates) -> list[nn.Module]:
    return [m for m in candidates if isinstance(m, nn.Module)]


def langevin(model: nn.Module | None, x: torch.Tensor, steps: int, step_size: float, noise: float,
             y: torch.Tensor | None = None, temperature: float = 1.0, grad_clip: float | None = None,
             observed: Observed | None = None, energy_fn: EnergyFn | None = None,
             augment_every: int = 0, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
             keep_steps: Iterable[int] = (), generator: torch.Generator | None = None):
    """Run ``steps`` SGLD steps from ``x`` (``(B, C, H, W)`` in [-1, 1]; not modified in place).

    Args:
        model: network with ``forward(x, y=None) -> f(x) = -E(x)`` of shape ``(B,)``; may be
            ``None`` when ``energy_fn`` is given.
        y: class labels ``(B,)`` for the class-conditional energy ``f(x, y) = logit_y(x)``.
        temperature: ``T`` of ``p_T(x) ∝ exp(f(x) / T)``; the drift is ``step_size * grad f / T``.
        grad_clip: clamp the tempered input gradient elementwise to ``[-grad_clip, grad_clip]``.
        observed: ``(x_obs, mask)``; pixels with ``mask == 1`` stay exactly ``x_obs``.
        energy_fn: ``x -> f(x)`` used instead of ``model(x, y)`` (e.g. a sum of energies).
        augment_every, augment: apply ``augment(x)`` after every ``augment_every`` steps.
        keep_steps: steps whose images to return as well (0 = the start).
        generator: random generator of the Langevin noise (``None``: torch's global one).

    Returns the final images ``(B, C, H, W)`` (detached), or ``(final, {step: images})`` when
    ``keep_steps`` is given.
    """
    check_sgld_settings(steps, step_size, noise, temperature, grad_clip)
    if energy_fn is None:
        if model is None:
            raise GlyphEBMError("langevin needs a model or an energy_fn")
        energy_fn = (lambda z: model(z)) if y is None else (lambda z: model(z, y))
    if augment_every and augment is None:
        raise GlyphEBMError("augment_every > 0 needs an augment callable (e.g. GlyphAugment())")
    if augment_every < 0:
        raise GlyphEBMError(f"augment_every must be >= 0 (0 = no augmentation jumps), got {augment_every}")
    keep_steps = set(int(k) for k in keep_steps)
    modules = _modules(model, energy_fn)
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.enable_grad():
            x = x.detach().clone()
            observed = check_observed(x, observed)
            x = _apply_observed(x, observed)
            kept = {0: x.clone()} if 0 in keep_steps else {}
            for k in range(1, int(steps) + 1):
                x = sgld_step(energy_fn, x, step_size, noise, generator, temperature, grad_clip, observed)
                if augment_every and k % augment_every == 0 and k < steps:
                    x = _apply_observed(augment(x).clamp(-1.0, 1.0), observed)
                if k in keep_steps:
                    kept[k] = x.clone()
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
    x = x.detach()
    return (x, kept) if keep_steps else x
