"""``AdvancedJEM``: the exercise's JEM with every switch of the advanced chapter.

It *is* the exercise's ``JEM`` (a subclass of ``solutions/ex3_main.py``'s class, loaded by
:mod:`glyph_course.reference` when the class is first used): ``__init__``, ``px_step`` (the
contrastive loss and the L2 regulariser), ``pyx_step``, ``training_step`` (the weighted sum and
the ``px`` warm-up), ``validation_step``, the optimiser and the sampler part of the checkpoint
are the exercise's, so the two cannot drift apart. The chapter swaps two parts and adds terms:

* the network ``self.cnn`` (alias ``self.net``): the exercise's ``CNNModel``, or the chapter's
  architecture when ``multiscale`` (:mod:`.multiscale`) or ``spectral_norm`` (:mod:`.spectral`)
  is on;
* the sampler ``self.sampler``: a :class:`~.sampler.ChapterSampler`, the exercise's
  ``MCMCSampler`` with the chapter's chain starts (``chain_init``, ``augment_init``), buffer
  scheme (``buffer_scheme``), ``temperature`` and the differentiated last ``kl_steps`` steps
  (when the KL or entropy term is on);
* ``px_step`` = the exercise's ``px_step`` on those chains, plus the chapter's terms:
  IGEBM's softmax-weighted ML loss (``ml_loss="softmax"``) as a correction of the contrastive
  loss, and improved CD's KL term ``kl_weight * L_opt - entropy_weight * nn_entropy``.

With all switches off (``AdvancedConfig()``) it trains exactly what ``JEM`` trains. One
training step (``px`` part)::

    x0      <- chain starts (buffer / data / noise, optionally augmented)
    x       <- the exercise's SGLD, sgld_steps - kl_steps steps
    x_kl    <- the exercise's SGLD, the last kl_steps steps, with the graph to theta (KL/entropy on)
    loss_px = [E(x_real) - E(x_fake) + alpha * L2]                    (the exercise's px_step)
              + sum_i (1/B - sg(w_i)) E(x_i)  with w = softmax(-E(x_fake))   (ml_loss="softmax")
              + kl_weight * E_{sg(theta)}(x_kl) - entropy_weight * nn_entropy(x_kl, past samples)

The exercise logs its part as ``train/px_loss``; the chapter's total is ``train/px_total``.

**EMA of the weights** (``ema_decay`` > 0; Du et al. 2021 generate and evaluate with it) is not
the module's business: the field is the exercise's own ``TrainConfig.ema_decay``, and
:func:`glyph_ebm.training.build_trainer` adds Lightning's ``EMAWeightAveraging(decay=ema_decay)``
callback, which after every optimiser step updates
``theta_avg <- decay * theta_avg + (1 - decay) * theta`` (the first step copies ``theta``; the
buffers, e.g. spectral-norm ``u, v``, are averaged too), validates with the averaged weights and
puts them into the module when fitting ends. After ``trainer.fit`` the module's own network
*is* the averaged one, so :meth:`generate`, the ablation's metrics and a checkpoint's
``state_dict`` all use the average; during fitting the module holds the trained weights.

There is no switch any more to run the *training* chains with the averaged weights (the former
``sample_with_ema``): Lightning keeps the average to itself while fitting (a private attribute
of the callback), so the switch would need a second, hand-written average next to it, and no
variant of the ablation used it.

Checkpoints carry the replay buffer and the sampler's generator (the exercise's part), the
augmenter's state, the current SGLD step size and, with ``ema_decay``, the callback's part: the
averaged weights as ``state_dict``, the trained ones as ``current_model_state`` and the number
of averaged steps in ``averaging_state``, so a resumed run continues exactly. The class is built
on first use, so importing this module runs no exercise code;
``from glyph_course.advanced.training import AdvancedJEM`` does (see :func:`advanced_jem_class`).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn

from glyph_ebm.errors import CheckpointError
from .augment import GlyphAugment
from .config import AdvancedConfig
from .kl import nn_entropy, sampler_energy_loss
from .losses import kl_loss, softmax_correction
from .multiscale import MultiScaleEnergy
from .sampler import sampler_class
from .spectral import apply_spectral_norm


def build_energy_net(cfg: AdvancedConfig, num_classes: int, img_shape=(1, 56, 56)) -> nn.Module:
    """The energy network of a config: the reference ``CNNModel``, wrapped in a
    :class:`MultiScaleEnergy` (full, half, quarter resolution) when ``cfg.multiscale``, with
    spectral normalisation when ``cfg.spectral_norm``."""
    from ..reference import reference

    cnn = reference().model.CNNModel

    def make() -> nn.Module:
        return cnn(num_classes=num_classes, hidden=cfg.hidden, in_channels=img_shape[0])
    net = MultiScaleEnergy.from_factory(make) if cfg.multiscale else make()
    if cfg.spectral_norm:
        apply_spectral_norm(net)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    return net


class AdvancedJEMMixin:
    """The chapter's part of :class:`AdvancedJEM` (combined with the exercise's ``JEM`` by
    :func:`advanced_jem_class`).

    Joint energy model ``log q(x, y) = log q(x) + log q(y|x)`` with the chapter's switches;
    ``forward(x, y=None)`` is the trained network's ``f(x) = -E(x)`` (shape ``(B,)``); ``mode``
    as in the exercise: ``ebm``, ``jem``, ``jem_cond``. See the module docs for the training step.
    """

    def __init__(self, config: AdvancedConfig | dict | None = None, num_classes: int = 42,
                 img_shape=(1, 56, 56), steps_per_epoch: int = 1):
        if config is None:
            config = AdvancedConfig()
        elif isinstance(config, dict):
            if "sample_with_ema" in config:            # (the hyperparameters of a checkpoint)
                raise older_chapter("its own EMA of the weights and the switch sample_with_ema")
            config = AdvancedConfig.from_dict(config)
        elif not isinstance(config, AdvancedConfig):
            config = AdvancedConfig.from_dict(config.to_dict())
        super().__init__(config, num_classes, img_shape, steps_per_epoch)
        if config.multiscale or config.spectral_norm:
            self.cnn = build_energy_net(config, self.num_classes, self.img_shape)
        self.sampler = sampler_class().from_sampler(
            self.sampler, self.cnn, temperature=config.temperature, scheme=config.buffer_scheme,
            chain_init=config.chain_init, augment=GlyphAugment(seed=config.seed) if config.augment_init else None,
            kl_steps=config.kl_steps if config.uses_kl else 0,
            entropy_samples=config.entropy_samples if config.entropy_weight > 0 else 0)
        self._trained: dict | None = None                 # see on_save_checkpoint
        self._averaged_at_resume: dict | None = None      # see on_fit_end

    # -- the networks ----------------------------------------------------------------------
    @property
    def net(self) -> nn.Module:
        """The trained network (``self.cnn``, the name the exercise's methods use)."""
        return self.cnn

    # -- sampling --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n: int, steps: int | None = None, seed: int = 0, y: torch.Tensor | None = None,
                 keep_steps=()):
        """Long-run samples from noise with the network (after fitting with ``ema_decay``: the
        averaged weights, see the module docs), as the exercise's
        ``run_generation``: a sampler without a buffer (seeded with ``seed``), ``N(0, init_std^2)``
        starts, ``steps`` (default ``gen_steps``) SGLD steps at the config's temperature, and an
        augmentation jump every ``augment_every`` steps when that is set."""
        cfg = self.cfg
        sampler = sampler_class().from_sampler(self.sampler, self.cnn, max_len=1, reinit_frac=1.0,
                                               seed=seed, temperature=cfg.temperature, fresh="gaussian")
        x0, _ = sampler.sample_initial(n if y is None else len(y), y)
        augment = GlyphAugment(seed=seed) if cfg.augment_every else None
        return sampler.langevin(x0, cfg.gen_steps if steps is None else steps, self.step_size, cfg.noise, y=y,
                                keep_steps=keep_steps, augment_every=cfg.augment_every, augment=augment)

    # -- losses ----------------------------------------------------------------------------
    def px_step(self, batch) -> torch.Tensor:
        """The exercise's ``px_step`` on the chapter's chains plus the chapter's terms (see the
        module docs); logs them and their total ``train/px_total``."""
        cfg = self.cfg
        self.sampler.data = batch if cfg.chain_init == "data" else None      # data starts need the batch
        try:
            loss = super().px_step(batch)
        finally:
            self.sampler.data = None
        chains = self.sampler.last
        logs = {}
        if cfg.ml_loss == "softmax":
            logs["train/ml_correction"] = softmax_correction(-self.cnn(chains.x, chains.y))
        if chains.x_kl is not None:
            l_opt = sampler_energy_loss(self.cnn, chains.x_kl, chains.y) if cfg.kl_weight > 0 else None
            entropy = nn_entropy(chains.x_kl, chains.past) if chains.past is not None else None
            logs["train/kl"] = kl_loss(l_opt, entropy, cfg.kl_weight, cfg.entropy_weight).to(loss.device)
            if l_opt is not None:
                logs["train/kl_opt"] = l_opt
            if entropy is not None:
                logs["train/nn_entropy"] = entropy
        total = loss
        for term in ("train/ml_correction", "train/kl"):
            if term in logs:
                total = total + logs[term]
        self.log_dict({**logs, "train/px_total": total})
        return total

    # -- checkpoints and the weight average (JEM's part: the sampler, the SGLD step size) ---
    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.cfg.ema_decay > 0:                # (after the callbacks: the weight average, the guard)
            self._trained = {k: v.detach().clone() for k, v in self.state_dict().items()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The exercise's part, and the trained weights of the last step as the weight average's
        ``current_model_state``: when fitting ends, Lightning's callback copies the average into
        the module *before* the last checkpoint is written (checkpoint callbacks run last), which
        would store the average twice and resume from it instead of the trained weights."""
        super().on_save_checkpoint(checkpoint)
        if "current_model_state" in checkpoint and self._trained is not None:
            checkpoint["current_model_state"] = self._trained

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        older = any(k.startswith("net.") for k in checkpoint.get("state_dict", {}))
        if older or "replay" in checkpoint.get("sampler", {}):
            raise older_chapter("its own copy of the sampler")
        if "ema" in checkpoint:
            raise older_chapter("its own EMA of the weights, now Lightning's EMAWeightAveraging")
        super().on_load_checkpoint(checkpoint)
        # Written with EMAWeightAveraging: state_dict = the averaged weights, current_model_state =
        # the trained ones (which the callback loads into the module when fitting resumes).
        self._averaged_at_resume = checkpoint["state_dict"] if "current_model_state" in checkpoint else None

    def on_train_start(self) -> None:
        self._trained = None
        self._averaged_at_resume = None           # training runs: the callback hands over the average at its end

    def on_fit_end(self) -> None:
        """Resuming a run whose training had already finished skips the training loop, and with
        it the callback's hand-over of the averaged weights at its end: the module would keep the
        trained weights the callback restored. The averaged ones from the checkpoint go in instead."""
        if self._averaged_at_resume is not None:
            self.load_state_dict(self._averaged_at_resume)
        self._trained = self._averaged_at_resume = None


def older_chapter(what: str) -> CheckpointError:
    """The error for a checkpoint or config of an older version of the chapter (with ``what``)."""
    return CheckpointError(f"this checkpoint was written by an older version of the advanced chapter (with {what}); "
                           "it cannot be resumed: train afresh (glyph-course ablate --overwrite, or another --out)")


@lru_cache(maxsize=None)
def advanced_jem_class() -> type:
    """``AdvancedJEM``: :class:`AdvancedJEMMixin` on the reference ``JEM`` (the exercise is
    loaded on the first call). Found by pickle and Lightning as ``glyph_course.advanced.training.AdvancedJEM``."""
    from ..reference import reference

    return type("AdvancedJEM", (AdvancedJEMMixin, reference().main.JEM),
                {"__module__": __name__, "__qualname__": "AdvancedJEM", "__doc__": AdvancedJEMMixin.__doc__})


def __getattr__(name: str):
    if name == "AdvancedJEM":
        return advanced_jem_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
