"""Distilling an energy model into much smaller students.

The student learns the teacher's energy directly: minimise the mean squared difference of
``f_student(x)`` and ``f_teacher(x)`` over training images, over samples from the teacher's
replay buffer (images the teacher itself generated, which cover the low-energy regions away
from the data), or both. The student is an energy model in its own right: it can be sampled
with SGLD and used for OOD scoring, at a fraction of the cost.

* :class:`StudentEnergy` - a three-layer CNN with one output, ``f(x) = -E(x)``;
* :func:`student_family` - students of several widths (down to well under 1/100 of the
  quick-profile teacher's parameters);
* :func:`distill` - the training loop, returning the MSE history;
* :func:`replay_buffer` - the teacher's replay buffer from a run folder's checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, GlyphEBMError

SOURCES = ("train", "buffer", "both")


class StudentEnergy(nn.Module):
    """Small energy network: conv(5x5, stride 2) -> conv(3x3, s2) -> conv(3x3, s2), SiLU,
    adaptive average pooling to ``pool x pool``, one linear output. ``forward(x) = f(x) = -E(x)``
    of shape ``(B,)``; any input size works."""

    def __init__(self, width: int = 4, pool: int = 2, in_channels: int = 1):
        super().__init__()
        self.width, self.pool_size = int(width), int(pool)
        w = self.width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 5, stride=2, padding=2), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.out = nn.Linear(2 * w * pool * pool, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            raise ValueError("a distilled student models the unconditional energy only (y=None)")
        return self.out(self.pool(self.features(x)).flatten(1)).squeeze(1)


def student_family(widths=(1, 2, 4, 8, 16), pool: int = 2) -> dict[str, StudentEnergy]:
    """``{"w<width>": student}`` for each width (parameters grow about with width squared)."""
    return {f"w{w}": StudentEnergy(width=w, pool=pool) for w in widths}


def replay_buffer(run_dir: str | os.PathLike) -> torch.Tensor:
    """The replay buffer ``(N, C, H, W)`` saved in ``run_dir/checkpoints/last.ckpt``."""
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: distillation from the replay buffer needs the "
                              "teacher's run folder")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    buffer = ckpt.get("sampler", {}).get("buffer")
    if buffer is None or len(buffer) == 0:
        raise CheckpointError(f"{path} holds no replay buffer")
    return buffer.float()


@torch.no_grad()
def _targets(teacher: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    teacher.eval()
    return torch.cat([teacher(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])


def distill(student: nn.Module, teacher: nn.Module, train_images: torch.Tensor,
            buffer_images: torch.Tensor | None = None, source: str = "both", steps: int = 500,
            lr: float = 3e-3, batch_size: int = 128, seed: int = 0, log_every: int = 50) -> dict:
    """Train ``student`` (in place) to match ``teacher``'s ``f(x)`` by MSE.

    ``source``: ``"train"`` images, the teacher's replay ``"buffer"``, or ``"both"`` (each batch
    half and half). Returns ``{"step": [...], "mse": [...]}`` (MSE on the training batches).
    """
    if source not in SOURCES:
        raise GlyphEBMError(f"unknown distillation source {source!r}; choose one of {', '.join(SOURCES)}")
    if source != "train" and (buffer_images is None or len(buffer_images) == 0):
        raise GlyphEBMError(f"source {source!r} needs the teacher's replay buffer images")
    pools = []
    if source in ("train", "both"):
        pools.append((train_images, _targets(teacher, train_images)))
    if source in ("buffer", "both"):
        pools.append((buffer_images, _targets(teacher, buffer_images)))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    history = {"step": [], "mse": []}
    student.train()
    per_pool = max(1, batch_size // len(pools))
    for step in range(1, steps + 1):
        xs, ts = [], []
        for images, targets in pools:
            idx = torch.randint(len(images), (per_pool,), generator=g)
            xs.append(images[idx])
            ts.append(targets[idx])
        loss = F.mse_loss(student(torch.cat(xs)), torch.cat(ts))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % log_every == 0 or step == steps:
            history["step"].append(step)
            history["mse"].append(float(loss.detach()))
    student.eval()
    return history
