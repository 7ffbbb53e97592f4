"""Replay buffers of past Langevin samples, in two schemes.

``persistent`` - the exercise's ``MCMCSampler`` (persistent contrastive divergence, IGEBM's 5 %
re-initialisation): a chain drawn from slot ``i`` is written back to slot ``i`` when it is
finished, so each slot is one long-running chain; fresh chains enter by reservoir sampling once
the buffer is full.

``reservoir`` - improved CD (Du et al. 2021, Algorithm 1 and Sec. 3.1): chains start from the
buffer, or from uniform noise ``U(-1, 1)`` with a small probability (the paper says both "99 %
from the buffer" in Algorithm 1 and "a resampling rate of 0.1 %" in the text: ``reinit_frac``);
every finished chain is *added* (``B <- B ∪ x``), the one it started from stays. Once the buffer
holds ``capacity`` images, the ``n``-th image offered replaces a uniformly chosen slot with
probability ``capacity / n`` (reservoir sampling), so the buffer is at every moment a uniform
random sample of all chains ever finished: old and new samples, i.e. chains of every length.

In both schemes, while the buffer is still filling its empty slots count as fresh noise (a chain
starts fresh with probability ``1 - len / capacity`` as well), and class labels are kept with the
images (``-1`` for unconditional chains) so that class-conditional chains continue their class.
Images are stored on the CPU as ``(N, C, H, W)`` tensors in [-1, 1].
"""
from __future__ import annotations

import torch

from glyph_ebm.errors import ConfigError

SCHEMES = ("persistent", "reservoir")
FRESH = ("gaussian", "uniform")


class ReplayBuffer:
    """A bounded buffer of chain states.

    Args:
        img_shape: ``(C, H, W)`` of one image.
        capacity: most images held.
        scheme: ``"persistent"`` or ``"reservoir"`` (see the module docs).
        reinit_frac: probability that a chain starts from fresh noise instead of the buffer.
        fresh: ``"gaussian"`` (``N(0, init_std^2)``, clamped; the exercise) or ``"uniform"``
            (``U(-1, 1)``; the papers); ``None`` = the scheme's own (gaussian / uniform).
        init_std: standard deviation of gaussian fresh chains.
        seed: seed of the buffer's own generator (draws, fresh noise, reservoir choices).
    """

    def __init__(self, img_shape, capacity: int, scheme: str = "persistent", reinit_frac: float = 0.05,
                 fresh: str | None = None, init_std: float = 1.0, seed: int = 0):
        if scheme not in SCHEMES:
            raise ConfigError(f"unknown buffer scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
        fresh = fresh or ("gaussian" if scheme == "persistent" else "uniform")
        if fresh not in FRESH:
            raise ConfigError(f"unknown fresh-chain initialisation {fresh!r}; choose one of {', '.join(FRESH)}")
        if int(capacity) < 1:
            raise ConfigError(f"buffer capacity must be at least 1, got {capacity}")
        if not 0.0 <= reinit_frac <= 1.0:
            raise ConfigError(f"reinit_frac must be in [0, 1], got {reinit_frac}")
        self.img_shape = tuple(img_shape)
        self.capacity = int(capacity)
        self.scheme, self.fresh_init = scheme, fresh
        self.reinit_frac, self.init_std = float(reinit_frac), float(init_std)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.buffer = torch.zeros((0, *self.img_shape))          # (N, C, H, W), N <= capacity
        self.labels = torch.zeros(0, dtype=torch.long)           # (N,), -1 = unconditional
        self.n_seen = 0                                          # images offered to the reservoir

    def __len__(self) -> int:
        return len(self.buffer)

    def noise(self, n: int) -> torch.Tensor:
        """``n`` fresh chain starts ``(n, C, H, W)`` in [-1, 1]."""
        g = self.generator
        if self.fresh_init == "uniform":
            return torch.rand((n, *self.img_shape), generator=g) * 2 - 1
        return (self.init_std * torch.randn((n, *self.img_shape), generator=g)).clamp(-1.0, 1.0)

    def draw(self, n: int, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Starting points of ``n`` chains: ``(x0 (n, C, H, W), slots (n,))`` on the CPU, ``slots[i]``
        the buffer slot chain ``i`` came from or ``-1`` for fresh noise. With labels ``y``
        (``(n,)``), buffer chains are drawn from images of the same class."""
        g = self.generator
        x0 = self.noise(n)
        slots = torch.full((n,), -1, dtype=torch.long)
        fill = len(self) / self.capacity
        from_buffer = (torch.rand(n, generator=g) >= self.reinit_frac) & (torch.rand(n, generator=g) < fill)
        if len(self) and bool(from_buffer.any()):
            if y is None:
                picks = torch.randint(len(self), (n,), generator=g)
                slots = torch.where(from_buffer, picks, slots)
            else:
                y = torch.as_tensor(y).detach().cpu().long()
                for c in y.unique():
                    candidates = torch.nonzero(self.labels == c).flatten()
                    wanted = torch.nonzero((y == c) & from_buffer).flatten()
                    if len(candidates) and len(wanted):
                        slots[wanted] = candidates[torch.randint(len(candidates), (len(wanted),), generator=g)]
            chosen = slots >= 0
            x0[chosen] = self.buffer[slots[chosen]]
        return x0, slots

    def push(self, x: torch.Tensor, slots: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Store finished chains ``x`` (``(n, C, H, W)``) that started from ``slots`` (see
        :meth:`draw`): written back to their slots (``persistent``) or all offered as new images
        (``reservoir``)."""
        x = x.detach().to("cpu", torch.float32).contiguous()
        slots = torch.as_tensor(slots).cpu().long()
        labels = torch.full((len(x),), -1, dtype=torch.long) if y is None else torch.as_tensor(y).detach().cpu().long()
        if self.scheme == "persistent":
            old = slots >= 0
            if bool(old.any()):
                self.buffer[slots[old]] = x[old]
                self.labels[slots[old]] = labels[old]
            new = torch.nonzero(~old).flatten()
        else:
            new = torch.arange(len(x))
        self._offer(x[new], labels[new])

    def _offer(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        room = max(0, self.capacity - len(self))
        self.buffer = torch.cat([self.buffer, x[:room]])
        self.labels = torch.cat([self.labels, labels[:room]])
        self.n_seen += min(room, len(x))
        rest = len(x) - min(room, len(x))
        if rest <= 0:
            return
        seen = self.n_seen + 1 + torch.arange(rest, dtype=torch.float64)     # n of each offered image
        j = (torch.rand(rest, generator=self.generator, dtype=torch.float64) * seen).long()
        self.n_seen += rest
        for i in torch.nonzero(j < self.capacity).flatten().tolist():    # in order: later ones win
            self.buffer[j[i]] = x[room + i]
            self.labels[j[i]] = labels[room + i]

    def sample(self, k: int) -> torch.Tensor:
        """``min(k, len)`` distinct buffer images at random (e.g. the past samples of the
        nearest-neighbour entropy), ``(k, C, H, W)``."""
        k = min(int(k), len(self))
        return self.buffer[torch.randperm(len(self), generator=self.generator)[:k]]

    # -- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"buffer": self.buffer.clone(), "labels": self.labels.clone(), "n_seen": self.n_seen,
                "generator": self.generator.get_state(), "scheme": self.scheme}

    def load_state_dict(self, state: dict) -> None:
        if state.get("scheme", self.scheme) != self.scheme:
            raise ConfigError(f"the saved buffer uses the {state['scheme']!r} scheme, this run {self.scheme!r}")
        self.buffer = state["buffer"].clone().float()
        self.labels = state["labels"].clone().long()
        self.n_seen = int(state["n_seen"])
        self.generator.set_state(state["generator"])
