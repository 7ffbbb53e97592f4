"""Distilling an energy model into much smaller students.

The student learns the teacher's energy directly: minimise the mean squared difference of
``f_student(x)`` and ``f_teacher(x)`` over training images, over samples from the teacher's
replay buffer (images the teacher itself generated, which cover the low-energy regions away
from the data), or both. The student is an energy model in its own right: it can be sampled
with SGLD and used for OOD scoring, at a fraction of the cost.

* :class:`StudentEnergy` - a small separable CNN with one output, ``f(x) = -E(x)``;
* :func:`student_family` - students of several widths (down to well under 1/100 of the
  quick-profile teacher's parameters);
* :func:`distill` - the training loop, returning the MSE history;
* :func:`transfer_augment` - mixup / noise / warp / cut-mix copies that widen the transfer set;
* :func:`transfer_set` - the fixed transfer set and the teacher's energies on it (asked once);
* :func:`replay_buffer` - the teacher's replay buffer from a run folder's checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from glyph_ebm.errors import CheckpointError, GlyphEBMError

SOURCES = ("train", "buffer", "both")


class StudentEnergy(nn.Module):
    """Small energy network built for few parameters: a 3x3 convolution (stride 2) to ``width``
    channels, then three depthwise-separable blocks (depthwise 3x3 with stride 2, pointwise 1x1)
    to ``2w``, ``3w`` and ``4w`` channels, SiLU throughout, adaptive average pooling to
    ``pool x pool`` and one linear output. ``forward(x) = f(x) = -E(x)`` of shape ``(B,)``; any
    input size works. Separable blocks spend the parameter budget on channels rather than on
    dense 3x3 kernels (width 8: 1,993 parameters, 1/50 of the quick teacher)."""

    def __init__(self, width: int = 8, pool: int = 2, in_channels: int = 1):
        super().__init__()
        self.width, self.pool_size = int(width), int(pool)
        w = self.width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, stride=2, padding=1), nn.SiLU()]
        for cin, cout in ((w, 2 * w), (2 * w, 3 * w), (3 * w, 4 * w)):
            layers += [nn.Conv2d(cin, cin, 3, stride=2, padding=1, groups=cin, bias=False),
                       nn.Conv2d(cin, cout, 1), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.out = nn.Linear(4 * w * pool * pool, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            raise ValueError("a distilled student models the unconditional energy only (y=None)")
        return self.out(self.pool(self.features(x)).flatten(1)).squeeze(1)


def student_family(widths=(1, 2, 4, 6, 8, 16), pool: int = 2) -> dict[str, StudentEnergy]:
    """``{"w<width>": student}`` for each width (parameters grow about with width squared)."""
    return {f"w{w}": StudentEnergy(width=w, pool=pool) for w in widths}


def transfer_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Widen the transfer set: each image ``(B, C, H, W)`` in [-1, 1] is kept, or replaced by a
    mixup with another image, a noisy copy, a small affine warp (rotation <= 17 degrees, scale
    0.75-1.25, shift <= 7 %), or a cut-mix (top of one image, bottom of another).

    The student then matches the teacher's energy *between* and *around* the data too, which is
    where OOD inputs fall. Flips and quarter turns are left out on purpose: they are how two of
    the OOD test sets are made, and the student must not see them.
    """
    g = generator
    n = len(x)
    kind = torch.randint(5, (n,), generator=g).view(n, 1, 1, 1)
    other = x[torch.randperm(n, generator=g)]
    lam = torch.rand(n, 1, 1, 1, generator=g)
    mixed = lam * x + (1 - lam) * other
    noisy = (x + 0.5 * torch.rand(n, 1, 1, 1, generator=g) * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    angle = (torch.rand(n, generator=g) - 0.5) * 0.6
    scale = 0.75 + 0.5 * torch.rand(n, generator=g)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, 0, 1] = -torch.sin(angle) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale
    theta[:, :, 2] = (torch.rand(n, 2, generator=g) - 0.5) * 0.15
    paper = x.flatten(1).max(1).values.view(n, 1, 1, 1)        # warp ink on paper, fill with paper
    warped = F.grid_sample(x - paper, F.affine_grid(theta, list(x.shape), align_corners=False),
                           align_corners=False) + paper
    cut = torch.randint(x.shape[2] // 4, 3 * x.shape[2] // 4, (n, 1, 1, 1), generator=g)
    rows = torch.arange(x.shape[2]).view(1, 1, -1, 1)
    cutmix = torch.where(rows < cut, x, other)
    out = x
    for k, candidate in enumerate((mixed, noisy, warped, cutmix), start=1):
        out = torch.where(kind == k, candidate, out)
    return out


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


def transfer_set(teacher: nn.Module, images: torch.Tensor, copies: int = 0,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed transfer set ``(x, f_teacher(x))``: ``images`` ``(N, C, H, W)`` followed by
    ``copies`` :func:`transfer_augment` copies of them, ``((1 + copies) N, C, H, W)`` and
    ``((1 + copies) N,)``. The teacher is asked once, so training steps only cost the student."""
    if copies < 0:
        raise GlyphEBMError(f"the number of augmented copies must be >= 0, got {copies}")
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([images] + [transfer_augment(images, g) for _ in range(int(copies))])
    return x, _targets(teacher, x)


def distill(student: nn.Module, teacher: nn.Module, train_images: torch.Tensor,
            buffer_images: torch.Tensor | None = None, source: str = "both", steps: int = 500,
            lr: float = 1e-2, batch_size: int = 128, seed: int = 0, log_every: int = 50,
            augment: int = 0, transfer: dict | None = None, loss_fn=F.mse_loss) -> dict:
    """Train ``student`` (in place) to match ``teacher``'s ``f(x)`` by MSE (or by
    ``loss_fn(f_student, f_teacher)``, both ``(B,)``, returning a scalar).

    ``source``: ``"train"`` images, the teacher's replay ``"buffer"``, or ``"both"`` (each batch
    half and half). ``augment``: add that many :func:`transfer_augment` copies of every source
    image to the transfer set (:func:`transfer_set`). ``transfer``: the transfer sets
    ``{"train": (x, f), "buffer": (x, f)}``, a cache that a family of students can share: the
    sets this call needs and does not find are computed here and added to it. The learning rate
    follows a cosine schedule.
    Returns ``{"step": [...], "mse": [...]}`` (the loss on the training batches).
    """
    if source not in SOURCES:
        raise GlyphEBMError(f"unknown distillation source {source!r}; choose one of {', '.join(SOURCES)}")
    if source != "train" and (buffer_images is None or len(buffer_images) == 0):
        raise GlyphEBMError(f"source {source!r} needs the teacher's replay buffer images")
    transfer = {} if transfer is None else transfer
    wanted = {"train": train_images, "buffer": buffer_images}
    names = ("train", "buffer") if source == "both" else (source,)
    pools = []
    for name in names:
        if name not in transfer:
            transfer[name] = transfer_set(teacher, wanted[name], copies=augment, seed=seed)
        pools.append(transfer[name])
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    history = {"step": [], "mse": []}
    student.train()
    per_pool = max(1, batch_size // len(pools))
    for step in range(1, steps + 1):
        xs, ts = [], []
        for images, targets in pools:
            idx = torch.randint(len(images), (per_pool,), generator=g)
            xs.append(images[idx])
            ts.append(targets[idx])
        loss = loss_fn(student(torch.cat(xs)), torch.cat(ts))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step == 1 or step % log_every == 0 or step == steps:
            history["step"].append(step)
            history["mse"].append(float(loss.detach()))
    student.eval()
    return history
