"""Out-of-distribution (OOD) test sets for judging an energy model.

An energy-based model should give *low* energy to images like its training data and *high*
energy to anything else. :func:`make_ood_sets` builds several kinds of "anything else" from the
in-distribution (ID) test images, ranging from obviously foreign (pure noise) to subtle (the
same glyphs, just upside-down):

==========  ====================================================================================
name        what it is
==========  ====================================================================================
noise       Gaussian noise, mean 127.5, std 64, clipped to [0, 255]
uniform     uniform noise, every pixel uniform in [0, 255]
rotated     ID glyphs rotated by 90 degrees (``np.rot90``; clockwise or anticlockwise at random)
flipped     ID glyphs flipped upside-down (vertical flip, ``img[::-1, :]``)
small       ID glyphs shrunk (antialiased bilinear) by 0.35-0.55, centred on their paper colour
digits      scikit-learn's bundled 8x8 handwritten digits, upscaled, dark ink on white paper
blank       crops of blank paper (no ink), printed and scanned like the glyphs
blots       ink blots and stains on paper, no letter
between     crops cut between two letters: the right part of one, the left part of the next
degraded    glyphs of worn, broken type with too little ink, scanned out of focus
symbols     marks of the same types that are not letters of the set: signs, punctuation,
            ligatures (``& ? § ¶ ( ) ſ ﬁ ﬀ æ`` ...)
==========  ====================================================================================

The last five are what a course with real scans meets when a page is cut into glyph crops.
They are drawn by the glyph generator itself (:data:`glyph_ebm.glyphs.OOD_STYLES`: the same
fonts, press and scanner), so only the content differs from the glyphs; at most
:data:`RENDERED_MAX` images each, cached next to the glyph set.

Every set is a ``uint8`` array ``(n, H, W)`` in the package convention (0 = ink, 255 = paper),
so it goes through exactly the same :func:`glyph_ebm.datasets.to_tensor` as the test data.

Notes
-----
* Each set has its own random stream derived from ``seed`` and the set's name, so a set is
  identical whether or not the other sets are requested.
* ``rotated``/``flipped``/``small`` are built from a subset of the ID images: all of them, in
  order, when ``n == len(id_images)``; a sorted random subset when ``n`` is smaller; a random
  sample with replacement when ``n`` is larger.
* Glyphs that are symmetric under the transform (``flipped`` 'H', 'o', 'x'; ``rotated`` 'o')
  are unchanged by it -- those OOD images are really in-distribution, which makes these two
  sets harder, and is part of the lesson.
* ``digits`` uses :func:`sklearn.datasets.load_digits`, which ships with scikit-learn (no
  download). Its 8x8 images (values 0-16, 16 = ink) are mapped to grey ``255 * (1 - v/16)``,
  upscaled with bicubic interpolation into the central 75% of the frame (a margin like a glyph
  crop) on white paper, and sampled with replacement.
"""
from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from .errors import ConfigError

OOD_SETS: tuple[str, ...] = ("noise", "uniform", "rotated", "flipped", "small", "digits",
                             "blank", "blots", "between", "degraded", "symbols")
#: the sets drawn by the glyph generator (at most RENDERED_MAX images each, cached)
RENDERED: tuple[str, ...] = ("blank", "blots", "between", "degraded", "symbols")
RENDERED_MAX = 1000

_DESCRIPTIONS = {
    "noise": "Gaussian noise (mean 127.5, std 64)",
    "uniform": "uniform noise in [0, 255]",
    "rotated": "test glyphs rotated by 90 degrees",
    "flipped": "test glyphs flipped upside-down",
    "small": "test glyphs shrunk to 35-55% of their size",
    "digits": "handwritten digits (scikit-learn), dark on light",
    "blank": "blank paper",
    "blots": "ink blots and stains",
    "between": "crops between two letters",
    "degraded": "worn, broken, blurred glyphs",
    "symbols": "signs, punctuation, ligatures",
}

NOISE_MEAN = 127.5
NOISE_STD = 64.0
SMALL_RANGE = (0.35, 0.55)
DIGIT_FILL = 0.75  # fraction of the frame side the upscaled digit occupies


def _check_name(name: str) -> str:
    if name not in _DESCRIPTIONS:
        raise ConfigError(f"unknown OOD set {name!r}; choose from {', '.join(OOD_SETS)}")
    return name


def describe(name: str) -> str:
    """One-line human description of OOD set ``name`` (for plot legends and tables)."""
    return _DESCRIPTIONS[_check_name(name)]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("ascii"))])


def _pick(n_id: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if n_id == 0:
        raise ValueError("cannot build rotated/flipped/small OOD sets from zero ID images")
    if n <= n_id:
        return np.sort(rng.permutation(n_id)[:n])
    return np.sort(rng.integers(0, n_id, size=n))


def _border_median(img: np.ndarray) -> int:
    rim = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    return int(np.median(rim))


def _rotated(src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ks = rng.choice(np.array([1, 3]), size=len(src))
    out = np.empty_like(src)
    for k in (1, 3):
        m = ks == k
        out[m] = np.rot90(src[m], k=k, axes=(1, 2))
    return out


def _small(src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    n, h, w = src.shape
    factors = rng.uniform(*SMALL_RANGE, size=n)
    out = np.empty_like(src)
    for i in range(n):
        f = factors[i]
        sh, sw = max(1, int(round(h * f))), max(1, int(round(w * f)))
        im = Image.fromarray(src[i], mode="L").resize((sw, sh), Image.Resampling.BILINEAR)
        out[i] = _border_median(src[i])
        top, left = (h - sh) // 2, (w - sw) // 2
        out[i, top:top + sh, left:left + sw] = np.asarray(im)
    return out


@lru_cache(maxsize=4)
def _digit_bank(h: int, w: int) -> np.ndarray:
    """All 1797 sklearn digits as uint8 (h, w) dark-on-light images (cached)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32)  # (1797, 8, 8), 0..16, 16 = ink
    grey = 255.0 * (1.0 - np.clip(digits / 16.0, 0.0, 1.0))
    ih, iw = max(1, int(round(h * DIGIT_FILL))), max(1, int(round(w * DIGIT_FILL)))
    top, left = (h - ih) // 2, (w - iw) // 2
    bank = np.full((len(grey), h, w), 255, dtype=np.uint8)
    for i, g in enumerate(grey):
        up = Image.fromarray(g, mode="F").resize((iw, ih), Image.Resampling.BICUBIC)
        bank[i, top:top + ih, left:left + iw] = np.clip(np.rint(np.asarray(up)), 0, 255)
    bank.setflags(write=False)
    return bank


def source_indices(name: str, n_id: int, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Which ID images (indices into the ``n_id`` images given to :func:`make_ood_sets`) the
    ``rotated``, ``flipped`` or ``small`` set of that call was made from, in order."""
    if name not in ("rotated", "flipped", "small"):
        raise ConfigError(f"the {name!r} set is not made from ID images")
    return _pick(n_id, n_id if n is None else int(n), _rng(seed, name))


def rendered_set(kind: str, n: int, size: int, seed: int = 0, progress: bool = False) -> np.ndarray:
    """``n`` crops of ``kind`` (one of :data:`RENDERED`), uint8 ``(n, size, size)``, from the glyph
    generator; cached in the glyph cache folder (the first call renders them)."""
    from .files import atomic_write
    from .glyphs import GENERATOR_VERSION, _cache_dir, render_many

    from .glyphs import OOD_STYLES, SYMBOLS

    style = zlib.crc32(repr((OOD_STYLES[kind], SYMBOLS if kind == "symbols" else "")).encode("utf-8"))
    path = _cache_dir() / f"ood-v{GENERATOR_VERSION}-{kind}-{style:08x}-seed{seed}-n{n}-{size}px.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                images = data["images"]
            if images.shape == (n, size, size):
                return images
        except (OSError, ValueError, KeyError):
            pass                                   # a broken cache file is rebuilt
    images = render_many(np.zeros(n, dtype=np.int64), seed, progress=progress, size=size, style=kind)
    with atomic_write(path, binary=True) as fh:
        np.savez_compressed(fh, images=images)
    return images


def make_ood_sets(id_images: np.ndarray, n: int | None = None, seed: int = 0,
                  names=OOD_SETS) -> dict[str, np.ndarray]:
    """Build OOD image sets matching ``id_images`` (uint8 ``(N, H, W)``, ink dark, paper light).

    Returns ``{name: uint8 array (n, H, W)}`` in the order of ``names`` (the rendered sets hold
    at most :data:`RENDERED_MAX` images); ``n`` defaults to ``len(id_images)``. Deterministic for
    a given ``seed``.
    """
    x = np.asarray(id_images)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ValueError(f"id_images must be a uint8 array of shape (N, H, W); got "
                         f"{x.dtype} {x.shape}")
    if isinstance(names, str):
        names = (names,)
    names = tuple(_check_name(nm) for nm in names)
    _, h, w = x.shape
    n = len(x) if n is None else int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")

    out: dict[str, np.ndarray] = {}
    for name in names:
        rng = _rng(seed, name)
        if name == "noise":
            a = rng.normal(NOISE_MEAN, NOISE_STD, size=(n, h, w))
            out[name] = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        elif name == "uniform":
            out[name] = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
        elif name == "digits":
            bank = _digit_bank(h, w)
            out[name] = bank[rng.integers(0, len(bank), size=n)]
        elif name in RENDERED:
            if h != w:
                raise ValueError(f"the {name} OOD set needs square images; got {h}x{w}")
            out[name] = rendered_set(name, min(n, RENDERED_MAX), h, seed)
        else:
            src = x[_pick(len(x), n, rng)] if n else x[:0]
            if name == "rotated":
                if h != w:
                    raise ValueError(f"rotated OOD set needs square images; got {h}x{w}")
                out[name] = _rotated(src, rng)
            elif name == "flipped":
                out[name] = np.ascontiguousarray(src[:, ::-1, :])
            else:  # small
                out[name] = _small(src, rng)
    return out
