"""Every setting of a training run, in one typed place.

A run is described by a :class:`TrainConfig`. Named profiles give sensible starting points:

* ``quick`` - CPU, about 6 minutes on 2 cores, a useful class-conditional JEM (>= 94 % accuracy):
  the base settings plus :data:`QUICK_RECIPE`, chosen by an ablation (``benchmarks/recipe.py``, ``docs/recipe.md``);
* ``full``  - the exercise sheet's setting for a GPU (hours);
* ``smoke`` - a few steps on the small data set; used by the tests and for a first try.

Command-line options override single fields (``--epochs 3``, ``--mode ebm``...).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Optional

from .errors import ConfigError

MODES = ("ebm", "jem", "jem_cond")


@dataclass
class TrainConfig:
    """Hyper-parameters of one run. Field docs give units and sign conventions."""

    profile: str = "quick"
    mode: str = "jem"                 # "ebm": p(x) only; "jem": p(x) + p(y|x); "jem_cond": p(x|y) + p(y|x)
    seed: int = 0
    # data
    data: Optional[str] = None        # folder of real scans; None = embedded glyph generator
    small: bool = False               # use the small embedded variant (50 images per class)
    batch_size: int = 128
    num_workers: int = 0
    # model
    hidden: int = 16                  # width of the first conv layer; later layers use 2x and 4x
    # optimisation
    epochs: int = 10
    lr: float = 2e-3
    beta1: float = 0.9                # the full profile uses 0.0, as is common for long EBM runs
    beta2: float = 0.999
    weight_decay: float = 0.0
    lr_decay: float = 0.97            # multiplicative lr decay per epoch
    grad_clip: float = 0.0            # clip the parameter-gradient norm (0 = off)
    real_noise: float = 0.0           # std of Gaussian noise added to the real training images (0 = off)
    ema_decay: float = 0.0            # exponential moving average of the weights (Lightning's EMAWeightAveraging), 0 = off
    max_steps_per_epoch: Optional[int] = None  # limit batches per epoch (tests, smoke runs)
    min_steps: Optional[int] = 880    # train at least this many steps: small data sets get more epochs
    max_time_s: Optional[float] = None          # stop training after this many seconds
    # loss
    alpha: float = 0.1                # weight of the L2 energy regulariser E(x_real)^2 + E(x_fake)^2
    px_weight: float = 0.3            # weight of the generative term log q(x)
    pyx_weight: float = 1.0           # weight of the classification term log q(y|x)
    warmup_epochs: float = 1.0        # px_weight ramps linearly from 0 over this many epochs
    # SGLD sampler (x <- x + step_size * grad f(x) + noise * N(0, I), clamped to [-1, 1])
    sample_size: int = 32             # chains per training step
    sgld_steps: int = 20
    step_size: float = 10.0
    noise: float = 0.005
    sgld_grad_clip: Optional[float] = 0.03  # clamp input gradients elementwise (None = off): moves <= 0.3/step
    buffer_size: int = 1000           # small: each chain is revisited every ~30 steps
    reinit_frac: float = 0.05
    start_augment: float = 0.0        # share of chain starts zoomed, turned, shifted, blurred, faded first (0 = off)
    start_blur: float = 2.0           # widest Gaussian blur (pixels) of an augmented chain start (0 = never blurred)
    channels_last: bool = True        # channels-last conv weights: same math, ~1.2-1.5x faster SGLD on CPU
    init_std: float = 1.0             # fresh chains start from N(0, init_std^2), clamped to [-1, 1]
    # evaluation / generation
    gen_steps: int = 256              # K for long-run generation
    gen_samples: int = 256            # long-run samples (judged: inception score, classes recognised)
    ood_n: Optional[int] = None       # images per OOD set (None = size of the test split)
    # hardware
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    # guard
    energy_limit: float = 1e4         # |E| above this counts as divergence

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if not 0.0 <= self.reinit_frac <= 1.0:
            raise ConfigError(f"reinit_frac must be in [0, 1], got {self.reinit_frac}")
        for name in ("batch_size", "sample_size", "buffer_size", "epochs", "devices"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.sgld_steps < 0:
            raise ConfigError(f"sgld_steps must be >= 0, got {self.sgld_steps}")
        if not 0.0 <= self.start_augment <= 1.0:
            raise ConfigError(f"start_augment must be in [0, 1], got {self.start_augment}")
        if not self.start_blur >= 0:
            raise ConfigError(f"start_blur must be >= 0 pixels (0 = no blur), got {self.start_blur}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay}")
        if not self.real_noise >= 0:
            raise ConfigError(f"real_noise must be >= 0 (0 = off), got {self.real_noise}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s) {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


#: ``full`` is the UvA tutorial's recipe (Lippe 2022) on the JEM: Adam(beta1=0, lr 1e-4), 60 SGLD
#: steps of 10 with noise 0.005 and an input-gradient clip of 0.03, a buffer of 8,192 with 5 %
#: fresh chains, noise 0.005 on the real images, parameter gradients clipped at 0.1; fresh chains
#: from N(0, 1) clamped to [-1, 1] (the tutorial: uniform noise; the template's contract is a
#: Gaussian, and the sheet's std 0.01 makes every fresh chain collapse onto one image).
#: What the quick profile adds to the plain persistent chains of the base settings, each measured
#: against the plain recipe on this project's 2-core CPU machine (``docs/recipe.md``): half the chain
#: starts zoomed, turned, shifted, blurred or faded (the energy learns to reject small and faint
#: glyphs), a fifth of the chains fresh from noise, the weights' moving average (more diverse
#: samples from noise), a CNN 24 wide instead of 16 (better accuracy, near-OOD detection and
#: samples with each of three seeds, for ~50 % more training time), and the class-conditional JEM
#: (each class's energy contrasted with samples of that class: digits rejected at AUROC
#: 0.977-0.980 over three seeds instead of 0.87-0.90; its samples drawn y ~ p(y), x ~ q(x | y)).
QUICK_RECIPE: dict = dict(start_augment=0.5, reinit_frac=0.2, ema_decay=0.99, hidden=24, mode="jem_cond")

PROFILES: dict[str, dict] = {
    "quick": dict(QUICK_RECIPE),
    "full": dict(
        epochs=60, min_steps=None, hidden=32, batch_size=128, lr=1e-4, beta1=0.0, sample_size=128, px_weight=1.0,
        grad_clip=0.1, real_noise=0.005, init_std=1.0, channels_last=False,
        sgld_steps=60, step_size=10.0, noise=0.005, sgld_grad_clip=0.03, buffer_size=8192,
        warmup_epochs=0.0, lr_decay=0.97, gen_steps=512, gen_samples=256,
    ),
    "smoke": dict(
        small=True, epochs=2, min_steps=None, max_steps_per_epoch=4, batch_size=32, sample_size=8,
        sgld_steps=5, buffer_size=256, gen_steps=16, gen_samples=8, ood_n=64,
        warmup_epochs=0.0, channels_last=False,
    ),
}


def profile_config(profile: str, **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of a named profile with some fields overridden."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    values = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(profile=profile, **values)


def field_help() -> dict[str, tuple[type, object]]:
    """``{name: (type, default)}`` for every field (used to build the CLI)."""
    out = {}
    for f in fields(TrainConfig):
        out[f.name] = (f.type, f.default)
    return out
