"""``AdvancedJEM``: the exercise's JEM with every switch of the advanced chapter.

It *is* the exercise's ``JEM`` (a subclass of ``solutions/ex3_main.py``'s class, loaded by
:mod:`.reference`): ``pyx_step``, ``training_step`` (the weighted sum and the ``px`` warm-up),
``validation_step``, the optimiser and the sampler part of the checkpoint are inherited, so
the two cannot drift apart. It builds its own network and chain sampler and overrides
``px_step``. With all switches off (``AdvancedConfig()``) it trains what ``JEM`` trains: the
reference ``CNNModel``, SGLD negatives from a persistent replay buffer, the contrastive loss
with the L2 energy regulariser, and cross-entropy for ``q(y|x)``. The switches
(:class:`~glyph_course.advanced.config.AdvancedConfig`):

* architecture: ``multiscale`` (:mod:`.multiscale`), ``spectral_norm`` (:mod:`.spectral`);
* chains: ``chain_init`` (persistent / data / noise), ``buffer_scheme`` (persistent /
  reservoir), ``augment_init``, ``temperature``, ``sgld_grad_clip``, ``sample_with_ema``;
* losses: ``ml_loss`` (contrastive / IGEBM softmax-weighted), ``kl_weight`` and
  ``entropy_weight`` (improved CD's KL term: the last ``kl_steps`` Langevin steps are
  differentiated, :mod:`.kl`);
* ``ema_decay``: an EMA copy of the weights, updated after every optimiser step and used by
  :meth:`AdvancedJEM.eval_model` (generation, evaluation).

One training step (``px`` part)::

    x0      <- chain starts (buffer / data / noise, optionally augmented)
    x       <- SGLD, sgld_steps - kl_steps steps, no graph          (the EMA model if sample_with_ema)
    x_kl    <- SGLD, the last kl_steps steps *with* graph to theta   (only with the KL/entropy term)
    loss_px = ML(E(x_real), E(x_fake)) + alpha * L2 + kl_weight * E_{sg(theta)}(x_kl)
              - entropy_weight * nn_entropy(x_kl, past samples)

Checkpoints carry the replay buffer (and the augmenter's and the Langevin noise's generator
states), the EMA weights and the current SGLD step size, so a resumed run continues exactly.
"""
from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn as nn

from glyph_ebm.errors import CheckpointError
from .augment import GlyphAugment
from .buffer import ReplayBuffer
from .chains import ChainSampler
from .config import AdvancedConfig
from .ema import EMA
from .kl import differentiable_steps, nn_entropy, sampler_energy_loss
from .langevin import langevin
from .losses import kl_loss, px_loss
from .multiscale import MultiScaleEnergy
from ..reference import reference
from .spectral import apply_spectral_norm


def build_energy_net(cfg: AdvancedConfig, num_classes: int, img_shape=(1, 56, 56)) -> nn.Module:
    """The energy network of a config: the reference ``CNNModel``, wrapped in a
    :class:`MultiScaleEnergy` (full, half, quarter resolution) when ``cfg.multiscale``, with
    spectral normalisation when ``cfg.spectral_norm``."""
    cnn = reference().model.CNNModel

    def make() -> nn.Module:
        return cnn(num_classes=num_classes, hidden=cfg.hidden, in_channels=img_shape[0])
    net = MultiScaleEnergy.from_factory(make) if cfg.multiscale else make()
    if cfg.spectral_norm:
        apply_spectral_norm(net)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    return net


class AdvancedJEM(reference().main.JEM):
    """Joint energy model ``log q(x, y) = log q(x) + log q(y|x)`` with the chapter's switches.

    ``forward(x, y=None)`` is the trained network's ``f(x) = -E(x)`` (shape ``(B,)``); see the
    module docs for the training step. ``mode`` as in the exercise: ``ebm``, ``jem``, ``jem_cond``.
    The network is ``self.net`` (``self.cnn``, the name the inherited ``JEM`` methods use, is
    the same module).
    """

    def __init__(self, config: AdvancedConfig | dict | None = None, num_classes: int = 42,
                 img_shape=(1, 56, 56), steps_per_epoch: int = 1):
        # not JEM.__init__: that builds the exercise's CNNModel and MCMCSampler, and this class
        # builds its own network (multi-scale, spectral norm) and chain sampler instead
        pl.LightningModule.__init__(self)
        if config is None:
            config = AdvancedConfig()
        elif isinstance(config, dict):
            config = AdvancedConfig.from_dict(config)
        self.save_hyperparameters({"config": config.to_dict(), "num_classes": int(num_classes),
                                   "img_shape": list(img_shape), "steps_per_epoch": int(steps_per_epoch)})
        self.cfg = config
        self.num_classes = int(num_classes)
        self.img_shape = tuple(img_shape)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.net = build_energy_net(config, self.num_classes, self.img_shape)
        self.ema = EMA(self.net, config.ema_decay) if config.ema_decay > 0 else None
        replay = ReplayBuffer(self.img_shape, config.buffer_size, config.buffer_scheme, config.reinit_frac,
                              init_std=config.init_std, seed=config.seed)
        augment = GlyphAugment(seed=config.seed) if config.augment_init else None
        self.sampler = ChainSampler(replay, config.chain_init, augment, config.channels_last)
        self.noise_generator = torch.Generator().manual_seed(config.seed + 1)   # the Langevin noise
        self.step_size = config.step_size   # lowered by the divergence guard when needed

    # -- the networks ----------------------------------------------------------------------
    @property
    def cnn(self) -> nn.Module:
        """The trained network under the name the inherited ``JEM`` methods use."""
        return self.net

    def eval_model(self) -> nn.Module:
        """The network to generate with and evaluate: the EMA copy when EMA is on."""
        return self.ema.model if self.ema is not None else self.net

    def on_fit_start(self) -> None:
        if self.ema is not None:
            self.ema.to(self.device)

    # -- sampling --------------------------------------------------------------------------
    def _sgld(self, **overrides) -> dict:
        cfg = self.cfg
        return {"step_size": self.step_size, "noise": cfg.noise, "temperature": cfg.temperature,
                "grad_clip": cfg.sgld_grad_clip, "generator": self.noise_generator, **overrides}

    def sample_negatives(self, x_real: torch.Tensor, y_real: torch.Tensor) -> dict:
        """Run the training chains. Returns ``{"x_fake": detached (n, C, H, W), "y_fake": labels
        or None, "x_kl": the same images with the graph of the last kl_steps steps (or None),
        "past": past samples for the entropy term (or None)}``."""
        cfg, n = self.cfg, self.cfg.sample_size
        y_fake = data = None
        pick = torch.randint(len(x_real), (n,), device=x_real.device)
        if self.conditional:
            y_fake = y_real[pick]
        if cfg.chain_init == "data":
            data = x_real[pick]
        x0, slots = self.sampler.start(n, y_fake, data)
        past = None
        if cfg.entropy_weight > 0 and len(self.sampler.replay):
            past = self.sampler.replay.sample(cfg.entropy_samples).to(self.device)
        k_diff = cfg.kl_steps if cfg.uses_kl else 0
        chain_model = self.ema.model if cfg.sample_with_ema else self.net
        x = langevin(chain_model, x0.to(self.device), cfg.sgld_steps - k_diff, y=y_fake, **self._sgld())
        x_kl = None
        if k_diff:
            x_kl = differentiable_steps(self.net, x, k_diff, y=y_fake, **self._sgld())
            x = x_kl.detach()
        self.sampler.finish(x, slots, y_fake)
        return {"x_fake": x, "y_fake": y_fake, "x_kl": x_kl, "past": past}

    @torch.no_grad()
    def generate(self, n: int, steps: int | None = None, seed: int = 0, y: torch.Tensor | None = None,
                 keep_steps=()):
        """Long-run samples from noise with :meth:`eval_model`: ``N(0, init_std^2)`` starts (as the
        exercise's ``run_generation``), ``steps`` (default ``gen_steps``) SGLD steps at the
        config's temperature, augmentation jumps every ``augment_every`` steps when set."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(seed)
        x0 = (cfg.init_std * torch.randn((n, *self.img_shape), generator=g)).clamp(-1, 1).to(self.device)
        augment = GlyphAugment(seed=seed) if cfg.augment_every else None
        return langevin(self.eval_model(), x0, cfg.gen_steps if steps is None else steps, y=y,
                        augment_every=cfg.augment_every, augment=augment, keep_steps=keep_steps,
                        **self._sgld(generator=g))

    # -- losses ----------------------------------------------------------------------------
    def px_step(self, batch) -> torch.Tensor:
        """Generative loss (see the module docs); logs its parts."""
        x_real, y_real = batch
        cfg = self.cfg
        neg = self.sample_negatives(x_real, y_real)
        e_real = -self.net(x_real, y_real if self.conditional else None)
        e_fake = -self.net(neg["x_fake"], neg["y_fake"])
        loss, parts = px_loss(e_real, e_fake, cfg.alpha, cfg.ml_loss)
        logs = {"train/cdiv": parts["ml"], "train/reg": parts["reg"], "train/e_real": e_real.mean(),
                "train/e_fake": e_fake.mean()}
        if neg["x_kl"] is not None:
            l_opt = sampler_energy_loss(self.net, neg["x_kl"], neg["y_fake"]) if cfg.kl_weight > 0 else None
            entropy = nn_entropy(neg["x_kl"], neg["past"]) if neg["past"] is not None else None
            loss = loss + kl_loss(l_opt, entropy, cfg.kl_weight, cfg.entropy_weight).to(loss.device)
            if l_opt is not None:
                logs["train/kl_opt"] = l_opt
            if entropy is not None:
                logs["train/nn_entropy"] = entropy
        logs["train/px_loss"] = loss
        self.log_dict(logs)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update(self.net)

    # -- checkpointing (JEM's part: the sampler and the SGLD step size) ---------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["noise_generator"] = self.noise_generator.get_state()
        if self.ema is not None:
            checkpoint["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "noise_generator" in checkpoint:
            self.noise_generator.set_state(checkpoint["noise_generator"])
        if self.ema is not None:
            if "ema" not in checkpoint:
                raise CheckpointError("this checkpoint has no EMA weights but the config asks for EMA "
                                      "(ema_decay > 0); resume with the run's own config")
            self.ema.load_state_dict(checkpoint["ema"])
