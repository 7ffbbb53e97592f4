"""Load a real folder of scanned glyph images (``--data PATH``) into a :class:`Splits`.

Accepted layouts
----------------
1. **Class folders** -- ``PATH/<class>/<image>``. Every image of every class is loaded and a
   seeded, stratified 70/15/15 train/val/test split is made with
   :func:`glyph_ebm.datasets.stratified_split` (same ``seed`` -> same split).
2. **Pre-split** -- ``PATH/train/<class>/<image>``, ``PATH/val/<class>/<image>`` and
   ``PATH/test/<class>/<image>`` (``valid`` or ``validation`` are accepted for ``val``; the
   split names are case-insensitive). The splits are used as given. The class list is the
   union over the splits; a class may be missing from ``val`` or ``test`` (and a whole ``val``
   or ``test`` folder may be missing -- that split is then empty), but every class must have
   training images.

A folder is treated as pre-split when its ``train`` sub-folder exists and every other
sub-folder is a split name. Class names are the folder names, sorted in *natural* order
(case-insensitive, digit runs compared as numbers: ``a, B, c2, c10``); the label of a class is
its index in that order. The number of classes comes from the data (at least 2).

Images inside a class folder are found recursively (nested sub-folders are fine) and symbolic
links are followed. File lists are sorted, so the result is deterministic.

What is skipped (silently, but counted in ``Splits.meta["skipped"]``)
--------------------------------------------------------------------
* ``hidden``: files and folders whose name starts with ``.`` (``.DS_Store``, ``._foo.png``);
* ``system``: ``Thumbs.db``, ``ehthumbs.db``, ``desktop.ini``;
* ``macosx``: everything inside ``__MACOSX`` folders (zip artefacts from macOS);
* ``non_image``: files without an image extension (``*.txt``, ``*.csv``, ...);
* ``outside_class_folder``: files lying directly in ``PATH`` (or in a split folder) rather than
  inside a class folder.

A file that *has* an image extension (:data:`IMAGE_EXTENSIONS`, case-insensitive) but cannot be
decoded (zero bytes, truncated, a text file renamed ``.png``) is **not** skipped: it raises a
:class:`~glyph_ebm.errors.DataError` naming the file, because silently dropping data hides
problems.

How each image is turned into a 56x56 grey glyph
------------------------------------------------
1. JPEGs are decoded at reduced size with ``Image.draft`` (much faster for large scans);
2. the EXIF orientation tag is applied (``ImageOps.exif_transpose``);
3. the image is converted to 8-bit grey: transparent images (RGBA, LA, palette with
   transparency) are composited onto **white paper**; 16-bit grey (``I;16``/``I``) is scaled
   by 255/65535; CMYK, palette and 1-bit images go through RGB/L; colour uses the ITU-R 601
   luma weights of ``Image.convert("L")``; animated images contribute their first frame;
4. the image is **padded to a square** with its border colour (the median of its outermost
   pixel ring) and centred, so the aspect ratio of the glyph is preserved exactly as in a glyph
   crop (a wide 300x40 image becomes a thin band, not a stretched blob);
5. the square is resized to ``image_size`` x ``image_size`` -- LANCZOS when shrinking
   (anti-aliased), BILINEAR when enlarging (no ringing on tiny images).

Polarity
--------
The package convention is dark ink (0) on light paper (255). After loading, the mean of the
2-pixel border ring of every image is computed; if it is below 128 for **more than half** of
all images (train, val and test together), the dataset is taken to be light-on-dark and
*every* image is inverted (``255 - x``). ``meta["inverted"]`` records whether this happened and
``meta["dark_border_fraction"]`` the fraction that triggered it. The decision is made once per
dataset, never per image, so all splits stay consistent.
"""
from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .datasets import IMAGE_SIZE, Splits, stratified_split
from .errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm", ".pbm",
)
"""File extensions loaded as images (compared case-insensitively)."""

SPLIT_ALIASES = {
    "train": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test",
}
SYSTEM_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})
SKIP_REASONS = ("hidden", "system", "macosx", "non_image", "outside_class_folder")
_LAYOUT_HINT = "expected PATH/<class>/<images> or PATH/train|val|test/<class>/<images>"
_MAX_WORKERS = 4


# --------------------------------------------------------------------------------------------
# file discovery
# --------------------------------------------------------------------------------------------
def natural_key(name: str):
    """Sort key for natural order: case-insensitive, digit runs compared as numbers."""
    parts = re.split(r"(\d+)", name)
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts if p)
    return key, name


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _skip_reason(name: str) -> str | None:
    """Why a *file* called ``name`` is skipped, or ``None`` if it is an image to load."""
    if name.startswith("."):
        return "hidden"
    if name.lower() in SYSTEM_FILES:
        return "system"
    if not _is_image_name(name):
        return "non_image"
    return None


def _is_ignored_dir(name: str) -> str | None:
    if name == "__MACOSX":
        return "macosx"
    if name.startswith("."):
        return "hidden"
    return None


def _count_files(folder: str) -> int:
    n = 0
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        n += len(files)
    return n


def _list_dir(folder: Path, skipped: dict[str, int], what: str) -> list[Path]:
    """Sub-folders of ``folder`` that may hold data; stray files are counted in ``skipped``."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"cannot read {what} '{folder}' ({exc.strerror or exc}); "
                        "check that it exists and that you may read it") from None
    subdirs = []
    for e in entries:
        if e.is_dir():  # follows symlinks
            reason = _is_ignored_dir(e.name)
            if reason:
                skipped[reason] += _count_files(e.path)
            else:
                subdirs.append(Path(e.path))
        else:
            skipped[_skip_reason(e.name) or "outside_class_folder"] += 1
    return subdirs


def _class_files(class_dir: Path, skipped: dict[str, int]) -> list[Path]:
    """All image files below ``class_dir`` (recursive, symlinks followed, sorted)."""
    found: list[str] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # symlink loop
            dirs[:] = []
            continue
        seen.add(real)
        keep = []
        for d in dirs:
            reason = _is_ignored_dir(d)
            if reason:
                skipped[reason] += _count_files(os.path.join(root, d))
            else:
                keep.append(d)
        dirs[:] = keep
        for f in files:
            reason = _skip_reason(f)
            if reason:
                skipped[reason] += 1
            else:
                found.append(os.path.join(root, f))
    rel = sorted(os.path.relpath(p, class_dir) for p in found)
    return [class_dir / r for r in rel]


def _collect_classes(class_dirs: list[Path], skipped: dict[str, int]) -> dict[str, list[Path]]:
    """``{class name: files}`` for the given class folders; errors on an empty class folder."""
    out: dict[str, list[Path]] = {}
    for class_dir in class_dirs:
        files = _class_files(class_dir, skipped)
        if not files:
            raise DataError(
                f"class folder '{class_dir}' contains no images "
                f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}); "
                "add images to it or remove the folder")
        out[class_dir.name] = files
    return out


def _loose_images(folder: Path) -> int:
    try:
        return sum(1 for e in os.scandir(folder)
                   if not e.is_dir() and _skip_reason(e.name) is None)
    except OSError:
        return 0


# --------------------------------------------------------------------------------------------
# decoding one image
# --------------------------------------------------------------------------------------------
def _to_grey(im) -> np.ndarray:
    """Any PIL image -> float32 grey array in [0, 255] (transparency composited onto white)."""
    from PIL import Image

    mode = im.mode
    if mode == "P" and ("transparency" in im.info):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "A" in im.getbands():
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("L"), dtype=np.float32)
    if mode.startswith("I;16"):
        return np.asarray(im, dtype=np.float32) * (255.0 / 65535.0)
    if mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float32)
        hi = float(a.max()) if a.size else 0.0
        if mode == "F" and hi <= 1.0:
            a = a * 255.0
        elif hi > 255.0:
            a = a * (255.0 / 65535.0)
        return np.clip(a, 0.0, 255.0)
    if mode == "L":
        return np.asarray(im, dtype=np.float32)
    if mode in ("1", "P", "RGB"):
        return np.asarray(im.convert("L"), dtype=np.float32)
    # CMYK, YCbCr, LAB, HSV, ...: via RGB
    return np.asarray(im.convert("RGB").convert("L"), dtype=np.float32)


def _border(a: np.ndarray, width: int = 1) -> np.ndarray:
    h, w = a.shape
    width = max(1, min(width, h // 2 or 1, w // 2 or 1))
    if h <= 2 * width or w <= 2 * width:
        return a.ravel()
    return np.concatenate([a[:width].ravel(), a[-width:].ravel(),
                           a[width:-width, :width].ravel(), a[width:-width, -width:].ravel()])


def _square_resize(grey: np.ndarray, size: int) -> np.ndarray:
    """Pad ``grey`` to a square with its border colour (centred), then resize to ``size``."""
    from PIL import Image

    h, w = grey.shape
    side = max(h, w)
    if h != w:
        fill = float(np.median(_border(grey)))
        canvas = np.full((side, side), fill, dtype=np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        canvas[top:top + h, left:left + w] = grey
        grey = canvas
    im = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode="L")
    if side != size:
        if side > size:
            im = im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        else:
            im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _load_one(path: Path, size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        if os.path.islink(path) and not os.path.exists(path):
            raise OSError("it is a broken symbolic link")
        if os.path.getsize(path) == 0:
            raise OSError("the file is empty, 0 bytes")
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("L" if im.mode in ("L", "RGB", "YCbCr") else None, (size, size))
            im.load()
            try:
                im2 = ImageOps.exif_transpose(im)
            except Exception:  # broken EXIF: keep the pixels as stored
                im2 = im
            grey = _to_grey(im2)
    except DataError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBomb...
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "cannot identify image file" in reason:
            reason = "its contents are not in any image format Pillow can read"
        reason = reason.replace(f"'{path}'", "the file").replace(str(path), "the file")
        raise DataError(f"cannot read image '{path}' ({reason}); "
                        "delete the file or re-export it as PNG") from None
    if grey.ndim != 2 or grey.size == 0:
        raise DataError(f"cannot read image '{path}' (it has no pixels); "
                        "delete the file or re-export it as PNG")
    return _square_resize(grey, size)


def _load_all(files: list[Path], size: int, progress: bool) -> np.ndarray:
    out = np.empty((len(files), size, size), dtype=np.uint8)
    if not files:
        return out
    from tqdm.auto import tqdm

    workers = max(1, min(_MAX_WORKERS, (os.cpu_count() or 1), len(files)))
    bar = tqdm(total=len(files), desc="loading images", unit="img", file=sys.stderr,
               disable=not progress, leave=False)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for i, img in enumerate(pool.map(_load_one, files, [size] * len(files),
                                         chunksize=1)):
            out[i] = img
            bar.update(1)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    return out


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def _empty(size: int):
    return np.zeros((0, size, size), dtype=np.uint8), np.zeros(0, dtype=np.int64)


def load_image_folder(path, image_size: int = IMAGE_SIZE, seed: int = 0,
                      progress: bool = True) -> Splits:
    """Load ``path`` (see the module docstring for layouts and policies) into :class:`Splits`.

    Raises :class:`~glyph_ebm.errors.DataError` with a one-line, actionable message when the
    folder cannot be used.
    """
    root = Path(os.path.expanduser(str(path))).absolute()
    if not root.exists():
        hint = " (it is a broken symbolic link)" if root.is_symlink() else ""
        raise DataError(f"data folder '{root}' does not exist{hint}; "
                        "check the --data path")
    if not root.is_dir():
        extra = ""
        if root.suffix.lower() in (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar"):
            extra = " (unpack the archive first)"
        raise DataError(f"'{root}' is a file, not a folder; --data expects a folder with one "
                        f"sub-folder per class{extra}")

    skipped = {k: 0 for k in SKIP_REASONS}
    top = _list_dir(root, skipped, "data folder")
    if not top:
        loose = _loose_images(root)
        if loose:
            raise DataError(f"'{root}' has no class sub-folders (found {loose} image files "
                            f"directly inside); put each class in its own sub-folder: "
                            f"{_LAYOUT_HINT}")
        raise DataError(f"data folder '{root}' is empty (no class sub-folders); "
                        f"{_LAYOUT_HINT}")

    split_of = {d: SPLIT_ALIASES.get(d.name.lower()) for d in top}
    split_dirs = [d for d in top if split_of[d]]
    pre_split = bool(split_dirs) and len(split_dirs) == len(top)
    if pre_split or any(split_of[d] == "train" for d in top):
        if not pre_split:
            others = ", ".join(repr(d.name) for d in top if not split_of[d])
            raise DataError(f"'{root}' mixes split folders with class folders ({others}); "
                            f"{_LAYOUT_HINT}")
        by_split: dict[str, Path] = {}
        for d in split_dirs:
            s = split_of[d]
            if s in by_split:
                raise DataError(f"'{root}' has two '{s}' split folders ('{by_split[s].name}' "
                                f"and '{d.name}'); keep one of them")
            by_split[s] = d
        if "train" not in by_split:
            found = ", ".join(repr(d.name) for d in split_dirs)
            raise DataError(f"pre-split data folder '{root}' has no 'train' split (found "
                            f"{found}); add {root / 'train'}/<class>/<images>")
        per_split: dict[str, dict[str, list[Path]]] = {}
        for s in ("train", "val", "test"):
            if s not in by_split:
                per_split[s] = {}
                continue
            per_split[s] = _collect_classes(
                _list_dir(by_split[s], skipped, "split folder"), skipped)
            if not per_split[s] and (s == "train" or _loose_images(by_split[s])):
                raise DataError(f"split folder '{by_split[s]}' has no class sub-folders; "
                                f"expected {by_split[s]}/<class>/<images>")
        train_classes = set(per_split["train"])
        for s in ("val", "test"):
            extra = sorted(set(per_split[s]) - train_classes, key=natural_key)
            if extra:
                raise DataError(f"class '{extra[0]}' is in '{by_split[s]}' but not in "
                                f"'{by_split['train']}'; every class needs training images "
                                f"- add {by_split['train'] / extra[0]}/ or remove "
                                f"{by_split[s] / extra[0]}/")
        classes = sorted(train_classes, key=natural_key)
    else:
        per_split = {"all": _collect_classes(top, skipped)}
        classes = sorted(per_split["all"], key=natural_key)

    if len(classes) < 2:
        where = by_split["train"] if pre_split else root
        raise DataError(f"found 1 class '{classes[0]}' in {where}; a classifier needs at "
                        "least 2 - put each class in its own sub-folder")

    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    split_names: list[str] = []
    for s, cmap in per_split.items():
        for c in classes:
            for f in cmap.get(c, ()):
                files.append(f)
                labels.append(index[c])
                split_names.append(s)

    images = _load_all(files, image_size, progress)
    y = np.asarray(labels, dtype=np.int64)
    sname = np.asarray(split_names)

    # polarity: dark ink on light paper
    if len(images):
        rim = np.concatenate([images[:, :2, :].reshape(len(images), -1),
                              images[:, -2:, :].reshape(len(images), -1),
                              images[:, 2:-2, :2].reshape(len(images), -1),
                              images[:, 2:-2, -2:].reshape(len(images), -1)], axis=1)
        dark_fraction = float(np.mean(rim.mean(axis=1) < 128))
    else:
        dark_fraction = 0.0
    inverted = dark_fraction > 0.5
    if inverted:
        np.subtract(255, images, out=images)

    if pre_split:
        parts = [np.flatnonzero(sname == s) for s in ("train", "val", "test")]
    else:
        parts = list(stratified_split(y, seed))
    (trx, tr_y), (vx, vy), (tx, ty) = [
        (images[p], y[p]) if len(p) else _empty(image_size) for p in parts]

    counts = {c: int(np.sum(y == i)) for i, c in enumerate(classes)}
    skipped["total"] = sum(skipped[k] for k in SKIP_REASONS)
    meta = {
        "skipped": skipped,
        "inverted": bool(inverted),
        "dark_border_fraction": dark_fraction,
        "pre_split": pre_split,
        "counts": counts,
        "image_size": int(image_size),
    }
    return Splits(train_x=trx, train_y=tr_y, val_x=vx, val_y=vy, test_x=tx, test_y=ty,
                  classes=list(classes), source=f"folder:{root}", meta=meta)
