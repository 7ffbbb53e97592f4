"""Deterministic generator of letterpress-like glyph images: the embedded default dataset.

The real course data (scans of single glyphs cut out of an early letterpress printing) cannot
be shipped, so this module makes a look-alike: 42 letter classes rendered with digital
revivals of 15th-century types (vendored in ``glyph_ebm/fonts``) and degraded the way old
prints and their scans are: ink spread and starved strokes, broken type, blotches, uneven
inking, paper texture and stains, show-through from the back of the leaf, blur, slight
warping and bits of the neighbouring letters at the crop borders.

Everything is a pure function of ``(seed, index)``: image ``i`` of a set is drawn with
``np.random.default_rng([seed, i])``, so the output is identical whatever the number of
worker processes or the order they run in. The per-class counts are a fixed table (not
seeded), and the full set has exactly 16,171 images split 11,319 / 2,426 / 2,426, the sizes
of the real corpus.

Public API
----------
``CLASSES``, ``CLASS_DIRNAMES``, ``GENERATOR_VERSION``, :func:`render_glyph`,
:func:`generate` (no cache), :func:`load_glyphs` (cached), :func:`cache_path`,
:func:`write_image_folder`, :func:`contact_sheet`; plus the helpers :func:`class_counts` and
:func:`split_sizes`.

``python -m glyph_ebm.glyphs --out docs/glyphs.png [--small] [--seed N]`` writes a contact
sheet of the set.

Environment: ``GLYPH_EBM_CACHE`` sets the cache folder (default ``~/.cache/glyph-ebm``);
``GLYPH_EBM_FONT_DIR`` points at another font folder (used by the tests to exercise the
DejaVu fallback).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .datasets import IMAGE_SIZE, SPLIT_FRACTIONS, Splits, stratified_split
from .errors import ConfigError, DataError, run_command
from .files import atomic_write

#: Bump whenever the generated pixels, counts or splits change (it keys the cache file).
GENERATOR_VERSION = "2"   # tests/test_glyphs.py pins a fingerprint of the pixels

_LOWERCASE = "abcdefghijklmnopqrstuvwxyz"
#: The capitals kept as classes: the ones frequent in early Latin print (no J K O Q U V W X Y Z).
_CAPITALS = "ABCDEFGHILMNPRST"

#: The 42 class names, index = label: a-z, then the 16 capitals.
CLASSES: list[str] = list(_LOWERCASE) + list(_CAPITALS)
#: Folder names for the classes, safe on case-insensitive file systems ("A" -> "A_upper").
CLASS_DIRNAMES: list[str] = [c if c.islower() else f"{c}_upper" for c in CLASSES]

FULL_SIZE = 16_171
SMALL_PER_CLASS = 50
MIN_PER_CLASS = 100

#: Relative frequency of each class (roughly per mille of letters in 15th-century Latin
#: print; capitals scaled for sentence and name initials). Fixed: it does not depend on the
#: seed. Counts are ``MIN_PER_CLASS`` plus a share of the rest proportional to these weights.
CLASS_WEIGHTS: dict[str, float] = {
    "a": 78, "b": 16, "c": 38, "d": 28, "e": 112, "f": 9, "g": 12, "h": 8, "i": 104,
    "j": 2, "k": 1, "l": 32, "m": 52, "n": 64, "o": 54, "p": 30, "q": 16, "r": 66,
    "s": 72, "t": 78, "u": 74, "v": 12, "w": 1, "x": 6, "y": 2, "z": 1,
    "A": 4, "B": 1.5, "C": 3, "D": 3, "E": 3, "F": 1.5, "G": 1.5, "H": 1.5, "I": 4,
    "L": 2, "M": 2.5, "N": 2.5, "P": 3, "R": 2, "S": 3, "T": 3,
}

_CACHE_ENV = "GLYPH_EBM_CACHE"
_FONT_DIR = pathlib.Path(__file__).resolve().parent / "fonts"

#: Vendored fonts: (file in glyph_ebm/fonts, display name, sampling weight). The 15th-century
#: revivals carry ~89 % of the weight; EB Garamond and Cardo add early-modern romans.
_FONT_SPECS: tuple[tuple[str, str, float], ...] = (
    ("FustSchoeffer-Durandus-GoticoAntiqua118G.otf",
     "Fust & Schoeffer Durandus Gotico-Antiqua 118G", 3.0),
    ("SweynheimPannartz-Subiaco-ProtoRoman120R.otf",
     "Sweynheim & Pannartz Subiaco Proto-Roman 120R", 2.0),
    ("Spira-ProtoRoman110R.otf", "Spira Proto-Roman 110R", 2.0),
    ("Rot-ProtoRoman102R.otf", "Rot Proto-Roman 102R", 1.5),
    ("Rusch-R-Bizarre-ProtoRoman103R.otf", "Rusch R-Bizarre Proto-Roman 103R", 1.5),
    ("Rusch-GoticoAntiqua100G.otf", "Rusch Gotico-Antiqua 100G", 1.5),
    ("SouffletVert-Hybrid106R.otf", "Soufflet Vert Hybrid 106R", 1.5),
    ("Parix-Hybrid111R.otf", "Parix Hybrid 111R", 1.5),
    ("Zainer-GoticoAntiqua96G.otf", "Zainer Gotico-Antiqua 96G", 1.5),
    ("EBGaramond12-Regular.otf", "EB Garamond 12 Regular", 1.0),
    ("Cardo104s.ttf", "Cardo Regular", 1.0),
)
#: Used only when glyph_ebm/fonts is missing (e.g. a stripped install); from matplotlib.
_FALLBACK_SPECS: tuple[tuple[str, str, float], ...] = (
    ("DejaVuSerif.ttf", "DejaVu Serif", 2.0),
    ("DejaVuSerif-Bold.ttf", "DejaVu Serif Bold", 1.0),
    ("DejaVuSans.ttf", "DejaVu Sans", 1.0),
)

_REF_FONT_SIZE = 160      # px size the glyph bitmaps are rasterised at before scaling
_CHUNK = 128              # images per task handed to a worker process


# ----------------------------------------------------------------------------------------
# counts and splits
# ----------------------------------------------------------------------------------------
def class_counts(small: bool = False) -> np.ndarray:
    """Images per class (index = label) of the full set (16,171) or the small set (50 each).

    Fixed, seed-independent: ``MIN_PER_CLASS`` each plus the remaining images shared out in
    proportion to :data:`CLASS_WEIGHTS` by the largest-remainder method.
    """
    if small:
        return np.full(len(CLASSES), SMALL_PER_CLASS, dtype=np.int64)
    w = np.array([CLASS_WEIGHTS[c] for c in CLASSES], dtype=np.float64)
    pool = FULL_SIZE - MIN_PER_CLASS * len(CLASSES)
    ideal = pool * w / w.sum()
    extra = np.floor(ideal).astype(np.int64)
    left = pool - int(extra.sum())
    extra[np.argsort(-(ideal - extra), kind="stable")[:left]] += 1
    return MIN_PER_CLASS + extra


def split_sizes(n: int) -> tuple[int, int, int]:
    """Exact ``(train, val, test)`` sizes for ``n`` images: val = test = round(15 % of n)."""
    n_val = int(round(n * SPLIT_FRACTIONS[1]))
    n_test = int(round(n * SPLIT_FRACTIONS[2]))
    return n - n_val - n_test, n_val, n_test


# ----------------------------------------------------------------------------------------
# fonts
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _font_table(font_dir: str | None = None) -> tuple[tuple[tuple[str, str, float], ...], bool]:
    """((path, name, weight), ...) of the fonts to use, and whether they are the fallback."""
    directory = pathlib.Path(font_dir) if font_dir else _FONT_DIR
    found = [(str(directory / f), name, w) for f, name, w in _FONT_SPECS
             if (directory / f).is_file()]
    if found:
        return tuple(found), False
    import matplotlib

    mpl_dir = pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fallback = [(str(mpl_dir / f), name, w) for f, name, w in _FALLBACK_SPECS
                if (mpl_dir / f).is_file()]
    if not fallback:
        raise DataError(f"no glyph fonts found in {directory} nor in matplotlib's {mpl_dir}; "
                        "reinstall glyph-ebm")
    warnings.warn(f"glyph fonts not found in {directory}; falling back to matplotlib's DejaVu "
                  "fonts, so the images will look modern and differ from the documented set",
                  RuntimeWarning, stacklevel=3)
    return tuple(fallback), True


def _fonts() -> tuple[tuple[tuple[str, str, float], ...], bool]:
    return _font_table(os.environ.get("GLYPH_EBM_FONT_DIR") or None)


@lru_cache(maxsize=None)
def _glyph(font_path: str, letter: str) -> tuple[np.ndarray, int, int]:
    """Ink bitmap of ``letter`` (float32 in [0, 1], tight crop) and its top-left offset
    relative to the pen position on the baseline, at ``_REF_FONT_SIZE``."""
    font = ImageFont.truetype(font_path, _REF_FONT_SIZE)
    side = 4 * _REF_FONT_SIZE
    origin = (side // 4, side // 2)
    im = Image.new("L", (side, side), 0)
    ImageDraw.Draw(im).text(origin, letter, font=font, fill=255, anchor="ls")
    box = im.getbbox()
    if box is None:
        raise DataError(f"font {pathlib.Path(font_path).name} has no glyph for {letter!r}")
    arr = np.asarray(im.crop(box), dtype=np.float32) / 255.0
    return arr, box[0] - origin[0], box[1] - origin[1]


@lru_cache(maxsize=None)
def _x_height(font_path: str) -> float:
    # median ink height of letters without ascenders/descenders ('x' and 'z' descend in
    # some gothic types, so no single letter will do)
    return float(np.median([_glyph(font_path, c)[0].shape[0] for c in "acemnorsuv"]))


# ----------------------------------------------------------------------------------------
# small numpy image helpers
# ----------------------------------------------------------------------------------------
def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge replication (float32)."""
    if sigma < 0.15:
        return a
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    h, w = a.shape
    p = np.pad(a, r, mode="edge")
    out = np.zeros((h + 2 * r, w), np.float32)
    for i, kv in enumerate(k):
        out += kv * p[:, i:i + w]
    res = np.zeros((h, w), np.float32)
    for i, kv in enumerate(k):
        res += kv * out[i:i + h]
    return res


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise whose features are ~size/cells pixels wide."""
    ch = max(2, int(round(cells)))
    cw = max(2, int(round(cells * w / h)))
    small = rng.standard_normal((ch + 2, cw + 2)).astype(np.float32)
    big = Image.fromarray(small, "F").resize((w + 2 * w // cw, h + 2 * h // ch), Image.BICUBIC)
    arr = np.asarray(big, dtype=np.float32)
    oy, ox = h // ch, w // cw
    arr = arr[oy:oy + h, ox:ox + w]
    return (arr - arr.mean()) / (arr.std() + 1e-6)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(
        (max(1, w), max(1, h)), Image.BILINEAR), dtype=np.float32)


def _paste_max(canvas: np.ndarray, g: np.ndarray, x: int, y: int) -> None:
    """canvas[y:, x:] = max(canvas, g), clipped to the canvas."""
    h, w = g.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, canvas.shape[0]), min(x + w, canvas.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    region = canvas[y0:y1, x0:x1]
    np.maximum(region, g[y0 - y:y1 - y, x0 - x:x1 - x], out=region)


def _warp(a: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Bilinear resampling of ``a`` at (y + dy, x + dx), edges clamped."""
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sy = np.clip(yy + dy, 0, h - 1.001)
    sx = np.clip(xx + dx, 0, w - 1.001)
    y0 = sy.astype(np.int32)
    x0 = sx.astype(np.int32)
    fy = sy - y0
    fx = sx - x0
    top = a[y0, x0] * (1 - fx) + a[y0, x0 + 1] * fx
    bot = a[y0 + 1, x0] * (1 - fx) + a[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def _disc(h: int, w: int, cy: float, cx: float, r: float, soft: float = 1.0) -> np.ndarray:
    yy, xx = np.ogrid[0:h, 0:w]
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2, dtype=np.float32)
    return np.clip((r - d) / soft + 0.5, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------
# rendering one glyph
# ----------------------------------------------------------------------------------------
_NEIGHBOUR_LETTERS = _LOWERCASE
_NEIGHBOUR_P = np.array([CLASS_WEIGHTS[c] for c in _LOWERCASE], dtype=np.float64)
_NEIGHBOUR_P /= _NEIGHBOUR_P.sum()
_DESCENDERS = "pqgy"
_ASCENDERS = "bdhklt"


def _check_letter(letter: str) -> None:
    if letter not in CLASSES:
        raise ConfigError(f"unknown glyph class {letter!r}; expected one of {''.join(CLASSES)}")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


#: Out-of-distribution crops made by the same press and scanner (see :mod:`glyph_ebm.ood`):
#: ``blank`` paper, ink ``blots`` and stains on paper, crops ``between`` two letters (each half
#: cut off), ``degraded`` glyphs (worn, broken type; a blurred scan) and ``symbols`` that are not
#: letters of the set (punctuation, signs and ligatures of the same types).
OOD_STYLES: dict[str, dict] = {
    "blank": {"content": "none"},
    "blots": {"content": "none", "blots": (2, 6), "stain_p": 0.6},
    "between": {"content": "pair"},
    "degraded": {"starved": (0.62, 0.74), "breaks": (5, 12), "blur": 2.5},
    "symbols": {"content": "symbol"},
}
#: Marks the symbols are drawn from (each font contributes those it has): signs, punctuation
#: big enough to see, and ligatures and letter forms that are not classes of the set.
SYMBOLS = "&?§¶()[]*!%#+/†‡¿¡ſﬁﬂﬀﬆæœß"


def _style_code(style: str) -> int:
    return 1 + sorted(OOD_STYLES).index(style)


@lru_cache(maxsize=None)
def _symbols(font_path: str) -> str:
    """The marks of :data:`SYMBOLS` that ``font_path`` really has (not its "missing glyph" box)."""
    font = ImageFont.truetype(font_path, _REF_FONT_SIZE)
    missing = font.getmask("\uffff").getbbox()
    return "".join(c for c in SYMBOLS if font.getmask(c).getbbox() not in (None, missing))


@lru_cache(maxsize=256)
def _pair(font_path: str, left: str, right: str, gap: float) -> tuple[np.ndarray, int, int]:
    """Ink bitmap of two letters on one baseline with ``gap`` x-heights between them, padded so
    that the middle of the gap is the middle of the bitmap."""
    (a, _, ay), (b, _, by) = _glyph(font_path, left), _glyph(font_path, right)
    space = max(1, int(round(gap * _x_height(font_path))))
    top = min(ay, by)
    height = max(ay + a.shape[0], by + b.shape[0]) - top
    half = max(a.shape[1], b.shape[1]) + space // 2 + 1
    out = np.zeros((height, 2 * half), np.float32)
    _paste_max(out, a, half - space // 2 - a.shape[1], ay - top)
    _paste_max(out, b, half + (space - space // 2), by - top)
    return out, 0, top


def render_glyph(letter: str, seed: int, index: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """Render one degraded glyph: a uint8 ``(size, size)`` array, 0 = ink, 255 = paper.

    The result depends only on ``(letter, seed, index)`` (and the vendored fonts).
    """
    _check_letter(letter)
    seed = _check_seed(seed)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ConfigError(f"index must be a non-negative integer, got {index!r}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ConfigError(f"size must be an integer >= 8, got {size!r}")
    fonts, _ = _fonts()
    return _render(letter, seed, int(index), int(size), fonts)


def _render(letter: str, seed: int, index: int, size: int,
            fonts: tuple[tuple[str, str, float], ...], style: str | None = None) -> np.ndarray:
    """One crop: the glyph ``letter`` (``style=None``), or one of the out-of-distribution kinds of
    :data:`OOD_STYLES` printed and scanned the same way (then ``letter`` is not used)."""
    knobs = OOD_STYLES[style] if style else {}
    rng = np.random.default_rng([seed, index] if style is None else [seed, index, _style_code(style)])
    u = rng.uniform

    # --- type, crop resolution and geometry ---------------------------------------------
    weights = np.array([f[2] for f in fonts], dtype=np.float64)
    font_path = fonts[int(rng.choice(len(fonts), p=weights / weights.sum()))][0]
    res = int(rng.integers(round(40 * size / 56), round(120 * size / 56) + 1))
    content = knobs.get("content", "letter")
    if content == "symbol":
        marks = _symbols(font_path)
        letter = marks[int(rng.integers(len(marks)))]
    if content == "pair":        # two neighbouring letters, the crop centred on the gap between them
        glyph, gx, gy = _pair(font_path, *(_NEIGHBOUR_LETTERS[int(k)] for k in rng.choice(26, 2, p=_NEIGHBOUR_P)),
                              gap=u(0.05, 0.15))
    else:
        glyph, gx, gy = _glyph(font_path, "x" if content == "none" else letter)
    scale = res * u(0.40, 0.52) / _x_height(font_path)
    hscale = u(0.85, 1.15)
    gh, gw = glyph.shape
    # capitals and long letters must still fit the crop (a pair is cut by the crop on purpose)
    if content == "pair":         # letters as large as in a glyph crop, so each is cut in half
        scale = min(scale * u(1.3, 1.6), 0.86 * res / gh)
    else:
        scale = min(scale, 0.86 * res / gh, 0.9 * res / (gw * hscale))
    sx, sy = scale * hscale, scale
    if content == "none":
        glyph = np.zeros_like(glyph)

    pad = res // 2
    side = res + 2 * pad
    canvas = np.zeros((side, side), np.float32)
    main = _resize(glyph, round(gw * sx), round(gh * sy))
    mh, mw = main.shape
    cx = side / 2 + u(-0.06, 0.06) * res
    cy = side / 2 + u(-0.06, 0.06) * res
    left, top = int(round(cx - mw / 2)), int(round(cy - mh / 2))
    _paste_max(canvas, main, left, top)
    baseline = top - gy * sy
    box0, box1 = pad, pad + res            # crop window in canvas coordinates
    gap = max(1.0, 0.04 * res)

    # --- bits of neighbouring letters at the crop borders -------------------------------
    for side_name, prob in (("right", 0.3), ("left", 0.3), ("above", 0.1), ("below", 0.1)):
        if u() >= prob or content in ("none", "pair"):
            continue
        if side_name in ("left", "right"):
            nl = _NEIGHBOUR_LETTERS[int(rng.choice(26, p=_NEIGHBOUR_P))]
        else:
            pool = _DESCENDERS if side_name == "above" else _ASCENDERS
            nl = pool[int(rng.integers(len(pool)))]
        ng, ngx, ngy = _glyph(font_path, nl)
        nb = _resize(ng, round(ng.shape[1] * sx), round(ng.shape[0] * sy))
        nh, nw = nb.shape
        intrusion = u(0.03, 0.17) * res
        if side_name == "right":
            x = max(box1 - intrusion, left + mw + gap)
            y = baseline + ngy * sy
        elif side_name == "left":
            x = min(box0 + intrusion, left - gap) - nw
            y = baseline + ngy * sy
        elif side_name == "above":
            y = min(box0 + intrusion, top - gap) - nh
            x = cx - nw / 2 + u(-0.3, 0.3) * res
        else:
            y = max(box1 - intrusion, top + mh + gap)
            x = cx - nw / 2 + u(-0.3, 0.3) * res
        _paste_max(canvas, nb, int(round(x)), int(round(y)))

    # --- small rotation about the crop centre, then crop ---------------------------------
    angle = u(-4.0, 4.0)
    rot = Image.fromarray(canvas, "F").rotate(angle, resample=Image.BICUBIC)
    m = np.clip(np.asarray(rot, dtype=np.float32)[box0:box1, box0:box1], 0.0, 1.0)
    h = w = res
    px = res / 56.0                          # one output pixel in crop pixels

    # --- slight warping (paper cockle, uneven platen) ------------------------------------
    amp = u(0.0, 1.4) * px
    if amp > 0.2:
        m = _warp(m, amp * _smooth_noise(rng, h, w, u(2, 4)), amp * _smooth_noise(rng, h, w, u(2, 4)))

    # --- ink spread / starved strokes with ragged edges ----------------------------------
    mb = _blur(m, u(0.5, 1.1) * px)
    rough = (u(0.05, 0.14) * _smooth_noise(rng, h, w, res / u(5, 9))
             + u(0.03, 0.10) * _smooth_noise(rng, h, w, res / u(1.6, 2.6)))
    # < 0.5: ink squeezed out and spread; > 0.5: thin, starved strokes
    thresh = u(0.32, 0.62)
    if "starved" in knobs:          # worn type and too little ink: strokes fall apart
        thresh = u(*knobs["starved"])
    ink = np.clip((mb + rough - thresh) / 0.07 + 0.5, 0.0, 1.0)

    # --- broken type: small gaps along the strokes ---------------------------------------
    ys, xs = np.nonzero(m > 0.6)
    if len(ys) and u() < 0.45:
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(len(ys)))
            r = u(0.6, 1.5) * px * 1.4
            ink *= 1.0 - _disc(h, w, ys[k], xs[k], r, soft=0.8 * px)
    if len(ys) and "breaks" in knobs:
        for _ in range(int(rng.integers(*knobs["breaks"]))):
            k = int(rng.integers(len(ys)))
            ink *= 1.0 - _disc(h, w, ys[k], xs[k], u(1.5, 3.5) * px, soft=0.8 * px)
    if "blots" in knobs:            # ink blots dropped on the page
        for _ in range(int(rng.integers(*knobs["blots"]))):
            blob = _disc(h, w, u(0.15, 0.85) * h, u(0.15, 0.85) * w, u(2.0, 9.0) * px, soft=1.5 * px)
            blob *= np.clip(1.0 + 0.8 * _smooth_noise(rng, h, w, res / (3 * px)), 0.0, 1.0)
            np.maximum(ink, blob, out=ink)

    # --- ink blotches and specks ---------------------------------------------------------
    if u() < 0.3:
        for _ in range(int(rng.integers(1, 3))):
            if len(ys) and u() < 0.7:
                k = int(rng.integers(len(ys)))
                by, bx = ys[k] + u(-3, 3) * px, xs[k] + u(-3, 3) * px
            else:
                by, bx = u(0.1, 0.9) * h, u(0.1, 0.9) * w
            blob = _disc(h, w, by, bx, u(0.8, 2.2) * px, soft=px)
            blob *= np.clip(1.0 + 0.8 * _smooth_noise(rng, h, w, res / (3 * px)), 0.0, 1.0)
            np.maximum(ink, blob, out=ink)
    if u() < 0.5:
        for _ in range(int(rng.integers(1, 6))):
            np.maximum(ink, u(0.3, 0.9) * _disc(h, w, u(0, h), u(0, w), u(0.3, 0.8) * px, px),
                       out=ink)

    # --- uneven inking: ink film thickness varies across the glyph -----------------------
    density = 1.0 - u(0.0, 0.3) * np.clip(0.5 + 0.5 * _smooth_noise(rng, h, w, u(1.5, 4)), 0, 1)
    mottle = u(0.0, 0.25)
    density *= 1.0 - mottle * np.clip(_smooth_noise(rng, h, w, res / (1.5 * px)), 0, None)

    # --- paper: tone, large-scale unevenness, stains, show-through, grain ----------------
    paper_tone = u(192, 240)
    paper = paper_tone + u(1.5, 7) * _smooth_noise(rng, h, w, u(1.5, 3))
    if u() < knobs.get("stain_p", 0.15):   # foxing / water stain
        stain = _blur(_disc(h, w, u(0, h), u(0, w), u(0.15, 0.4) * res, 0.1 * res), 0.05 * res)
        paper -= u(10, 30) * stain
    if u() < 0.15:   # show-through of a letter printed on the other side
        sl = _NEIGHBOUR_LETTERS[int(rng.integers(26))]
        sg, _, _ = _glyph(font_path, sl)
        sb = _resize(sg[:, ::-1], round(sg.shape[1] * sx), round(sg.shape[0] * sy))
        ghost = np.zeros((h, w), np.float32)
        _paste_max(ghost, sb, int(u(-0.3, 0.8) * w), int(u(-0.3, 0.8) * h))
        paper -= u(8, 22) * _blur(ghost, 1.5 * px)
    paper += u(2, 6) * _smooth_noise(rng, h, w, res / (1.2 * px))       # paper fibres
    ink_tone = u(15, 65)
    a = ink * density
    img = paper * (1.0 - a) + ink_tone * a

    # --- scan: blur, resize to the output size, contrast, sensor noise -------------------
    img = _blur(img, u(0.25, 0.8) * px * knobs.get("blur", 1.0))
    img = _resize(img, size, size)
    contrast = u(0.85, 1.15)
    mean = float(img.mean())
    img = mean + (img - mean) * contrast + u(-10, 10)
    img += u(0.5, 3.0) * rng.standard_normal((size, size)).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------
# many glyphs, in parallel
# ----------------------------------------------------------------------------------------
def _render_chunk(args) -> np.ndarray:
    letters, seed, start, size, fonts, style = args
    out = np.empty((len(letters), size, size), np.uint8)
    for i, letter in enumerate(letters):
        out[i] = _render(letter, seed, start + i, size, fonts, style)
    return out


def _default_workers(n: int) -> int:
    import multiprocessing as mp

    if n < 2 * _CHUNK or mp.current_process().daemon:   # daemons may not have children
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def render_many(labels: np.ndarray, seed: int, progress: bool = False,
                workers: int | None = None, size: int = IMAGE_SIZE, style: str | None = None) -> np.ndarray:
    """Render image ``i`` as ``render_glyph(CLASSES[labels[i]], seed, i)`` for every ``i``, or,
    with ``style`` (one of :data:`OOD_STYLES`), ``len(labels)`` crops of that kind (the labels
    are then not used).

    ``workers`` processes (default: the CPUs available, 1 for small jobs) render chunks of
    the index range; the pixels do not depend on it.
    """
    if style is not None and style not in OOD_STYLES:
        raise ConfigError(f"unknown crop style {style!r}; choose one of {', '.join(OOD_STYLES)}")
    seed = _check_seed(seed)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ConfigError(f"labels must lie in [0, {len(CLASSES)})")
    fonts, _ = _fonts()
    n = len(labels)
    letters = [CLASSES[k] for k in labels]
    tasks = [(letters[s:s + _CHUNK], seed, s, size, fonts, style) for s in range(0, n, _CHUNK)]
    workers = _default_workers(n) if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    out = np.empty((n, size, size), np.uint8)
    from tqdm import tqdm

    with tqdm(total=n, desc="generating glyphs" if style is None else f"generating {style} crops", unit="img",
              file=sys.stderr,
              disable=not progress) as bar:
        if workers == 1 or len(tasks) <= 1:
            for t in tasks:
                out[t[2]:t[2] + len(t[0])] = _render_chunk(t)
                bar.update(len(t[0]))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as ex:
                for t, res in zip(tasks, ex.map(_render_chunk, tasks)):
                    out[t[2]:t[2] + len(t[0])] = res
                    bar.update(len(t[0]))
    return out


def _mp_context():
    import multiprocessing as mp

    # fork is fast (no re-import) and safe here: the workers use only numpy and PIL.
    # Elsewhere (macOS, Windows) use the platform default.
    if sys.platform.startswith("linux"):
        return mp.get_context("fork")
    return mp.get_context()


# ----------------------------------------------------------------------------------------
# the data set
# ----------------------------------------------------------------------------------------
def generate(seed: int = 0, small: bool = False, progress: bool = True,
             workers: int | None = None) -> Splits:
    """Generate the embedded glyph set (no cache): 16,171 images, or 2,100 with ``small``."""
    seed = _check_seed(seed)
    counts = class_counts(small)
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.int64), counts)
    images = render_many(labels, seed, progress=progress, workers=workers)
    tr, va, te = stratified_split(labels, seed, totals=split_sizes(len(labels)))
    fonts, fallback = _fonts()
    meta = {"generator_version": GENERATOR_VERSION, "seed": seed, "small": bool(small),
            "fonts": [name for _, name, _ in fonts]}
    if fallback:
        meta["fallback_fonts"] = True
    return Splits(images[tr], labels[tr], images[va], labels[va], images[te], labels[te],
                  classes=list(CLASSES), source="embedded", meta=meta)


def _cache_dir(cache_dir=None) -> pathlib.Path:
    if cache_dir is not None:
        return pathlib.Path(cache_dir).expanduser()
    env = os.environ.get(_CACHE_ENV)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "glyph-ebm"


def cache_path(seed: int = 0, small: bool = False, cache_dir=None) -> pathlib.Path:
    """Where :func:`load_glyphs` keeps the set: ``<dir>/glyphs-v<version>-seed<seed>-<variant>.npz``.

    ``<dir>`` is ``cache_dir``, else ``$GLYPH_EBM_CACHE``, else ``~/.cache/glyph-ebm``.
    """
    seed = _check_seed(seed)
    _, fallback = _fonts()
    variant = ("small" if small else "full") + ("-fallbackfonts" if fallback else "")
    return _cache_dir(cache_dir) / f"glyphs-v{GENERATOR_VERSION}-seed{seed}-{variant}.npz"


class _BadCache(Exception):
    pass


def _read_cache(path: pathlib.Path, seed: int, small: bool) -> Splits:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("train_x", "train_y", "val_x", "val_y",
                                        "test_x", "test_y")}
            meta = json.loads(str(z["meta_json"]))
            classes = json.loads(str(z["classes_json"]))
    except Exception as e:  # noqa: BLE001 - any unreadable file (zip, zlib, npy, json errors)
        raise _BadCache(f"{type(e).__name__}: {e}") from e
    if meta.get("generator_version") != GENERATOR_VERSION or meta.get("seed") != seed \
            or meta.get("small") != bool(small):
        raise _BadCache("it was made by another generator version or for another set")
    if classes != CLASSES:
        raise _BadCache("its class list differs")
    expected = split_sizes(int(class_counts(small).sum()))
    for name, n in zip(("train", "val", "test"), expected):
        x, y = arrays[f"{name}_x"], arrays[f"{name}_y"]
        if x.dtype != np.uint8 or x.shape != (n, IMAGE_SIZE, IMAGE_SIZE) \
                or y.dtype != np.int64 or y.shape != (n,) \
                or (n and (y.min() < 0 or y.max() >= len(CLASSES))):
            raise _BadCache(f"its {name} split has the wrong shape or type")
    return Splits(**arrays, classes=list(classes), source="embedded", meta=meta)


def _write_cache(path: pathlib.Path, splits: Splits) -> None:
    with atomic_write(path, binary=True) as f:
        np.savez_compressed(
            f, train_x=splits.train_x, train_y=splits.train_y, val_x=splits.val_x,
            val_y=splits.val_y, test_x=splits.test_x, test_y=splits.test_y,
            meta_json=np.array(json.dumps(splits.meta)),
            classes_json=np.array(json.dumps(splits.classes)))


def load_glyphs(seed: int = 0, small: bool = False, cache_dir: str | os.PathLike | None = None,
                progress: bool = True) -> Splits:
    """The embedded glyph set, generated on first use and then read from the cache file.

    A cache file that cannot be read (corrupt, truncated, from another version) is
    regenerated and replaced, with a message on stderr.
    """
    seed = _check_seed(seed)
    path = cache_path(seed, small, cache_dir)
    if path.exists():
        try:
            return _read_cache(path, seed, small)
        except _BadCache as e:
            print(f"glyph cache {path} is unusable ({e}); regenerating it", file=sys.stderr)
    splits = generate(seed=seed, small=small, progress=progress)
    try:
        _write_cache(path, splits)
    except OSError as e:
        warnings.warn(f"could not write the glyph cache {path} ({e}); the set will be "
                      f"regenerated next time (set ${_CACHE_ENV} to a writable folder)",
                      RuntimeWarning, stacklevel=2)
    return splits


# ----------------------------------------------------------------------------------------
# output helpers
# ----------------------------------------------------------------------------------------
def write_image_folder(splits: Splits, root, pre_split: bool = False) -> None:
    """Write the images as PNG files, one folder per class (see :data:`CLASS_DIRNAMES`).

    ``root/<dirname>/<i>.png`` with the three splits pooled (``i`` counts per class, in
    train, val, test order), or with ``pre_split`` ``root/{train,val,test}/<dirname>/<i>.png``.
    Only classes that have images get a folder (an empty class folder is an error for
    :func:`glyph_ebm.imagefolder.load_image_folder`, so what is written can be read back).
    """
    root = pathlib.Path(root)
    dirnames = _dirnames_for(splits.classes)
    groups = [("train", "val", "test")] if not pre_split else [("train",), ("val",), ("test",)]
    for group in groups:
        base = root / group[0] if pre_split else root
        counters = [0] * len(dirnames)
        for name in group:
            xs, ys = splits.split(name)
            for img, lab in zip(xs, ys):
                k = int(lab)
                if counters[k] == 0:
                    (base / dirnames[k]).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8), "L").save(
                    base / dirnames[k] / f"{counters[k]:05d}.png", optimize=False)
                counters[k] += 1


def _dirnames_for(classes: list[str]) -> list[str]:
    if list(classes) == CLASSES:
        return list(CLASS_DIRNAMES)
    names = [c if not c.isupper() else f"{c}_upper" for c in classes]
    if len({n.lower() for n in names}) != len(names):
        raise ConfigError("class names collide on a case-insensitive file system")
    return names


def contact_sheet(splits: Splits, path, per_class: int = 8) -> None:
    """Save a PNG grid: one row per class (label at left), ``per_class`` images per row.

    Images are taken in train, val, test order; missing ones stay blank.
    """
    if per_class < 1:
        raise ConfigError(f"per_class must be >= 1, got {per_class}")
    # a bare Figure renders with the Agg canvas and leaves pyplot's backend alone
    from matplotlib.figure import Figure

    xs = np.concatenate([splits.train_x, splits.val_x, splits.test_x])
    ys = np.concatenate([splits.train_y, splits.val_y, splits.test_y])
    n_cls = len(splits.classes)
    hgt, wid = xs.shape[1:] if len(xs) else (IMAGE_SIZE, IMAGE_SIZE)
    gap = 2
    sheet = np.full((n_cls * (hgt + gap) + gap, per_class * (wid + gap) + gap), 255, np.uint8)
    for k in range(n_cls):
        for j, i in enumerate(np.flatnonzero(ys == k)[:per_class]):
            y0, x0 = gap + k * (hgt + gap), gap + j * (wid + gap)
            sheet[y0:y0 + hgt, x0:x0 + wid] = xs[i]
    # exact pixel layout: every image pixel becomes 1.5 x 1.5 screen pixels
    scale, dpi = 1.5, 100
    left, right, top, bottom = 44, 8, 34, 8
    img_w, img_h = sheet.shape[1] * scale, sheet.shape[0] * scale
    fig_w, fig_h = left + img_w + right, top + img_h + bottom
    fig = Figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
    ax = fig.add_axes((left / fig_w, bottom / fig_h, img_w / fig_w, img_h / fig_h))
    ax.imshow(sheet, cmap="gray", vmin=0, vmax=255, interpolation="antialiased", aspect="auto")
    ax.set_yticks([gap + k * (hgt + gap) + hgt / 2 for k in range(n_cls)])
    ax.set_yticklabels(list(splits.classes), fontsize=13)
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    meta = splits.meta or {}
    ax.set_title(f"{splits.source} glyphs  seed={meta.get('seed', '?')}  "
                 f"{sum(splits.sizes().values())} images", fontsize=11)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


# ----------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m glyph_ebm.glyphs",
        description="Generate (or load from the cache) the embedded glyph set and save a "
                    "contact sheet of it.")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--small", action="store_true", help="the small set (50 per class)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--per-class", type=int, default=8, help="images per row (default 8)")
    parser.add_argument("--cache-dir", default=None, help=f"cache folder (default ${_CACHE_ENV} "
                        "or ~/.cache/glyph-ebm)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    def job() -> None:
        splits = load_glyphs(seed=args.seed, small=args.small, cache_dir=args.cache_dir,
                             progress=not args.quiet)
        contact_sheet(splits, args.out, per_class=args.per_class)
        print(f"wrote {args.out} ({sum(splits.sizes().values())} images, sizes {splits.sizes()})")

    return run_command(job)


if __name__ == "__main__":
    sys.exit(main())
