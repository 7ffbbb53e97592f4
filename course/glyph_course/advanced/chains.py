"""Where Langevin chains start, for training and for comparing the three classic choices.

The lecture's three implementations of the synthesis step:

* ``persistent`` - continue past chains: start from the replay buffer (:mod:`.buffer`),
  optionally augmented (improved CD's data-augmentation transitions);
* ``data``       - contrastive divergence proper: ``k`` steps starting at training images;
* ``noise``      - non-persistent short-run MCMC: ``k`` steps from fresh noise every time.

:class:`ChainSampler` starts and finishes the negative chains of a training step in any of the
three modes (finished chains always go to the replay buffer, which also provides the past
samples of the entropy term). :func:`compare_chain_inits` runs the three from one trained model
and judges the results with the glyph classifier (IS/FID), the energy and the distance moved.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from glyph_ebm.errors import ConfigError, GlyphEBMError
from .augment import GlyphAugment
from .buffer import ReplayBuffer
from .langevin import langevin

INITS = ("persistent", "data", "noise")


class ChainSampler:
    """Starting points and bookkeeping of the training chains.

    Args:
        replay: the replay buffer (its scheme decides how finished chains are stored).
        init: ``"persistent"``, ``"data"`` or ``"noise"``.
        augment: augment chains that start from the buffer or from data (None = off).
        channels_last: return starting points in channels-last memory format (faster CPU convs).
    """

    def __init__(self, replay: ReplayBuffer, init: str = "persistent", augment: GlyphAugment | None = None,
                 channels_last: bool = False):
        if init not in INITS:
            raise ConfigError(f"unknown chain initialisation {init!r}; choose one of {', '.join(INITS)}")
        self.replay, self.init, self.augment, self.channels_last = replay, init, augment, channels_last

    @property
    def buffer(self) -> torch.Tensor:
        """The replay buffer's images ``(N, C, H, W)`` (settable, e.g. by the divergence guard)."""
        return self.replay.buffer

    @buffer.setter
    def buffer(self, images: torch.Tensor) -> None:
        self.replay.buffer = images

    def start(self, n: int, y: torch.Tensor | None = None,
              data: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0, slots)``: ``n`` starting images ``(n, C, H, W)`` (CPU) and their buffer slots
        (``-1`` = not from the buffer). ``data`` (``(n, C, H, W)``, aligned with ``y``) is needed
        in ``data`` mode."""
        slots = torch.full((n,), -1, dtype=torch.long)
        if self.init == "persistent":
            x0, slots = self.replay.draw(n, y)
            if self.augment is not None and bool((slots >= 0).any()):
                old = slots >= 0
                x0[old] = self.augment(x0[old])
        elif self.init == "data":
            if data is None or len(data) != n:
                raise GlyphEBMError(f"chains that start at data need {n} data images, got "
                                    f"{None if data is None else len(data)}")
            x0 = data.detach().cpu().float().clone()
            if self.augment is not None:
                x0 = self.augment(x0)
        else:
            x0 = self.replay.noise(n)
        if self.channels_last and x0.dim() == 4:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        return x0, slots

    def finish(self, x: torch.Tensor, slots: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Hand the finished chains to the replay buffer."""
        self.replay.push(x, slots, y)

    def state_dict(self) -> dict:
        state = {"replay": self.replay.state_dict()}
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.replay.load_state_dict(state["replay"])
        if self.augment is not None and "augment" in state:
            self.augment.load_state_dict(state["augment"])


@torch.no_grad()
def _energy(model: nn.Module, x: torch.Tensor) -> float:
    return float((-model(x)).mean())


def compare_chain_inits(model: nn.Module, data: torch.Tensor, steps: int, step_size: float, noise: float,
                        buffer: torch.Tensor | None = None, judge: nn.Module | None = None,
                        reference: torch.Tensor | None = None, n: int = 128, grad_clip: float | None = None,
                        fresh: str = "uniform", seed: int = 0) -> dict[str, dict]:
    """Run ``steps`` SGLD steps from each kind of start and describe the results.

    Args:
        model: ``forward(x) = f(x) = -E(x)`` (unconditional).
        data: images to start CD chains from (e.g. test images), ``(N, 1, H, W)``.
        buffer: a trained run's replay buffer for the persistent start (skipped when None).
        judge, reference: glyph classifier and real images for IS/FID (skipped when None).
        fresh: ``"uniform"`` or ``"gaussian"`` (std 1, clamped) noise for the short-run start.

    Returns ``{mode: {"energy_start", "energy_end", "moved" (mean L2 distance per image),
    "is", "fid"}}`` for the modes ``persistent`` (if a buffer is given), ``data`` and ``noise``.
    """
    from .. import metrics

    g = torch.Generator().manual_seed(seed)
    starts = {}
    if buffer is not None and len(buffer):
        starts["persistent"] = buffer[torch.randint(len(buffer), (n,), generator=g)]
    starts["data"] = data[torch.randint(len(data), (n,), generator=g)]
    shape = (n, *data.shape[1:])
    starts["noise"] = (torch.rand(shape, generator=g) * 2 - 1 if fresh == "uniform"
                       else torch.randn(shape, generator=g).clamp(-1, 1))
    device = next(model.parameters()).device
    out = {}
    for mode, x0 in starts.items():
        x0 = x0.to(device)
        x = langevin(model, x0, steps, step_size, noise, grad_clip=grad_clip, generator=g)
        row = {"energy_start": _energy(model, x0), "energy_end": _energy(model, x),
               "moved": float((x - x0).flatten(1).norm(dim=1).mean())}
        if judge is not None and reference is not None:
            row.update(metrics.sample_quality(judge, x.cpu(), reference))
        out[mode] = row
    return out
