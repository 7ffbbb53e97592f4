"""Exercise 3: training an EBM / JEM on printed glyphs, sampling it, and detecting OOD inputs.

Run ``python ex3_main.py --help`` from this folder. The pieces you implement:

* 3.3 ``MCMCSampler``      - SGLD with a bounded replay buffer
* 3.4 ``JEM``              - ``px_step`` (contrastive loss), ``pyx_step`` (cross-entropy),
                             ``training_step`` (both together)
* 3.5 ``run_generation``   - long-run sampling from noise and the chain figure
* 3.6 ``run_ood_analysis`` - energy histograms and AUROC

Conventions: images are ``(B, 1, H, W)`` in [-1, 1]; the model returns ``f(x) = -E(x)``;
OOD score ``s(x) = E(x)`` (higher = more out-of-distribution); AUROC labels ID = 0, OOD = 1.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve

from glyph_ebm import plots
from glyph_ebm.augment import ChainStartAugment
from glyph_ebm.config import TrainConfig

from ex3_model import CNNModel
from ex3_ood import score


class MCMCSampler:
    """Stochastic Gradient Langevin Dynamics with a bounded replay buffer (Exercise 3.3).

    :meth:`sample` (given) = :meth:`sample_initial` -> :meth:`langevin` -> :meth:`update_buffer`;
    the checks call these methods, so keep their names and signatures.

    One SGLD step (all ops elementwise, pixels clamped to [-1, 1] after each move)::

        x <- clamp(x + noise * eps),  eps ~ N(0, I)               # perturb
        x <- clamp(x + step_size * clip(grad_x f(x)))             # move to lower energy

    which is the sheet's update ``x - eta/2 * dE/dx + N(0, eta)`` with the step size and the
    noise scale set independently (as in Du & Mordatch 2019 and Grathwohl et al. 2020): the
    sheet's ``eta/2`` is ``step_size`` and its ``N(0, eta)`` (a variance) is noise of standard
    deviation ``noise``. ``clip`` clamps the input gradient elementwise to
    ``[-grad_clip, grad_clip]`` when ``grad_clip`` is set (the quick profile relies on it).
    Adding the noise after the move instead of before it is as good.

    The replay buffer (``self.buffer``: a tensor ``(N, C, H, W)``, or a list or deque of images)
    must meet this contract:

    * it never holds more than ``max_len`` images, and holds ``max_len`` once at least
      ``max_len`` chains have finished (it may also start out filled with fresh noise);
    * once it holds ``max_len`` images, each chain starts from fresh noise ``N(0, init_std^2)``
      with probability ``reinit_frac`` and otherwise from an image of the buffer drawn at
      random (while it is still filling, chains may start fresh more often);
    * after :meth:`update_buffer`, the end point of every chain that started from the buffer
      is in the buffer (written back to its slot, or added as a new image), so that persistent
      chains advance; fresh chains are added while there is room (afterwards they may replace
      other images, e.g. by reservoir sampling).

    With labels ``y`` (conditional JEM), taking buffer chains of the same class is recommended.
    The reference keeps a tensor buffer: chains taken from it are written back to their slot,
    fresh chains enter by reservoir sampling once it is full, and while it fills its empty slots
    count as fresh noise (a chain starts fresh with probability ``1 - len(buffer) / max_len``).

    Args:
        model: any ``nn.Module`` with ``forward(x, y=None) -> f(x) = -E(x)`` of shape ``(B,)``.
        img_shape: ``(C, H, W)`` of one image.
        sample_size: chains per call of :meth:`sample` (when no labels are given).
        max_len: buffer capacity in images.
        reinit_frac: probability that a chain starts from noise instead of the buffer.
        init_std: standard deviation of the fresh-chain Gaussian.
        grad_clip: clamp the input gradient elementwise to ``[-grad_clip, grad_clip]`` (None = off).
        seed: seed of the sampler's own random generator (part of its state for exact resume).
        channels_last: run the convolutions on channels-last tensors (faster on a CPU, same result).
        start_transform: ``(x0, generator) -> x0`` applied to the starts before the Langevin steps
            (given; e.g. :class:`glyph_ebm.augment.ChainStartAugment`), or None.
    """

    def __init__(self, model: nn.Module, img_shape, sample_size: int, max_len: int = 10000,
                 reinit_frac: float = 0.05, init_std: float = 0.01, grad_clip: float | None = None,
                 seed: int = 0, channels_last: bool = False, start_transform=None):
        self.model = model
        self.start_transform = start_transform
        self.img_shape = tuple(img_shape)
        self.sample_size = int(sample_size)
        self.max_len = int(max_len)
        self.reinit_frac = float(reinit_frac)
        self.init_std = float(init_std)
        self.grad_clip = grad_clip
        self.seed = int(seed)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # oneDNN (CPU) convolutions run natively on NHWC: the same arithmetic up to rounding
            # and about 1.2-1.4x faster SGLD on CPU. Converts the (shared) model's weights in place.
            self.model.to(memory_format=torch.channels_last)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.buffer = torch.zeros((0, *self.img_shape))              # (N, C, H, W), N <= max_len
        self.buffer_labels = torch.zeros(0, dtype=torch.long)        # -1 = unconditional chain
        self.n_seen = 0                                              # fresh chains offered so far

    # -- randomness -------------------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        """Restart the sampler's generator (e.g. one seed per DDP rank)."""
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def _randn(self, shape, device) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator).to(device)

    def _device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    # -- Exercise 3.3a ----------------------------------------------------------------------
    def sample_initial(self, n: int, y: torch.Tensor | None = None):
        """Starting points of ``n`` chains (see the buffer contract in the class docstring).

        Returns ``(x0, slots)``: ``x0`` of shape ``(n, *img_shape)`` on the model's device, and
        ``slots``: whatever :meth:`update_buffer` needs to know where each chain came from (the
        reference: an ``(n,)`` long tensor of buffer slots, ``-1`` for a fresh chain).
        """
        # BEGIN SOLUTION 3.3a: fresh chains from N(0, init_std^2) with prob. reinit_frac, the rest from the buffer
        g = self.generator
        x0 = (self.init_std * torch.randn((n, *self.img_shape), generator=g)).clamp(-1.0, 1.0)
        slots = torch.full((n,), -1, dtype=torch.long)
        # a chain continues from the buffer unless it is re-initialised; while the buffer is
        # not full yet, empty slots count as fresh noise (as if it had been filled with noise)
        fill = len(self.buffer) / self.max_len
        from_buffer = (torch.rand(n, generator=g) >= self.reinit_frac) & (torch.rand(n, generator=g) < fill)
        if len(self.buffer) > 0 and bool(from_buffer.any()):
            if y is None:
                picks = torch.randint(len(self.buffer), (n,), generator=g)
                slots = torch.where(from_buffer, picks, slots)
            else:
                y_cpu = y.detach().cpu().long()
                for c in y_cpu.unique():
                    candidates = torch.nonzero(self.buffer_labels == c).flatten()
                    wanted = torch.nonzero((y_cpu == c) & from_buffer).flatten()
                    if len(candidates) and len(wanted):
                        pick = torch.randint(len(candidates), (len(wanted),), generator=g)
                        slots[wanted] = candidates[pick]
            chosen = slots >= 0
            x0[chosen] = self.buffer[slots[chosen]]
        return x0.to(self._device()), slots
        # END SOLUTION

    def update_buffer(self, x: torch.Tensor, slots: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Store finished chains: buffer chains go back to their slot, fresh chains are added
        (by reservoir sampling once the buffer holds ``max_len`` images)."""
        # BEGIN SOLUTION 3.3a: write chains back, keep the buffer at most max_len long
        x = x.detach().cpu()
        labels = torch.full((len(x),), -1, dtype=torch.long) if y is None else y.detach().cpu().long()
        old = slots >= 0
        if bool(old.any()):
            self.buffer[slots[old]] = x[old]
            self.buffer_labels[slots[old]] = labels[old]
        fresh = torch.nonzero(~old).flatten()
        room = max(0, self.max_len - len(self.buffer))
        add, rest = fresh[:room], fresh[room:]
        if len(add):
            self.buffer = torch.cat([self.buffer, x[add]])
            self.buffer_labels = torch.cat([self.buffer_labels, labels[add]])
        self.n_seen += len(add)
        for i in rest.tolist():
            self.n_seen += 1
            j = int(torch.randint(self.n_seen, (1,), generator=self.generator))
            if j < self.max_len:
                self.buffer[j] = x[i]
                self.buffer_labels[j] = labels[i]
        # END SOLUTION

    # -- Exercise 3.3b/c --------------------------------------------------------------------
    def langevin(self, x: torch.Tensor, steps: int, step_size: float, noise: float,
                 y: torch.Tensor | None = None, keep_steps=()):
        """Run ``steps`` SGLD steps (class docstring) from ``x`` (not modified in place), on the
        class-conditional ``f(x, y)`` when labels ``y`` are given.

        Gradients are taken with respect to the input only: no parameter gradient is left
        behind (the parameters keep ``requires_grad``), no autograd graph is carried from one
        step to the next (memory must not grow with ``steps``), and the model's train/eval mode
        is restored afterwards. Returns the final images (detached), or
        ``(final, {step: images})`` when ``keep_steps`` is given (step 0 = the start).
        """
        was_training = self.model.training
        self.model.eval()
        x = x.detach().clone(memory_format=torch.channels_last if self.channels_last and x.dim() == 4
                             else torch.preserve_format)
        kept = {0: x.clone()} if 0 in keep_steps else {}
        with torch.enable_grad():
            for k in range(1, steps + 1):
                # BEGIN SOLUTION 3.3b/c: one SGLD step: perturb with noise, then step up the input gradient of f = -E (clipped when grad_clip is set); clamp to [-1, 1]
                if noise > 0:
                    x = x + noise * self._randn(x.shape, x.device)
                x = x.clamp(-1.0, 1.0).requires_grad_(True)
                f = self.model(x, y)
                (grad,) = torch.autograd.grad(f.sum(), x)
                if self.grad_clip is not None:
                    grad = grad.clamp(-self.grad_clip, self.grad_clip)
                x = (x.detach() + step_size * grad).clamp(-1.0, 1.0)
                # END SOLUTION
                if k in keep_steps:
                    kept[k] = x.detach().clone()
        self.model.train(was_training)
        x = x.detach()
        return (x, kept) if keep_steps else x

    def sample(self, steps: int = 20, step_size: float = 1.0, noise: float = 0.01,
               y: torch.Tensor | None = None) -> torch.Tensor:
        """Draw a batch of samples: buffer/fresh starts -> ``steps`` SGLD steps -> buffer.

        Returns ``(sample_size, *img_shape)`` images in [-1, 1] (``len(y)`` images when
        class labels ``y`` are given, for the conditional JEM).
        """
        n = self.sample_size if y is None else len(y)
        x0, slots = self.sample_initial(n, y)
        if self.start_transform is not None:     # augmented chain starts (see glyph_ebm.augment)
            x0 = self.start_transform(x0, getattr(self, "generator", None))
        x = self.langevin(x0, steps, step_size, noise, y=y)
        self.update_buffer(x, slots, y)
        return x

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"buffer": self.buffer.clone(), "buffer_labels": self.buffer_labels.clone(),
                "n_seen": self.n_seen, "generator": self.generator.get_state(), "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.buffer = state["buffer"].clone()
        self.buffer_labels = state["buffer_labels"].clone()
        self.n_seen = int(state["n_seen"])
        self.seed = int(state.get("seed", self.seed))
        self.generator.set_state(state["generator"])


class JEM(pl.LightningModule):
    """Joint Energy Model (Exercise 3.4): ``log q(x, y) = log q(x) + log q(y | x)``.

    ``mode``: ``"ebm"`` trains only ``q(x)``; ``"jem"`` trains ``q(x)`` (logsumexp energy) and
    ``q(y|x)``; ``"jem_cond"`` contrasts ``E(x, y)`` of real pairs with class-conditional
    samples and trains ``q(y|x)``. All settings come from a :class:`TrainConfig`.
    """

    def __init__(self, config: TrainConfig | dict | None = None, num_classes: int = 42,
                 img_shape=(1, 56, 56), steps_per_epoch: int = 1):
        super().__init__()
        if config is None:
            config = TrainConfig()
        elif isinstance(config, dict):
            config = TrainConfig.from_dict(config)
        self.save_hyperparameters({"config": config.to_dict(), "num_classes": int(num_classes),
                                   "img_shape": list(img_shape),
                                   "steps_per_epoch": int(steps_per_epoch)})
        self.cfg = config
        self.num_classes = int(num_classes)
        self.img_shape = tuple(img_shape)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.cnn = CNNModel(num_classes=self.num_classes, hidden=config.hidden,
                            in_channels=self.img_shape[0])
        self.sampler = MCMCSampler(self.cnn, self.img_shape, config.sample_size,
                                   max_len=config.buffer_size, reinit_frac=config.reinit_frac,
                                   init_std=config.init_std, grad_clip=config.sgld_grad_clip,
                                   seed=config.seed, channels_last=config.channels_last,
                                   start_transform=ChainStartAugment(config.start_augment,
                                                                     blur=(0.0, config.start_blur))
                                   if config.start_augment > 0 else None)
        self.step_size = config.step_size   # lowered by the divergence guard when needed

    def forward(self, x, y=None):
        return self.cnn(x, y)

    @property
    def conditional(self) -> bool:
        return self.cfg.mode == "jem_cond"

    def px_weight_now(self) -> float:
        """Weight of the generative term, ramped up linearly over ``warmup_epochs``."""
        if self.cfg.mode == "ebm" or self.cfg.warmup_epochs <= 0:
            return self.cfg.px_weight
        progress = self.global_step / (self.cfg.warmup_epochs * self.steps_per_epoch)
        return self.cfg.px_weight * min(1.0, progress)

    # -- Exercise 3.4a ----------------------------------------------------------------------
    def px_step(self, batch) -> torch.Tensor:
        """Contrastive loss for ``log q(x)`` plus the L2 energy regulariser.

        ``loss = mean E(x_real) - mean E(x_fake) + alpha * (mean E(x_real)^2 + mean E(x_fake)^2)``
        with ``E = -f``. The samples come from ``self.sampler``, run for ``cfg.sgld_steps`` steps
        with the current step size ``self.step_size`` (the divergence guard may lower it) and
        the noise ``cfg.noise``; they are detached, both energies stay differentiable in the
        parameters.

        Which energy: in ``ebm`` and ``jem`` mode the marginal ``E(x) = -cnn(x)``. In
        ``jem_cond`` mode the samples are class-conditional (labels drawn from the batch and
        given to the sampler), and both readings of the conditional objective are accepted:
        the class-conditional energy ``E(x, y) = -cnn(x, y)`` for the real pairs and for the
        samples with the labels they were drawn for (the reference), or the marginal
        ``E(x) = -cnn(x)`` for both (as the JEM authors' code does).
        """
        x_real, y_real = batch
        # BEGIN SOLUTION 3.4a: sample x_fake, compare the energies, add the L2 regulariser
        y_fake = None
        if self.conditional:
            pick = torch.randint(len(y_real), (self.sampler.sample_size,), device=y_real.device)
            y_fake = y_real[pick]
        x_fake = self.sampler.sample(self.cfg.sgld_steps, self.step_size, self.cfg.noise, y=y_fake)
        e_real = -self.cnn(x_real, y_real if self.conditional else None)
        e_fake = -self.cnn(x_fake, y_fake)
        cdiv = e_real.mean() - e_fake.mean()
        reg = self.cfg.alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean())
        loss = cdiv + reg
        # END SOLUTION
        self.log_dict({"train/cdiv": cdiv, "train/reg": reg, "train/e_real": e_real.mean(),
                       "train/e_fake": e_fake.mean(), "train/px_loss": loss})
        return loss

    # -- Exercise 3.4b ----------------------------------------------------------------------
    def pyx_step(self, batch) -> torch.Tensor:
        """Cross-entropy of ``q(y | x) = softmax(logits)`` on the real batch."""
        x, y = batch
        # BEGIN SOLUTION 3.4b: cross-entropy of get_logits(x) against y
        logits = self.cnn.get_logits(x)
        loss = F.cross_entropy(logits, y)
        # END SOLUTION
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log_dict({"train/pyx_loss": loss, "train/acc": acc}, prog_bar=True)
        return loss

    # -- Exercise 3.4c ----------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        """Total loss ``px_weight_now() * px + pyx_weight * pyx`` (only px in ``ebm`` mode).

        ``px_weight_now()`` (given) ramps the generative term up during the warm-up; while it
        is 0, ``px_step`` may be skipped."""
        # BEGIN SOLUTION 3.4c: weighted sum of px_step and pyx_step (no pyx in "ebm" mode)
        loss = torch.zeros((), device=self.device)
        w_px = self.px_weight_now()
        if w_px > 0:
            loss = loss + w_px * self.px_step(batch)
        if self.cfg.mode != "ebm":
            loss = loss + self.cfg.pyx_weight * self.pyx_step(batch)
        # END SOLUTION
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.cnn.get_logits(x)
        self.log_dict({"val/acc": (logits.argmax(1) == y).float().mean(),
                       "val/energy": -torch.logsumexp(logits, 1).mean()},
                      prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.cfg.lr,
                               betas=(self.cfg.beta1, self.cfg.beta2),
                               weight_decay=self.cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.cfg.lr_decay)
        return [opt], [sched]

    def on_save_checkpoint(self, checkpoint):
        checkpoint["sampler"] = self.sampler.state_dict()
        checkpoint["sgld_step_size"] = self.step_size

    def on_load_checkpoint(self, checkpoint):
        if "sampler" in checkpoint:
            self.sampler.load_state_dict(checkpoint["sampler"])
        self.step_size = checkpoint.get("sgld_step_size", self.step_size)


# -- Exercise 3.5 ---------------------------------------------------------------------------
def chain_steps(K: int) -> list[int]:
    """Steps shown in the chain figure: 0, 1, 2, 4, 8, ..., K."""
    steps, s = [0], 1
    while s < K:
        steps.append(s)
        s *= 2
    return steps + [K]


def run_generation(model: nn.Module, K: int = 256, n: int = 64, step_size: float = 1.0,
                   noise: float = 0.01, img_shape=(1, 56, 56), out_dir: str | Path | None = None,
                   y: torch.Tensor | None = None, seed: int = 0, init_std: float = 0.01,
                   grad_clip: float | None = None) -> dict:
    """Long-run SGLD from fresh noise (no replay buffer): ``K`` steps for ``n`` chains (``len(y)``
    chains of the given classes when labels ``y`` are given), every chain starting from
    ``N(0, init_std^2)``, with the sampler's step (``step_size``, ``noise``, ``grad_clip``).

    Saves ``samples.png`` (the finished samples) and ``generation_chain.png`` (a few chains at
    steps 0, 1, 2, 4, ..., K) into ``out_dir`` when given.
    Returns ``{"samples": (n, *img_shape) tensor, "chain": {step: tensor}, "paths": [...]}``.
    """
    keep = chain_steps(K)
    # BEGIN SOLUTION 3.5: a sampler that starts every chain from noise, K Langevin steps, keep the chain
    sampler = MCMCSampler(model, img_shape, n, max_len=1, reinit_frac=1.0, init_std=init_std,
                          grad_clip=grad_clip, seed=seed)
    x0, _ = sampler.sample_initial(n if y is None else len(y), y)
    samples, chain = sampler.langevin(x0, K, step_size, noise, y=y, keep_steps=keep)
    # END SOLUTION
    paths = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        paths.append(plots.image_grid(samples, out_dir / "samples.png",
                                      title=f"SGLD samples after K={K} steps"))
        paths.append(plots.chain_figure(chain, out_dir / "generation_chain.png", n_chains=6))
    return {"samples": samples, "chain": chain, "paths": paths}


# -- Exercise 3.6 ---------------------------------------------------------------------------
@torch.no_grad()
def energy_scores(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """``score(model, x)`` in batches on the model's device, as a numpy array ``(N,)``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [score(model, x[i:i + batch_size].to(device)).float().cpu()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy()


def run_ood_analysis(model: nn.Module, id_images: torch.Tensor, ood_sets: dict,
                     out_dir: str | Path | None = None) -> dict:
    """Energy-based OOD detection of every set in ``ood_sets`` against ``id_images``.

    Scores are energies ``E(x)`` (higher = more OOD). For each OOD set the AUROC of the binary
    task ID (label 0) vs OOD (label 1) is computed. Saves ``ood_hist.png`` (energy histograms)
    and ``roc.png`` (ROC curves) into ``out_dir`` when given.
    Returns ``{"auroc": {name: float}, "scores": {"id": array, name: array, ...}, "paths": [...]}``.
    """
    id_scores = energy_scores(model, id_images)
    scores, aurocs, curves = {"id": id_scores}, {}, {}
    for name, images in ood_sets.items():
        # BEGIN SOLUTION 3.6: score the OOD images, label ID 0 / OOD 1, compute the AUROC
        ood_scores = energy_scores(model, images)
        labels = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
        all_scores = np.concatenate([id_scores, ood_scores])
        aurocs[name] = float(roc_auc_score(labels, all_scores))
        # END SOLUTION
        scores[name] = ood_scores
        fpr, tpr, _ = roc_curve(labels, all_scores)
        curves[name] = (fpr, tpr, aurocs[name])
    paths = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        paths.append(plots.energy_histogram(scores, out_dir / "ood_hist.png"))
        paths.append(plots.roc_figure(curves, out_dir / "roc.png"))
    return {"auroc": aurocs, "scores": scores, "paths": paths}


def main(argv=None) -> int:
    """Command-line entry: ``python ex3_main.py --profile quick`` (see ``--help``)."""
    from glyph_ebm.runner import run_from_command_line

    return run_from_command_line(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
