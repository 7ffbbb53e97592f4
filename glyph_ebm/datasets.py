"""The container every data source returns: three labelled splits of 56x56 grey images.

Both the embedded glyph generator (:mod:`glyph_ebm.glyphs`) and the real-scan folder loader
(:mod:`glyph_ebm.imagefolder`) produce a :class:`Splits`, so the exercise code never needs to
know where the images came from.

Conventions
-----------
* images are ``uint8`` arrays of shape ``(N, H, W)``, 0 = black ink, 255 = white paper;
* labels are ``int64`` arrays of shape ``(N,)`` with values in ``[0, len(classes))``;
* :func:`to_tensor` turns images into ``float32`` tensors of shape ``(N, 1, H, W)`` in
  ``[-1, 1]`` (the range the sampler works in).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IMAGE_SIZE = 56
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass
class Splits:
    """Train/val/test images and labels plus the class names (index = label)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    source: str = "embedded"
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, *self.train_x.shape[1:])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(images, labels)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'train', 'val' or 'test'")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def sizes(self) -> dict[str, int]:
        return {s: int(len(self.split(s)[1])) for s in ("train", "val", "test")}


def to_tensor(images: np.ndarray):
    """uint8 ``(N, H, W)`` in [0, 255] -> float32 tensor ``(N, 1, H, W)`` in [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1)
    return x.div_(127.5).sub_(1.0)


def stratified_split(labels: np.ndarray, seed: int,
                     fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
                     totals: tuple[int, int, int] | None = None):
    """Seeded stratified split of indices into train/val/test.

    Each class is shuffled with ``np.random.default_rng(seed)`` and cut by ``fractions``;
    classes with very few images still get at least one training image. Returns three sorted
    index arrays.

    ``totals`` (optional) asks for exact split sizes ``(n_train, n_val, n_test)`` summing to
    ``len(labels)``: the per-class val/test shares are then allocated by largest remainder, so
    every class is still split as close to the overall proportions as the totals allow. The
    shuffling is the same as without ``totals``; only where each class is cut changes.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    quotas = None
    if totals is not None:
        quotas = _exact_quotas(np.array([np.count_nonzero(labels == c) for c in classes]),
                               totals)
    parts: list[list[np.ndarray]] = [[], [], []]
    for k, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = len(idx)
        if quotas is not None:
            n_train, n_val, n_test = (int(q) for q in quotas[k])
        else:
            n_val = int(round(n * fractions[1]))
            n_test = int(round(n * fractions[2]))
            n_train = max(1, n - n_val - n_test)
            n_val = min(n_val, n - n_train)
            n_test = n - n_train - n_val
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train:n_train + n_val])
        parts[2].append(idx[n_train + n_val:n_train + n_val + n_test])
    return tuple(np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts)


def _exact_quotas(counts: np.ndarray, totals: tuple[int, int, int]) -> np.ndarray:
    """Per-class ``(train, val, test)`` sizes that add up to ``totals`` exactly.

    Val and test get ``floor(n_c * total / N)`` per class, and the few images left over go to
    the classes with the largest fractional remainders (ties: lower class first), never taking
    a class's last training image. Returns an int array of shape ``(len(counts), 3)``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    big_n = int(counts.sum())
    if len(totals) != 3 or min(totals) < 0 or sum(int(t) for t in totals) != big_n:
        raise ValueError(f"split totals {tuple(totals)} must be three non-negative numbers "
                         f"adding up to the {big_n} labels")
    quotas = np.zeros((len(counts), 3), dtype=np.int64)
    for j in (1, 2):
        ideal = counts * (int(totals[j]) / big_n) if big_n else counts * 0.0
        base = np.floor(ideal).astype(np.int64)
        # never take a class's last training image
        base = np.minimum(base, np.maximum(counts - 1 - quotas[:, 1:].sum(axis=1), 0))
        quotas[:, j] = base
        missing = int(totals[j]) - int(base.sum())
        order = np.argsort(-(ideal - base), kind="stable")
        while missing > 0:
            progressed = False
            for k in order:
                if missing == 0:
                    break
                if counts[k] - quotas[k, 1:].sum() >= 2:
                    quotas[k, j] += 1
                    missing -= 1
                    progressed = True
            if not progressed:
                raise ValueError(f"cannot split {big_n} labels into exactly {tuple(totals)} "
                                 "while keeping a training image in every class")
    quotas[:, 0] = counts - quotas[:, 1:].sum(axis=1)
    return quotas


def class_prior_labels(labels: np.ndarray, n: int, num_classes: int | None = None, seed: int = 0) -> np.ndarray:
    """``n`` labels ``(n,)`` int64 drawn at random (seeded) with the class frequencies of ``labels``.

    This is ``y ~ p(y)``, the data's class prior: the first half of ancestral sampling
    ``y ~ p(y), x ~ q(x | y)`` from a class-conditional model, whose samples then have the
    letters in the proportions of the data (frequent letters often, rare ones seldom)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes or 0)
    if counts.sum() == 0:
        raise ValueError("class_prior_labels needs at least one label")
    rng = np.random.default_rng(seed)
    return rng.choice(len(counts), size=int(n), p=counts / counts.sum()).astype(np.int64)


def spread_subset(n_total: int, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_total`` images drawn at random (all of them when ``n`` is
    ``None`` or not smaller). The splits are ordered by class, so a plain ``x[:n]`` would hold
    the first few letters only."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])
