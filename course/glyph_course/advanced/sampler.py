"""``ChapterSampler``: the exercise's own ``MCMCSampler``, extended with what the chapter needs.

Every chain of the chapter runs the exercise's SGLD step (``solutions/ex3_main.py``,
``MCMCSampler.langevin``) and its replay buffer (``sample_initial`` / ``update_buffer``), loaded
through :func:`glyph_course.reference.reference`. Nothing of them is written again here:
:class:`ChapterSampler` *is* a subclass of the exercise's class, and it only adds

* ``temperature``, clamped pixels ``observed=(x_obs, mask)`` and ``energy_fn`` (sums of
  energies): the exercise's ``langevin`` runs on a small module put in place of ``self.model``
  for the duration of the call, which returns ``f(where(mask, x_obs, x)) / T``. The drift is then
  ``step_size * clip(grad f / T)`` (the exercise's gradient clip acts on the tempered gradient),
  observed pixels never influence it, and the results get ``where(mask, x_obs, x)``: exactly the
  same chains as resetting the observed pixels after every move;
* augmentation jumps every ``augment_every`` steps (improved CD, Algorithm 2): the exercise's
  ``langevin`` runs in pieces with ``augment(x)`` in between (never after the last step);
* replay-buffer schemes: ``persistent`` is the exercise's own (a chain goes back to its slot);
  ``reservoir`` (improved CD) offers every finished chain as a new one, so the exercise's reservoir
  sampling keeps a uniform sample of all chains ever finished. Fresh chains are the exercise's
  ``N(0, init_std^2)`` (``gaussian``) or ``U(-1, 1)`` (``uniform``, the papers');
* where chains start (``chain_init``): ``persistent`` (the buffer, optionally augmented copies),
  ``data`` (real images handed over in :attr:`data`, optionally augmented; in conditional mode
  each chain starts at an image of its own class) or ``noise`` (short-run MCMC from fresh noise);
* :meth:`past_samples` (the entropy term's neighbours) and :meth:`kl_path`, the differentiable
  last step(s) of improved CD's KL term: the exercise's step is run, and its result is given
  the graph of the move to the parameters;
* in :meth:`state_dict`, the augmenter's state.

The class is built on first use (:func:`sampler_class`, or ``ChapterSampler`` from this module),
so importing the module runs no exercise code. Chains for other uses (restoration, composition,
comparisons) come from :func:`sampler_for`: a sampler without a buffer, seeded.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable

import torch
import torch.nn as nn

from glyph_ebm.errors import ConfigError, GlyphEBMError

SCHEMES = ("persistent", "reservoir")      # replay-buffer schemes
FRESH = ("gaussian", "uniform")            # fresh-chain noise
INITS = ("persistent", "data", "noise")    # where training chains start

EnergyFn = Callable[[torch.Tensor], torch.Tensor]   # x (B, ...) -> f(x) = -E(x), shape (B,)
Observed = tuple[torch.Tensor, torch.Tensor]        # (x_obs, mask), mask == 1: observed pixel


def check_observed(x: torch.Tensor, observed) -> Observed | None:
    """``(x_obs, mask)`` on ``x``'s device, both expanded to ``x``'s shape, the mask boolean."""
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


def _observe(x: torch.Tensor, observed: Observed | None) -> torch.Tensor:
    return x if observed is None else torch.where(observed[1], observed[0], x)


def check_sgld_settings(steps, step_size, noise, temperature=1.0) -> None:
    """Clear messages for impossible sampler settings."""
    if int(steps) != steps or steps < 0:
        raise GlyphEBMError(f"the number of Langevin steps must be a whole number >= 0, got {steps}")
    if not step_size >= 0:
        raise GlyphEBMError(f"the Langevin step size must be >= 0, got {step_size}")
    if not noise >= 0:
        raise GlyphEBMError(f"the Langevin noise scale must be >= 0, got {noise}")
    if not temperature > 0:
        raise GlyphEBMError(f"the temperature must be > 0, got {temperature}")


class _SampledEnergy(nn.Module):
    """What the exercise's ``langevin`` sees as ``self.model`` during one call of
    :meth:`ChapterSampler.langevin`: ``f(where(mask, x_obs, x)) / T``.

    The energy is *not* a submodule (its train/eval mode is the sampler's business), so the
    exercise's ``self.model.eval()`` / ``train(...)`` act on this wrapper alone. ``seen``, when
    given, collects every input the step evaluates (the KL path needs the step's ``x'``).
    """

    def __init__(self, energy, takes_y: bool, temperature: float, observed: Observed | None = None,
                 seen: list | None = None):
        super().__init__()
        self._energy = [energy]
        self.takes_y, self.temperature, self.observed, self.seen = takes_y, float(temperature), observed, seen

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.seen is not None:
            self.seen.append(x.detach())
        z = _observe(x, self.observed)
        f = self._energy[0](z, y) if self.takes_y else self._energy[0](z)
        if f.shape != (x.shape[0],):
            raise GlyphEBMError(f"the energy must return one value f(x) = -E(x) per image, shape ({x.shape[0]},); "
                                f"got shape {tuple(f.shape)}")
        return f if self.temperature == 1.0 else f / self.temperature


@dataclass
class Chains:
    """The chains of the last :meth:`ChapterSampler.sample` call: ``x`` the finished images
    (detached), ``y`` their labels (or None), ``x_kl`` the same images with the graph of the
    last ``kl_steps`` steps (or None), ``past`` the entropy term's past samples (or None)."""

    x: torch.Tensor
    y: torch.Tensor | None
    x_kl: torch.Tensor | None = None
    past: torch.Tensor | None = None


class ChapterSamplerMixin:
    """The chapter's additions to the exercise's ``MCMCSampler``; :func:`sampler_class` combines
    the two into ``ChapterSampler``. Positional and other keyword arguments are the exercise's
    (``model, img_shape, sample_size, max_len, reinit_frac, init_std, grad_clip, seed,
    channels_last``); ``model`` may be None for a sampler that only runs ``energy_fn`` chains.

    Args:
        temperature: ``T`` of ``p_T(x) ∝ exp(f(x) / T)`` (the drift is ``step_size * grad f / T``).
        scheme: replay buffer, ``"persistent"`` (the exercise's) or ``"reservoir"``.
        fresh: fresh-chain noise, ``"gaussian"`` (the exercise's ``N(0, init_std^2)``) or
            ``"uniform"`` (``U(-1, 1)``); None = the scheme's own (gaussian / uniform).
        chain_init: ``"persistent"``, ``"data"`` or ``"noise"`` (see the module docs).
        augment: augmenter for chains that start from the buffer or from data (None = off).
        kl_steps: the last steps of each :meth:`sample` chain that go through :meth:`kl_path`.
        entropy_samples: past samples drawn from the buffer per :meth:`sample` call (0 = none).
    """

    def __init__(self, *args, temperature: float = 1.0, scheme: str = "persistent", fresh: str | None = None,
                 chain_init: str = "persistent", augment: Callable | None = None, kl_steps: int = 0,
                 entropy_samples: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        fresh = fresh or ("gaussian" if scheme == "persistent" else "uniform")
        for name, value, allowed in (("buffer scheme", scheme, SCHEMES), ("fresh-chain noise", fresh, FRESH),
                                     ("chain initialisation", chain_init, INITS)):
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if not temperature > 0:
            raise ConfigError(f"the temperature must be > 0, got {temperature}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0 or None (off), got {self.grad_clip}")
        if int(kl_steps) < 0 or int(entropy_samples) < 0:
            raise ConfigError("kl_steps and entropy_samples must be >= 0")
        self.temperature, self.scheme, self.fresh, self.chain_init = float(temperature), scheme, fresh, chain_init
        self.augment, self.kl_steps, self.entropy_samples = augment, int(kl_steps), int(entropy_samples)
        self.data: tuple[torch.Tensor, torch.Tensor | None] | None = None   # (images, labels) for data starts
        self.last: Chains | None = None

    @classmethod
    def from_sampler(cls, sampler, model: nn.Module | None = None, **extras):
        """A chapter sampler with the settings of the exercise's ``sampler`` (as its ``JEM``
        builds it from a config), for ``model`` (default: the same network); ``extras`` (any
        constructor argument) override or add settings. The buffer is not copied."""
        names = ("img_shape", "sample_size", "max_len", "reinit_frac", "init_std", "grad_clip", "seed",
                 "channels_last")
        settings = {name: getattr(sampler, name) for name in names}
        return cls(sampler.model if model is None else model, **{**settings, **extras})

    def _device(self) -> torch.device:
        return torch.device("cpu") if self.model is None else super()._device()

    # -- running the exercise's langevin on another energy ----------------------------------
    @contextmanager
    def _sampling(self, stand_in: nn.Module, modules: Iterable):
        """``stand_in`` in place of ``self.model`` and every module of ``modules`` in eval mode,
        for the duration of the block; both put back afterwards, whatever happens."""
        modules = list({id(m): m for m in modules if isinstance(m, nn.Module)}.values())
        modes = [m.training for m in modules]
        original = self.model
        for m in modules:
            m.eval()
        self.model = stand_in
        try:
            yield
        finally:
            self.model = original
            for m, mode in zip(modules, modes):
                m.train(mode)

    def langevin(self, x: torch.Tensor, steps: int, step_size: float, noise: float,
                 y: torch.Tensor | None = None, keep_steps=(), *, temperature: float | None = None,
                 observed: Observed | None = None, energy_fn: EnergyFn | None = None,
                 model: nn.Module | None = None, augment_every: int = 0, augment: Callable | None = None):
        """The exercise's ``langevin`` (same arguments and results) with the chapter's extras.

        Args:
            temperature: ``T`` for this call (default: the sampler's).
            observed: ``(x_obs, mask)``; pixels with ``mask == 1`` stay exactly ``x_obs``.
            energy_fn: ``x -> f(x)`` (shape ``(B,)``) followed instead of the model (``y`` unused).
            model: the network to follow instead of ``self.model``.
            augment_every, augment: ``x <- augment(x)`` after every ``augment_every`` steps.
        """
        t = self.temperature if temperature is None else float(temperature)
        check_sgld_settings(steps, step_size, noise, t)
        if augment_every < 0:
            raise GlyphEBMError(f"augment_every must be >= 0 (0 = no augmentation jumps), got {augment_every}")
        if augment_every and augment is None:
            raise GlyphEBMError("augment_every > 0 needs an augment callable (e.g. GlyphAugment())")
        net = self.model if model is None else model
        if energy_fn is None and net is None:
            raise GlyphEBMError("langevin needs a model or an energy_fn")
        observed = check_observed(x, observed)
        stand_in = _SampledEnergy(net if energy_fn is None else energy_fn, energy_fn is None, t, observed)
        keep = {int(k) for k in keep_steps}
        jumps = list(range(augment_every, int(steps), augment_every)) if augment_every else []
        x, kept = _observe(x, observed), {}
        with self._sampling(stand_in, (self.model, net, energy_fn)):
            for start, end in zip([0, *jumps], [*jumps, int(steps)]):
                inner = {k - start for k in keep if start < k < end or k == end == steps}
                inner |= {0} if start == 0 and 0 in keep else set()
                out = super().langevin(x, end - start, step_size, noise, y=y, keep_steps=inner)
                x, part = out if inner else (out, {})
                kept.update({start + k: _observe(v, observed) for k, v in part.items()})
                if end < steps:                                  # a jump, never after the last step
                    x = augment(_observe(x, observed)).clamp(-1.0, 1.0)
                    if end in keep:
                        kept[end] = _observe(x, observed).detach()
        x = _observe(x, observed).detach()
        return (x, kept) if keep else x

    # -- the KL path ------------------------------------------------------------------------
    def kl_path(self, x: torch.Tensor, steps: int, step_size: float, noise: float,
                y: torch.Tensor | None = None, temperature: float | None = None) -> torch.Tensor:
        """``steps`` SGLD steps of the exercise from ``x`` whose result keeps the graph to the
        parameters of ``self.model`` (improved CD's ``L_opt``, :mod:`.kl`); ``steps = 0`` returns
        ``x`` detached.

        Each step is the exercise's own (one step of its ``langevin``, which records the
        step's input ``x'``, i.e. after the noise and the clamp); the graph is then attached
        without changing any value: with ``g = grad_x' f_theta(x') / T`` taken with
        ``create_graph=True``,

            x_next <- x_next + where(|x_next| < 1, (x' - sg(x')) + step_size * where(|g| <= clip, g - sg(g), 0), 0)

        and, when ``x`` itself carries a graph (the earlier differentiated steps),
        ``x' <- x' + where(|x'| < 1, x - sg(x), 0)`` (no noise: everywhere). The values are the
        exercise's step to the bit; the gradient is that of the step written with
        ``create_graph=True`` (the clamps pass no gradient where they cut, the clip none where it
        clips). The model is in eval mode during the steps.
        """
        t = self.temperature if temperature is None else float(temperature)
        check_sgld_settings(steps, step_size, noise, t)
        net = self.model
        x = x.detach()
        with self._sampling(self.model, (net,)), torch.enable_grad():
            for _ in range(int(steps)):
                seen: list[torch.Tensor] = []
                self.model = _SampledEnergy(net, True, t, seen=seen)
                x_next = super().langevin(x, 1, step_size, noise, y=y)
                self.model = net
                x_in = seen[-1]
                if x.requires_grad:
                    passes = x_in.abs() < 1 if noise > 0 else torch.ones_like(x_in, dtype=torch.bool)
                    x_in = x_in + torch.where(passes, x - x.detach(), 0.0)
                else:
                    x_in = x_in.clone().requires_grad_(True)
                f = net(x_in) if y is None else net(x_in, y)
                (g,) = torch.autograd.grad(f.sum() / t, x_in, create_graph=True)
                move = g - g.detach()
                if self.grad_clip is not None:
                    move = torch.where(g.abs() <= self.grad_clip, move, 0.0)
                x = x_next + torch.where(x_next.abs() < 1, (x_in - x_in.detach()) + step_size * move, 0.0)
        return x

    # -- buffer schemes and chain starts ----------------------------------------------------
    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand((n, *self.img_shape), generator=self.generator) * 2 - 1

    def sample_initial(self, n: int, y: torch.Tensor | None = None):
        """The exercise's ``sample_initial``; with ``fresh="uniform"`` its fresh chains are
        replaced by ``U(-1, 1)`` noise."""
        x0, slots = super().sample_initial(n, y)
        fresh = slots < 0
        if self.fresh == "uniform" and bool(fresh.any()):
            x0[fresh.to(x0.device)] = self._uniform(int(fresh.sum())).to(x0.device, x0.dtype)
        return x0, slots

    def update_buffer(self, x: torch.Tensor, slots: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """The exercise's ``update_buffer``; in the ``reservoir`` scheme every chain is offered
        as a new one (its reservoir sampling decides which stay), the one it started from stays."""
        if self.scheme == "reservoir":
            slots = torch.full((len(x),), -1, dtype=torch.long)
        super().update_buffer(x, slots, y)

    @contextmanager
    def _all_fresh(self):
        saved, self.reinit_frac = self.reinit_frac, 1.0
        try:
            yield
        finally:
            self.reinit_frac = saved

    def start_chains(self, n: int, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0, slots)`` as ``sample_initial``, from where ``chain_init`` says (``slots`` is -1
        for every chain that does not come from the buffer)."""
        if self.chain_init == "noise":
            with self._all_fresh():
                return self.sample_initial(n, y)
        if self.chain_init == "persistent":
            x0, slots = self.sample_initial(n, y)
            old = (slots >= 0).to(x0.device)
            if self.augment is not None and bool(old.any()):
                x0[old] = self.augment(x0[old])
            return x0, slots
        return self._data_starts(n, y), torch.full((n,), -1, dtype=torch.long)

    def _data_starts(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        if self.data is None:
            raise GlyphEBMError("chains that start at data need real images: set sampler.data = (images, labels) "
                                "before sampling")
        images, labels = self.data
        # a random image per chain; of the chain's own class when chains are class-conditional
        score = torch.rand((n, len(images)), generator=self.generator)
        if y is not None:
            if labels is None:
                raise GlyphEBMError("class-conditional chains that start at data need the images' labels")
            same = y.detach().cpu().long()[:, None] == labels.detach().cpu().long()[None, :]
            if not bool(same.any(1).all()):
                raise GlyphEBMError("a chain's class has no image among the data handed to the sampler")
            score = torch.where(same, score, -1.0)
        x0 = images[score.argmax(1).to(images.device)].detach().clone()
        return x0 if self.augment is None else self.augment(x0)

    def past_samples(self, k: int) -> torch.Tensor:
        """``min(k, len(buffer))`` distinct buffer images at random, ``(k, *img_shape)`` (CPU)."""
        return self.buffer[torch.randperm(len(self.buffer), generator=self.generator)[:int(k)]]

    # -- one batch of training chains -------------------------------------------------------
    def sample(self, steps: int = 20, step_size: float = 1.0, noise: float = 0.01,
               y: torch.Tensor | None = None) -> torch.Tensor:
        """The exercise's ``sample`` (same arguments and result) with the chapter's chains:
        starts by ``chain_init``, all but the last ``kl_steps`` steps by :meth:`langevin`, those
        through :meth:`kl_path`, finished chains to the buffer by ``scheme``. The details
        are kept in :attr:`last` (a :class:`Chains`)."""
        n = self.sample_size if y is None else len(y)
        x0, slots = self.start_chains(n, y)
        past = None
        if self.entropy_samples and len(self.buffer):
            past = self.past_samples(self.entropy_samples).to(x0.device)
        k = min(self.kl_steps, int(steps))
        x = self.langevin(x0, int(steps) - k, step_size, noise, y=y)
        x_kl = self.kl_path(x, k, step_size, noise, y=y) if k else None
        if x_kl is not None:
            x = x_kl.detach()
        self.update_buffer(x, slots, y)
        self.last = Chains(x, y, x_kl, past)
        return x

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {**super().state_dict(), "scheme": self.scheme}
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if state.get("scheme", self.scheme) != self.scheme:
            raise ConfigError(f"the saved buffer uses the {state['scheme']!r} scheme, this run {self.scheme!r}")
        super().load_state_dict(state)
        if self.augment is not None and "augment" in state:
            self.augment.load_state_dict(state["augment"])


@lru_cache(maxsize=None)
def sampler_class() -> type:
    """``ChapterSampler``: :class:`ChapterSamplerMixin` on the reference ``MCMCSampler`` (the
    exercise is loaded on the first call)."""
    from ..reference import reference

    base = reference().main.MCMCSampler
    return type("ChapterSampler", (ChapterSamplerMixin, base),
                {"__module__": __name__, "__qualname__": "ChapterSampler", "__doc__": ChapterSamplerMixin.__doc__})


def __getattr__(name: str):
    if name == "ChapterSampler":
        return sampler_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sampler_for(model: nn.Module | None, seed: int = 0, grad_clip: float | None = None, temperature: float = 1.0,
                img_shape=(), **extras):
    """A :class:`ChapterSampler` without a replay buffer for running chains with ``model`` (None:
    only ``energy_fn`` chains): restoration, composition, comparisons. Its generator (seeded
    with ``seed``) draws the Langevin noise; ``sampler.generator`` can draw the starts too.
    ``extras``: any other constructor argument (``max_len=1`` and ``reinit_frac=1`` unless given)."""
    settings = {"max_len": 1, "reinit_frac": 1.0, **extras}
    return sampler_class()(model, tuple(img_shape), 1, grad_clip=grad_clip, seed=seed, temperature=temperature,
                           **settings)
