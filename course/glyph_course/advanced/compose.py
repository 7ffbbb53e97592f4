"""Cross-class mapping and compositional generation with energies (IGEBM Sec. 4.2 and 6;
improved CD Sec. 3.4).

A JEM's logits give class-conditional energies ``f(x, y) = logit_y(x) = -E(x | y)`` (up to a
constant per class). Energies add: sampling ``f_1(x) + f_2(x)`` samples the product
``p_1(x) p_2(x)`` - images that satisfy both conditions - with no retraining.

* :func:`cross_class_map` / :func:`cross_class_rate`: start from glyphs of class ``a``, run SGLD
  under class ``b``; report how often an independent judge (e.g.
  :func:`glyph_course.metrics.glyph_classifier`) then sees ``b``;
* :func:`class_energy`, :func:`sum_energies`: the building blocks of compositions;
* :func:`ink_coverage`, :func:`ink_weight_energy`: a *style* attribute defined honestly on this
  data without labels: the share of ink in the image (bold vs light type), with an analytic
  energy ``f_ink(x) = -strength * D * (coverage(x) - target)^2`` (``D`` pixels, so the input
  gradient per pixel is ``strength * (coverage - target)``, independent of image size);
* :func:`sample_composition`: SGLD from noise on a sum of energies; :func:`composition_report`
  judges class + class and class + ink-weight compositions.

All energies follow the package convention: callables ``x (B, 1, H, W) -> f(x) = -E(x) (B,)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from glyph_ebm.errors import GlyphEBMError
from .sampler import EnergyFn, sampler_for

SGLD_DEFAULTS = dict(step_size=10.0, noise=0.005, grad_clip=0.03)   # the quick profile's sampler


def _sampler(model: nn.Module | None, seed: int, sgld: dict):
    """``(sampler, step_size, noise)``: a seeded chapter sampler for ``model`` and the step
    settings of ``sgld`` (step_size, noise, grad_clip, temperature; defaults :data:`SGLD_DEFAULTS`)."""
    unknown = sorted(set(sgld) - {"step_size", "noise", "grad_clip", "temperature"})
    if unknown:
        raise GlyphEBMError(f"unknown SGLD setting(s) {', '.join(unknown)}; use step_size, noise, grad_clip, "
                            "temperature")
    s = {"temperature": 1.0, **SGLD_DEFAULTS, **sgld}
    return sampler_for(model, seed=seed, grad_clip=s["grad_clip"], temperature=s["temperature"]), \
        s["step_size"], s["noise"]


def class_energy(model: nn.Module, label: int) -> EnergyFn:
    """``x -> f(x, label) = logit_label(x)`` (the class-conditional negative energy)."""
    label = int(label)

    def f(x: torch.Tensor) -> torch.Tensor:
        return model(x, torch.full((len(x),), label, dtype=torch.long, device=x.device))
    return f


def sum_energies(energies: Sequence[EnergyFn], weights: Sequence[float] | None = None) -> EnergyFn:
    """``x -> sum_i w_i f_i(x)``: the product of experts ``prod_i p_i(x)^{w_i}``."""
    if not energies:
        raise GlyphEBMError("sum_energies needs at least one energy")
    weights = [1.0] * len(energies) if weights is None else list(weights)
    if len(weights) != len(energies):
        raise GlyphEBMError(f"{len(energies)} energies but {len(weights)} weights")
    return lambda x: sum(w * f(x) for w, f in zip(weights, energies))


def ink_coverage(x: torch.Tensor) -> torch.Tensor:
    """Share of ink per image, ``mean((1 - x) / 2)`` in [0, 1] (``x`` = -1 ink, +1 paper); ``(B,)``."""
    return ((1 - x) / 2).flatten(1).mean(1)


def ink_weight_energy(target: float, strength: float = 1.0) -> EnergyFn:
    """``f_ink(x) = -strength * D * (ink_coverage(x) - target)^2`` (``D`` = pixels per image)."""
    if not 0.0 <= target <= 1.0:
        raise GlyphEBMError(f"the ink coverage target must be in [0, 1], got {target}")

    def f(x: torch.Tensor) -> torch.Tensor:
        d = x[0].numel()
        return -strength * d * (ink_coverage(x) - target).pow(2)
    return f


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def cross_class_map(model: nn.Module, images: torch.Tensor, target: torch.Tensor | int, steps: int = 100,
                    seed: int = 0, **sgld) -> torch.Tensor:
    """SGLD under ``f(x, target)`` starting from ``images`` (``(B, 1, H, W)``); ``target`` is one
    class for all or ``(B,)`` labels. ``sgld``: step_size, noise, grad_clip, temperature."""
    target = torch.as_tensor(target, dtype=torch.long)
    if target.dim() == 0:
        target = target.expand(len(images))
    if len(target) != len(images):
        raise GlyphEBMError(f"{len(images)} images but {len(target)} target labels")
    dev = _device(model)
    sampler, step_size, noise = _sampler(model, seed, sgld)
    return sampler.langevin(images.to(dev), steps, step_size, noise, y=target.to(dev))


@torch.no_grad()
def _predict(judge: nn.Module, x: torch.Tensor) -> torch.Tensor:
    judge.eval()
    logits = getattr(judge, "get_logits", judge)     # a JEM's classifier head, or a plain classifier
    return torch.cat([logits(x[i:i + 512]).softmax(1) for i in range(0, len(x), 512)])


def cross_class_rate(model: nn.Module, judge: nn.Module, images: torch.Tensor, source: torch.Tensor,
                     target: torch.Tensor, steps: int = 100, seed: int = 0, **sgld) -> dict:
    """Map ``images`` of classes ``source`` to classes ``target`` and judge the result.

    Returns ``{"target_before", "target_after", "source_after", "n"}``: the share of images the
    judge assigns to the target class before and after mapping, and to the source class after.
    """
    source, target = torch.as_tensor(source).long(), torch.as_tensor(target).long()
    mapped = cross_class_map(model, images, target, steps, seed, **sgld).cpu()
    before, after = _predict(judge, images.cpu()).argmax(1), _predict(judge, mapped).argmax(1)
    return {"target_before": float((before == target).float().mean()),
            "target_after": float((after == target).float().mean()),
            "source_after": float((after == source).float().mean()), "n": int(len(images))}


def sample_composition(energy: EnergyFn, n: int, img_shape=(1, 56, 56), steps: int = 200, seed: int = 0,
                       device: torch.device | str = "cpu", **sgld) -> torch.Tensor:
    """``n`` samples ``(n, *img_shape)`` of ``p(x) ∝ exp(energy(x))`` by SGLD from uniform noise."""
    sampler, step_size, noise = _sampler(None, seed, sgld)
    x0 = (torch.rand((n, *img_shape), generator=sampler.generator) * 2 - 1).to(device)
    return sampler.langevin(x0, steps, step_size, noise, energy_fn=energy)


def composition_report(model: nn.Module, judge: nn.Module, pairs: Sequence[tuple[int, int]],
                       ink_targets: Sequence[float] = (0.15, 0.35), label_for_ink: int | None = None,
                       n: int = 32, steps: int = 200, img_shape=(1, 56, 56), ink_strength: float = 1.0,
                       seed: int = 0, **sgld) -> dict:
    """Judge compositions sampled from noise.

    * for each class pair ``(a, b)``: samples of ``f(x, a)``, of ``f(x, b)`` and of
      ``f(x, a) + f(x, b)``; for each the judge's mean probability of ``a`` and of ``b``;
    * class + ink weight: samples of ``f(x, c)`` alone and of ``f(x, c) + f_ink(x)`` for each
      target coverage; mean ink coverage and the rate at which the judge still says ``c``.

    Returns ``{"pairs": [...], "ink": [...]}`` (lists of dicts, ready for a table).
    """
    dev = _device(model)
    out = {"pairs": [], "ink": []}
    for a, b in pairs:
        row = {"a": int(a), "b": int(b)}
        for name, energy in (("a", class_energy(model, a)), ("b", class_energy(model, b)),
                             ("a+b", sum_energies([class_energy(model, a), class_energy(model, b)]))):
            x = sample_composition(energy, n, img_shape, steps, seed, dev, **sgld)
            p = _predict(judge, x.cpu())
            row[f"p_a|{name}"] = float(p[:, a].mean())
            row[f"p_b|{name}"] = float(p[:, b].mean())
        out["pairs"].append(row)
    if label_for_ink is not None:
        c = int(label_for_ink)
        for target in (None, *ink_targets):
            energy = class_energy(model, c)
            if target is not None:
                energy = sum_energies([energy, ink_weight_energy(target, ink_strength)])
            x = sample_composition(energy, n, img_shape, steps, seed, dev, **sgld)
            out["ink"].append({"class": c, "target": target, "coverage": float(ink_coverage(x).mean()),
                               "judge_says_class": float((_predict(judge, x.cpu()).argmax(1) == c).float().mean())})
    return out
