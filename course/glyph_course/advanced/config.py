"""Every switch of the advanced-training chapter, on top of the exercise's :class:`TrainConfig`.

:class:`AdvancedConfig` *is* a :class:`~glyph_ebm.config.TrainConfig` (same fields, profiles,
``to_dict``/``from_dict``) with the chapter's switches added, each **off** by default, so that
``AdvancedConfig()`` trains the exercise's JEM. Two techniques of the chapter are base fields:
the SGLD gradient clip ``sgld_grad_clip`` (the quick profile clips at 0.03, as IGEBM does;
``None`` = off) and the EMA of the weights ``ema_decay`` (0 = off; Lightning's
``EMAWeightAveraging``, added by :func:`glyph_ebm.training.build_trainer`, see
:mod:`.training`). ``ema_decay`` counts among the chapter's :meth:`~AdvancedConfig.switches`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from glyph_ebm.config import PROFILES, QUICK_RECIPE, TrainConfig
from glyph_ebm.errors import ConfigError
from .losses import ML_LOSSES
from .sampler import INITS, SCHEMES


@dataclass
class AdvancedConfig(TrainConfig):
    """A :class:`TrainConfig` plus the chapter's switches (defaults = off = the exercise's JEM)."""

    # improved contrastive divergence (Du et al. 2021)
    kl_weight: float = 0.0            # weight of L_opt = E_{stop_grad(theta)}(x_k) through the last step(s); 0 = off
    entropy_weight: float = 0.0       # weight of the nearest-neighbour entropy of the samples; 0 = off
    kl_steps: int = 1                 # Langevin steps at the end of each chain that are differentiated
    entropy_samples: int = 100        # past samples (from the buffer) the entropy's neighbours are taken from
    augment_init: bool = False        # chains from the buffer (or data) start from an augmented copy
    augment_every: int = 0            # long-run generation: augmentation jump every N SGLD steps (0 = off)
    multiscale: bool = False          # energy = sum over full, half and quarter resolution networks
    buffer_scheme: str = "persistent"  # "persistent" (exercise) or "reservoir" (improved CD)
    chain_init: str = "persistent"    # "persistent" (buffer), "data" (CD-k from data), "noise" (short-run)
    # implicit generation (IGEBM, Du & Mordatch 2019)
    spectral_norm: bool = False       # spectral normalisation of every conv/linear layer
    ml_loss: str = "contrastive"      # "contrastive" or "softmax" (IGEBM's softmax-weighted ML loss)
    temperature: float = 1.0          # SGLD samples p(x) ∝ exp(-E(x) / T) (training and generation)

    def validate(self) -> None:
        super().validate()
        for name in ("kl_weight", "entropy_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")
        if self.uses_kl and not 1 <= self.kl_steps <= self.sgld_steps:
            raise ConfigError(f"kl_steps must be between 1 and sgld_steps ({self.sgld_steps}) when the KL "
                              f"or entropy term is on, got {self.kl_steps}")
        if self.entropy_samples < 1:
            raise ConfigError(f"entropy_samples must be at least 1, got {self.entropy_samples}")
        if self.augment_every < 0:
            raise ConfigError(f"augment_every must be >= 0 (0 = off), got {self.augment_every}")
        choices = {"buffer_scheme": SCHEMES, "chain_init": INITS, "ml_loss": ML_LOSSES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.sgld_grad_clip is not None and not self.sgld_grad_clip > 0:
            raise ConfigError(f"sgld_grad_clip must be > 0 or None (off), got {self.sgld_grad_clip}")

    @property
    def uses_kl(self) -> bool:
        """True when a Langevin step is differentiated (KL or entropy term on)."""
        return self.kl_weight > 0 or self.entropy_weight > 0

    def switches(self) -> dict:
        """The chapter's switches (:func:`switch_names`) that differ from their defaults, ``{name: value}``."""
        defaults = AdvancedConfig.__dataclass_fields__
        return {name: getattr(self, name) for name in switch_names()
                if getattr(self, name) != defaults[name].default}


#: fields of the exercise's TrainConfig that are techniques of the chapter, counted as its switches
BASE_SWITCHES = ("ema_decay",)


def switch_names() -> list[str]:
    """The chapter's switches: the fields :class:`AdvancedConfig` adds to :class:`TrainConfig`,
    then :data:`BASE_SWITCHES`."""
    base = {f.name for f in dataclasses.fields(TrainConfig)}
    return [f.name for f in dataclasses.fields(AdvancedConfig) if f.name not in base] + list(BASE_SWITCHES)


def advanced_config(profile: str = "quick", **overrides) -> AdvancedConfig:
    """The :class:`AdvancedConfig` of a named base profile (``quick``, ``full``, ``smoke``) with
    fields overridden (``None`` values are ignored).

    The chapter's baseline is the exercise's JEM with plain persistent chains: the profile without
    the quick recipe's additions (:data:`~glyph_ebm.config.QUICK_RECIPE`: augmented chain starts,
    more fresh chains, EMA), so that each switch of the chapter is measured on its own."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    names = {f.name for f in dataclasses.fields(AdvancedConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(unknown)}")
    plain = {name: TrainConfig.__dataclass_fields__[name].default for name in QUICK_RECIPE}
    values = {**PROFILES[profile], **plain, **{k: v for k, v in overrides.items() if v is not None}}
    return AdvancedConfig(profile=profile, **values)
