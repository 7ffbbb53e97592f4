"""Tests for glyph_ebm.imagefolder (folders of real scans). All fixtures are made here."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glyph_ebm.datasets import stratified_split
from glyph_ebm.errors import DataError
from glyph_ebm.imagefolder import IMAGE_EXTENSIONS, load_image_folder

PAPER, INK = 240, 10


def glyph(i: int = 0, size: tuple[int, int] = (32, 32), paper: int = PAPER,
          ink: int = INK) -> np.ndarray:
    """A unique (for i < 400) dark-on-light grey image (h, w) = size[::-1]."""
    w, h = size
    a = np.full((h, w), paper, np.uint8)
    x, y = 3 + i % 20, 3 + (i // 20) % 20
    a[y:y + 6, x:x + 6] = ink
    return a


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def make_class_folder(root: Path, counts: dict[str, int], ext: str = ".png",
                      start: int = 0, **kw) -> Path:
    i = start
    for cls, n in counts.items():
        for _ in range(n):
            save(root / cls / f"img{i:04d}{ext}", glyph(i, **kw))
            i += 1
    return root


def load(path, **kw):
    kw.setdefault("progress", False)
    return load_image_folder(path, **kw)


def all_images(s):
    return np.concatenate([s.train_x, s.val_x, s.test_x])


# ----------------------------------------------------------------------------- layouts
def test_class_layout_shapes_dtypes_and_meta(tmp_path):
    root = make_class_folder(tmp_path / "data", {"b": 20, "a": 40, "c": 10})
    s = load(root)
    assert s.classes == ["a", "b", "c"]
    assert s.num_classes == 3
    assert s.source == f"folder:{root.resolve()}"
    assert s.meta["pre_split"] is False
    assert s.meta["inverted"] is False
    assert s.meta["counts"] == {"a": 40, "b": 20, "c": 10}
    assert sum(s.sizes().values()) == 70 == sum(s.meta["counts"].values())
    for name in ("train", "val", "test"):
        x, y = s.split(name)
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[1:] == (56, 56)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert y.min() >= 0 and y.max() < 3
    x = all_images(s)
    assert x.min() < 60 and x.max() > 200  # full range used: ink dark, paper light
    assert s.meta["skipped"]["total"] == 0


def test_image_size_argument(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 3, "b": 3})
    s = load(root, image_size=28)
    assert all_images(s).shape[1:] == (28, 28)


def test_split_is_stratified_and_matches_stratified_split(tmp_path):
    counts = {"a": 40, "b": 20, "c": 7}
    root = make_class_folder(tmp_path / "d", counts)
    s = load(root, seed=3)
    labels = np.repeat(np.arange(3), [40, 20, 7])
    parts = stratified_split(labels, 3)
    for part, name in zip(parts, ("train", "val", "test")):
        _, y = s.split(name)
        assert np.array_equal(np.bincount(y, minlength=3), np.bincount(labels[part], minlength=3))
    # 15% of 40 = 6 per class in val and test
    assert np.sum(s.val_y == 0) == 6 and np.sum(s.test_y == 0) == 6
    assert np.sum(s.val_y == 1) == 3 and np.sum(s.test_y == 1) == 3


def test_split_is_seeded(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 30, "b": 30})
    s1, s2, s3 = load(root, seed=0), load(root, seed=0), load(root, seed=1)
    for name in ("train", "val", "test"):
        assert np.array_equal(s1.split(name)[0], s2.split(name)[0])
        assert np.array_equal(s1.split(name)[1], s2.split(name)[1])
    assert not np.array_equal(s1.test_x, s3.test_x)
    # no image is lost or duplicated across splits
    a = np.sort(all_images(s1).reshape(60, -1), axis=0)
    b = np.sort(all_images(s3).reshape(60, -1), axis=0)
    assert np.array_equal(a, b)
    assert len(np.unique(all_images(s1).reshape(60, -1), axis=0)) == 60


def test_labels_match_class_folders(tmp_path):
    # class 'a' images have ink at the left edge, class 'b' at the right
    for i in range(8):
        a = np.full((32, 32), PAPER, np.uint8)
        a[4:28, 2:8] = INK
        save(tmp_path / "d" / "a" / f"{i}.png", a)
        save(tmp_path / "d" / "b" / f"{i}.png", a[:, ::-1].copy())
    s = load(tmp_path / "d")
    x, y = all_images(s), np.concatenate([s.train_y, s.val_y, s.test_y])
    left = x[:, :, :28].mean(axis=(1, 2)) < x[:, :, 28:].mean(axis=(1, 2))
    assert np.array_equal(left, y == 0)


def test_natural_class_order(tmp_path):
    root = make_class_folder(tmp_path / "d", {"c10": 2, "c2": 2, "B": 2, "a": 2})
    s = load(root)
    assert s.classes == ["a", "B", "c2", "c10"]
    assert s.meta["counts"] == {"a": 2, "B": 2, "c2": 2, "c10": 2}


def test_pre_split_layout(tmp_path):
    root = tmp_path / "d"
    make_class_folder(root / "train", {"x": 5, "y": 4, "z": 3})
    make_class_folder(root / "valid", {"x": 2, "y": 1}, start=100)   # 'valid' alias, no z
    make_class_folder(root / "test", {"z": 2, "x": 1}, start=200)    # no y
    s = load(root)
    assert s.meta["pre_split"] is True
    assert s.classes == ["x", "y", "z"]
    assert s.sizes() == {"train": 12, "val": 3, "test": 3}
    assert np.bincount(s.train_y, minlength=3).tolist() == [5, 4, 3]
    assert np.bincount(s.val_y, minlength=3).tolist() == [2, 1, 0]
    assert np.bincount(s.test_y, minlength=3).tolist() == [1, 0, 2]
    assert s.meta["counts"] == {"x": 8, "y": 5, "z": 5}
    # used as given: the same for any seed
    s2 = load(root, seed=7)
    assert np.array_equal(s.test_x, s2.test_x) and np.array_equal(s.val_y, s2.val_y)


@pytest.mark.parametrize("val_name", ["val", "Validation"])
def test_pre_split_val_aliases_and_missing_test(tmp_path, val_name):
    root = tmp_path / "d"
    make_class_folder(root / "train", {"x": 3, "y": 3})
    make_class_folder(root / val_name, {"x": 1, "y": 1}, start=50)
    s = load(root)
    assert s.sizes() == {"train": 6, "val": 2, "test": 0}
    assert s.test_x.shape == (0, 56, 56) and s.test_x.dtype == np.uint8
    assert s.test_y.dtype == np.int64


# ----------------------------------------------------------------------------- messy files
def _ink_centre(img: np.ndarray) -> bool:
    return img[:6].mean() > 200 and img[-6:].mean() > 200 and img[24:32, 24:32].mean() < 80


def test_mixed_modes_and_formats(tmp_path):
    g = np.full((40, 40), PAPER, np.uint8)
    g[12:28, 12:28] = INK
    rgb = np.stack([g, g, g], -1)
    d = tmp_path / "d" / "modes"
    save(d / "rgb.png", rgb)
    rgba = np.zeros((40, 40, 4), np.uint8)          # transparent black paper, opaque black ink
    rgba[..., 3] = np.where(g < 128, 255, 0)
    save(d / "rgba.png", rgba)
    Image.fromarray(rgb).convert("P").save(d / "pal.gif")
    Image.fromarray(rgb).convert("P").save(d / "pal.PNG")
    save(d / "grey16.png", g.astype(np.uint16) * 257)
    Image.fromarray(g > 128).save(d / "bilevel.png")
    Image.fromarray(g > 128).save(d / "bilevel.PBM")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.tif")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    la = np.stack([np.zeros_like(g), np.where(g < 128, 255, 0).astype(np.uint8)], -1)
    Image.fromarray(la, mode="LA").save(d / "la.png")
    save(d / "plain.JPEG", g)
    save(d / "plain.TIFF", g)
    save(d / "plain.bmp", g)
    save(d / "plain.pgm", g)
    save(d / "rgb.ppm", rgb)
    save(d / "rgb.webp", rgb, lossless=True)
    make_class_folder(tmp_path / "d", {"other": 2})
    s = load(tmp_path / "d")
    assert s.meta["counts"]["modes"] == 16
    x = all_images(s)
    y = np.concatenate([s.train_y, s.val_y, s.test_y])
    imgs = x[y == s.classes.index("modes")]
    assert len(imgs) == 16
    for img in imgs:
        assert _ink_centre(img), (img[:6].mean(), img[24:32, 24:32].mean())
    assert s.meta["inverted"] is False


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    g = np.full((32, 32), 30000, np.uint16)   # mid grey in 16 bit
    g[8:24, 8:24] = 0
    save(tmp_path / "d" / "a" / "x.png", g)
    make_class_folder(tmp_path / "d", {"b": 1})
    s = load(tmp_path / "d")
    img = all_images(s)[np.concatenate([s.train_y, s.val_y, s.test_y]) == 0][0]
    assert abs(int(img[0, 0]) - round(30000 / 257)) <= 2


def test_odd_sizes_keep_aspect_ratio(tmp_path):
    wide = np.full((40, 300), PAPER, np.uint8)
    wide[5:35, 100:200] = INK
    tall = np.full((71, 13), PAPER, np.uint8)
    tall[10:60, 3:10] = INK
    save(tmp_path / "d" / "a" / "wide.png", wide)
    save(tmp_path / "d" / "b" / "tall.png", tall)
    s = load(tmp_path / "d")
    x, y = all_images(s), np.concatenate([s.train_y, s.val_y, s.test_y])
    w, t = x[y == 0][0], x[y == 1][0]
    rows = np.flatnonzero((w < 128).any(axis=1))
    cols = np.flatnonzero((w < 128).any(axis=0))
    # 300x40 padded to 300x300: ink band 30/300*56 ~ 5.6 rows tall, centred on 28
    assert rows.min() >= 22 and rows.max() <= 33, rows
    assert cols.min() >= 16 and cols.max() <= 40, cols
    assert w[0].mean() > 220 and w[-1].mean() > 220  # padding is paper-coloured
    rows = np.flatnonzero((t < 128).any(axis=1))
    cols = np.flatnonzero((t < 128).any(axis=0))
    assert rows.min() >= 5 and rows.max() <= 50
    assert cols.min() >= 20 and cols.max() <= 36, cols  # narrow column, not stretched


def test_exif_orientation_is_applied(tmp_path):
    g = np.full((40, 40), PAPER, np.uint8)
    g[:, 2:12] = INK                      # stored: ink on the left
    exif = Image.Exif()
    exif[0x0112] = 6                      # "rotate 90 CW to display" -> ink on top
    save(tmp_path / "d" / "a" / "rot.jpg", g, exif=exif.tobytes(), quality=95)
    make_class_folder(tmp_path / "d", {"b": 1})
    s = load(tmp_path / "d")
    img = all_images(s)[np.concatenate([s.train_y, s.val_y, s.test_y]) == 0][0]
    assert img[:14].mean() < 100 and img[:, :14].mean() > 150


def test_stray_files_are_skipped_and_counted(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 3, "b": 3})
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "README.txt").write_text("scans of 1780 type")
    (root / "a" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "a" / "desktop.ini").write_text("[.ShellClassInfo]")
    (root / "a" / "labels.csv").write_text("file,label\n")
    (root / "a" / ".hidden.png").write_bytes(b"not an image")     # hidden: skipped, no error
    (root / "b" / "._img0003.png").write_bytes(b"AppleDouble")
    (root / "b" / ".thumbs").mkdir()
    (root / "b" / ".thumbs" / "t.png").write_bytes(b"x")
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "._img0000.png").write_bytes(b"AppleDouble")
    (root / "a" / "__MACOSX").mkdir()
    (root / "a" / "__MACOSX" / "._x.png").write_bytes(b"AppleDouble")
    save(root / "loose.png", glyph(1))
    s = load(root)
    assert s.classes == ["a", "b"]
    assert s.meta["counts"] == {"a": 3, "b": 3}
    sk = s.meta["skipped"]
    assert sk["hidden"] == 4
    assert sk["system"] == 2
    assert sk["non_image"] == 2
    assert sk["macosx"] == 2
    assert sk["outside_class_folder"] == 1
    assert sk["total"] == 11


def test_nested_folders_symlinks_and_uppercase_extensions(tmp_path):
    root = tmp_path / "d"
    save(root / "a" / "batch1" / "deep" / "x.PNG", glyph(1))
    save(root / "a" / "batch2" / "y.Jpg", glyph(2))
    save(root / "a" / "z.TIF", glyph(3))
    outside = make_class_folder(tmp_path / "elsewhere", {"b": 2}, ext=".BMP", start=10)
    try:
        os.symlink(outside / "b", root / "b")
        os.symlink(root / "a" / "z.TIF", root / "a" / "batch2" / "link.tif")
        os.symlink(root / "a", root / "a" / "batch1" / "loop")   # symlink loop
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not supported here")
    s = load(root)
    assert s.classes == ["a", "b"]
    assert s.meta["counts"]["b"] == 2
    # x, y, z, link.tif (+ the loop re-enters 'a' at most once, never infinitely)
    assert 4 <= s.meta["counts"]["a"] <= 8


def test_deterministic_file_order(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 12, "b": 12})
    s1, s2 = load(root), load(root)
    assert all(np.array_equal(a, b) for a, b in zip(all_images(s1), all_images(s2)))


# ----------------------------------------------------------------------------- polarity
def test_light_on_dark_dataset_is_inverted(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 4, "b": 4}, paper=15, ink=235)
    s = load(root)
    assert s.meta["inverted"] is True
    for img in all_images(s):
        assert img[0].mean() > 200 and img.min() < 60


def test_minority_of_dark_images_does_not_invert(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 4, "b": 4})
    save(root / "a" / "dark.png", glyph(50, paper=15, ink=235))
    s = load(root)
    assert s.meta["inverted"] is False
    assert np.median(all_images(s)[:, 0].mean(axis=1)) > 200


def test_output_range_and_default_size(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 3, "b": 3})
    s = load(root)
    x = all_images(s)
    assert x.shape == (6, 56, 56) and x.dtype == np.uint8
    assert int(x.min()) <= INK + 15 and int(x.max()) >= PAPER - 5


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    root = make_class_folder(tmp_path / "d", {"a": 3, "b": 3})
    load_image_folder(root, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "loading images" in err
    load_image_folder(root, progress=False)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_extensions_constant():
    for e in ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif", "webp", "pgm", "ppm", "pbm"):
        assert "." + e in IMAGE_EXTENSIONS


# ----------------------------------------------------------------------------- errors
def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_error_missing_path(tmp_path):
    with pytest.raises(DataError) as e:
        load(tmp_path / "no_such_folder")
    msg = _one_line(e)
    assert "no_such_folder" in msg and "does not exist" in msg


def test_error_path_is_file(tmp_path):
    f = save(tmp_path / "single.png", glyph())
    with pytest.raises(DataError) as e:
        load(f)
    msg = _one_line(e)
    assert "single.png" in msg and "not a folder" in msg


def test_error_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        load(tmp_path / "empty")
    msg = _one_line(e)
    assert "empty" in msg and "<class>" in msg


def test_error_only_stray_files(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "d" / "__MACOSX").mkdir()
    with pytest.raises(DataError) as e:
        load(tmp_path / "d")
    assert "<class>" in _one_line(e)


def test_error_images_without_class_folders(tmp_path):
    for i in range(3):
        save(tmp_path / "flat" / f"{i}.png", glyph(i))
    with pytest.raises(DataError) as e:
        load(tmp_path / "flat")
    msg = _one_line(e)
    assert "flat" in msg and "no class sub-folders" in msg and "3 image files" in msg


def test_error_class_folder_without_images(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "c_empty").mkdir()
    (root / "c_empty" / "notes.txt").write_text("todo")
    with pytest.raises(DataError) as e:
        load(root)
    msg = _one_line(e)
    assert "c_empty" in msg and "no images" in msg


def test_error_single_class(tmp_path):
    root = make_class_folder(tmp_path / "d", {"alpha": 5})
    with pytest.raises(DataError) as e:
        load(root)
    msg = _one_line(e)
    assert "found 1 class 'alpha'" in msg and str(root) in msg and "at least 2" in msg


@pytest.mark.parametrize("kind", ["zero_bytes", "text", "truncated", "garbage_jpg"])
def test_error_corrupt_image(tmp_path, kind):
    root = make_class_folder(tmp_path / "d", {"a": 3, "b": 3})
    if kind == "zero_bytes":
        bad = root / "b" / "broken.png"
        bad.write_bytes(b"")
    elif kind == "text":
        bad = root / "b" / "broken.png"
        bad.write_text("this is not really a PNG\n")
    elif kind == "truncated":
        good = save(tmp_path / "full.png", (np.random.default_rng(0).random((64, 64)) * 255)
                    .astype(np.uint8))
        bad = root / "a" / "broken.png"
        bad.write_bytes(good.read_bytes()[:200])
    else:
        bad = root / "a" / "broken.jpg"
        bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 50)
    with pytest.raises(DataError) as e:
        load(root)
    msg = _one_line(e)
    assert str(bad) in msg and "delete" in msg and "re-export" in msg


def test_error_broken_symlink(tmp_path):
    root = make_class_folder(tmp_path / "d", {"a": 2, "b": 2})
    bad = root / "a" / "gone.png"
    try:
        os.symlink(tmp_path / "missing.png", bad)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not supported here")
    with pytest.raises(DataError) as e:
        load(root)
    msg = _one_line(e)
    assert str(bad) in msg and "broken symbolic link" in msg


def test_error_pre_split_without_train(tmp_path):
    root = tmp_path / "d"
    make_class_folder(root / "val", {"a": 2, "b": 2})
    make_class_folder(root / "test", {"a": 2, "b": 2}, start=10)
    with pytest.raises(DataError) as e:
        load(root)
    msg = _one_line(e)
    assert str(root) in msg and "'train'" in msg


def test_error_class_missing_from_train(tmp_path):
    root = tmp_path / "d"
    make_class_folder(root / "train", {"a": 2, "b": 2})
    make_class_folder(root / "test", {"a": 1, "ghost": 1}, start=10)
    with pytest.raises(DataError) as e:
        load(root)
    msg = _one_line(e)
    assert "ghost" in msg and "train" in msg


def test_error_mixed_layout(tmp_path):
    root = tmp_path / "d"
    make_class_folder(root / "train", {"a": 2, "b": 2})
    make_class_folder(root, {"c": 2}, start=10)
    with pytest.raises(DataError) as e:
        load(root)
    assert "'c'" in _one_line(e)


def test_errors_are_data_errors_not_generic():
    from glyph_ebm.errors import GlyphEBMError
    assert issubclass(DataError, GlyphEBMError)
