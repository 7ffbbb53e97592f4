"""Figures of the course: sample grids, Langevin chains, energy histograms, ROC curves.

All functions take tensors/arrays, write one PNG (creating its folder) and return its path.
Images are ``(N, 1, H, W)`` tensors in [-1, 1] (the model's input range).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure   # no pyplot: no global backend change, works in notebooks too


def _as_images(x) -> np.ndarray:
    """(N, 1, H, W) tensor/array in [-1, 1] -> (N, H, W) float array in [0, 1]."""
    a = x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=float)
    if a.ndim == 4:
        a = a[:, 0]
    return np.clip((a + 1.0) / 2.0, 0.0, 1.0)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def tile(images, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """Tile ``(N, 1, H, W)`` images in [-1, 1] into one 2-D array in [0, 1]."""
    a = _as_images(images)
    n, h, w = a.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    out = np.ones((nrows * (h + pad) + pad, ncol * (w + pad) + pad))
    for i in range(n):
        r, c = divmod(i, ncol)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = a[i]
    return out


def image_grid(images, path, nrow: int = 8, title: str | None = None) -> Path:
    """A grid of images (e.g. finished SGLD samples)."""
    grid = tile(images, nrow=nrow)
    fig = Figure(figsize=(grid.shape[1] / 60, grid.shape[0] / 60 + (0.4 if title else 0)))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def chain_figure(chain: dict, path, n_chains: int = 6) -> Path:
    """Rows = chains, columns = SGLD steps (``chain``: ``{step: (N, 1, H, W)}``)."""
    steps = sorted(chain)
    n = min(n_chains, len(chain[steps[0]]))
    fig = Figure(figsize=(0.9 * len(steps), 0.95 * n))
    axes = fig.subplots(n, len(steps), squeeze=False)
    for j, s in enumerate(steps):
        imgs = _as_images(chain[s][:n])
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(imgs[i], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"k={s}", fontsize=8)
    fig.suptitle("Langevin chains from noise (step k)", fontsize=9)
    return _save(fig, path)


def energy_histogram(scores: dict, path, id_key: str = "id", bins: int = 60) -> Path:
    """Overlaid histograms of energies ``E(x)`` of the ID test set and each OOD set."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    all_vals = np.concatenate([np.asarray(v, dtype=float) for v in scores.values()])
    lo, hi = np.percentile(all_vals, [0.5, 99.5])
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins)
    for name, vals in scores.items():
        label = "ID test (glyphs)" if name == id_key else name
        ax.hist(np.clip(vals, lo, hi), bins=edges, alpha=0.45 if name != id_key else 0.8,
                density=True, label=label, histtype="stepfilled" if name == id_key else "bar")
    ax.set_xlabel("energy E(x) = -f(x)   (higher = less likely = more OOD)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title("Energy of in-distribution vs OOD images")
    return _save(fig, path)


def roc_figure(curves: dict, path) -> Path:
    """ROC curves, ``curves``: ``{name: (fpr, tpr, auroc)}``; OOD is the positive class."""
    fig = Figure(figsize=(4.8, 4.5))
    ax = fig.subplots()
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate (ID flagged as OOD)")
    ax.set_ylabel("true positive rate (OOD detected)")
    ax.set_title("OOD detection by energy")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
