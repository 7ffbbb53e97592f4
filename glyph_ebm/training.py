"""Training machinery around the exercise's LightningModule (not part of the exercise).

* :class:`AtomicCheckpointIO` - checkpoints are written to a temporary file and renamed, so a
  crash or Ctrl-C never leaves a half-written ``last.ckpt``;
* :class:`RNGState` - torch/numpy/python RNG states travel in the checkpoint (exact resume);
* :class:`DivergenceGuard` - a non-finite loss or exploding energies roll the model and the
  optimiser back to the last good state, halve the SGLD step size and the learning rate, and
  log what happened, instead of leaving a NaN model;
* :func:`build_trainer` - a ``pl.Trainer`` configured from a :class:`TrainConfig`.
"""
from __future__ import annotations

import copy
import math
import random
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_warn

from .config import TrainConfig
from .files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written atomically (:func:`glyph_ebm.files.atomic_write`): a crash or Ctrl-C
    never leaves a half-written ``last.ckpt``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_write(path, binary=True) as fh:
            torch.save(checkpoint, fh)


class RNGState(Callback):
    """Saves and restores the global torch, numpy and python RNG states with the checkpoint."""

    def state_dict(self) -> dict:
        # plain tensors/ints only, so the checkpoint loads with torch.load(weights_only=True)
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        return {"torch": torch.get_rng_state(),
                "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "gauss": float(gauss)},
                "python": list(random.getstate()[1])}

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        n = state_dict["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["gauss"]))
        random.setstate((3, tuple(state_dict["python"]), None))


def _finite(t) -> bool:
    return t is None or bool(torch.isfinite(torch.as_tensor(t)).all())


class DivergenceGuard(Callback):
    """Detects divergence after each training batch and rolls back to the last good state.

    Divergence = non-finite loss, non-finite parameters, or a logged mean energy
    (``train/e_real``, ``train/e_fake``) with ``|E| > energy_limit``. On divergence the model
    and optimiser states are restored from the last snapshot (taken every ``snapshot_every``
    good steps), the module's ``step_size`` (SGLD) and the learning rate are multiplied by
    ``shrink``, non-finite chains in the replay buffer are reset, and ``guard/rollbacks`` is
    logged. After ``max_rollbacks`` rollbacks training stops with a clear message.
    """

    def __init__(self, energy_limit: float = 1e4, snapshot_every: int = 25, shrink: float = 0.5,
                 max_rollbacks: int = 10):
        self.energy_limit = energy_limit
        self.snapshot_every = snapshot_every
        self.shrink = shrink
        self.max_rollbacks = max_rollbacks
        self.rollbacks = 0
        self._snapshot = None

    def state_dict(self) -> dict:
        return {"rollbacks": self.rollbacks}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rollbacks = int(state_dict.get("rollbacks", 0))

    def _take_snapshot(self, trainer, pl_module) -> None:
        self._snapshot = {
            "model": copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}),
            "optimizers": [copy.deepcopy(o.state_dict()) for o in trainer.optimizers],
        }

    def on_train_start(self, trainer, pl_module) -> None:
        self._take_snapshot(trainer, pl_module)

    def diverged(self, trainer, pl_module, outputs) -> str | None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not _finite(loss):
            return f"loss is {float(loss)}"
        for name in ("train/e_real", "train/e_fake"):
            v = trainer.callback_metrics.get(name)
            if v is not None and (not _finite(v) or abs(float(v)) > self.energy_limit):
                return f"{name} = {float(v):.3g} (limit {self.energy_limit:g})"
        if not all(_finite(p) for p in pl_module.parameters()):
            return "parameters became non-finite"
        return None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        reason = self.diverged(trainer, pl_module, outputs)
        if reason is None:
            if trainer.global_step % self.snapshot_every == 0:
                self._take_snapshot(trainer, pl_module)
            return
        self.rollback(trainer, pl_module, reason)

    def rollback(self, trainer, pl_module, reason: str) -> None:
        self.rollbacks += 1
        if self.rollbacks > self.max_rollbacks:
            trainer.should_stop = True
            rank_zero_warn(f"divergence guard: {reason}; gave up after {self.max_rollbacks} "
                           "rollbacks. Lower --set step_size=... or --set lr=... and rerun.")
            return
        pl_module.load_state_dict(self._snapshot["model"])
        for opt, state in zip(trainer.optimizers, self._snapshot["optimizers"]):
            opt.load_state_dict(state)
            for group in opt.param_groups:
                group["lr"] *= self.shrink
        if hasattr(pl_module, "step_size"):
            pl_module.step_size *= self.shrink
        sampler = getattr(pl_module, "sampler", None)
        if sampler is not None and len(getattr(sampler, "buffer", ())):
            sampler.buffer = torch.nan_to_num(sampler.buffer, nan=0.0, posinf=1.0, neginf=-1.0)
        pl_module.log("guard/rollbacks", float(self.rollbacks))
        rank_zero_warn(f"divergence guard: {reason} at step {trainer.global_step}; rolled back to "
                       f"the last good state, SGLD step size now {getattr(pl_module, 'step_size', math.nan):.3g}, "
                       f"lr x{self.shrink}")


class RealImageNoise(Callback):
    """Adds Gaussian noise of standard deviation ``std`` to the real images of every training
    batch, before the module sees them (the UvA tutorial's 0.005: real images then have a little
    of the spread the samples have, which keeps the energy surface smooth around them)."""

    def __init__(self, std: float, seed: int = 0):
        self.std = float(std)
        self.generator = torch.Generator().manual_seed(int(seed))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        x = batch[0]
        x.add_(self.std * torch.randn(x.shape, generator=self.generator).to(x.device)).clamp_(-1.0, 1.0)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.generator.set_state(state_dict["generator"])


def build_trainer(cfg: TrainConfig, run_dir: Path, callbacks=(), enable_progress_bar: bool = True) -> pl.Trainer:
    """A ``pl.Trainer`` for one run folder: CSV log in ``run_dir/logs``, atomic
    ``run_dir/checkpoints/last.ckpt`` after every epoch, RNG states and divergence guard."""
    run_dir = Path(run_dir)
    # one file, checkpoints/last.ckpt, rewritten at the end of every epoch (save_last with
    # save_top_k=0 only writes it when training ends: an interrupted run would lose everything)
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           save_last=False, every_n_epochs=1, save_on_train_epoch_end=True,
                           enable_version_counter=False)
    max_time = None
    if cfg.max_time_s:
        s = int(cfg.max_time_s)
        max_time = {"days": 0, "hours": s // 3600, "minutes": (s % 3600) // 60, "seconds": s % 60}
    return pl.Trainer(
        default_root_dir=str(run_dir),
        max_epochs=cfg.epochs,
        max_time=max_time,
        limit_train_batches=cfg.max_steps_per_epoch or 1.0,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.precision,
        gradient_clip_val=cfg.grad_clip or None,
        callbacks=[ckpt, RNGState(), DivergenceGuard(cfg.energy_limit),
                   *([RealImageNoise(cfg.real_noise, cfg.seed)] if cfg.real_noise > 0 else []),
                   *([EMAWeightAveraging(decay=cfg.ema_decay)] if cfg.ema_decay > 0 else []), *callbacks],
        logger=CSVLogger(str(run_dir), name="logs", version=""),
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        deterministic=False,
    )
