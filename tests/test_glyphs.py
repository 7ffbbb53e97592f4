"""Tests of the embedded glyph generator (glyph_ebm.glyphs). Small set only: fast."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from glyph_ebm import glyphs
from glyph_ebm.datasets import Splits, stratified_split
from glyph_ebm.errors import ConfigError

SIZES_FULL = (11_319, 2_426, 2_426)


@pytest.fixture(scope="module")
def small_splits() -> Splits:
    return glyphs.generate(seed=0, small=True, progress=False)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLYPH_EBM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _all(s: Splits):
    return (np.concatenate([s.train_x, s.val_x, s.test_x]),
            np.concatenate([s.train_y, s.val_y, s.test_y]))


def _same(a: Splits, b: Splits) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k))
               for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"))


# --- classes and counts ---------------------------------------------------------------------
def test_classes_and_dirnames():
    assert len(glyphs.CLASSES) == 42
    assert len(set(glyphs.CLASSES)) == 42
    assert all(len(c) == 1 and c.isalpha() for c in glyphs.CLASSES)
    assert glyphs.CLASSES[:26] == list("abcdefghijklmnopqrstuvwxyz")
    assert sum(c.isupper() for c in glyphs.CLASSES) == 16
    assert len(glyphs.CLASS_DIRNAMES) == 42
    # distinct even on a case-insensitive file system
    assert len({d.lower() for d in glyphs.CLASS_DIRNAMES}) == 42
    assert glyphs.CLASS_DIRNAMES[glyphs.CLASSES.index("A")] == "A_upper"
    assert glyphs.CLASS_DIRNAMES[glyphs.CLASSES.index("a")] == "a"


def test_full_set_counts_and_exact_split_sizes():
    counts = glyphs.class_counts(small=False)
    assert counts.shape == (42,) and counts.dtype == np.int64
    assert counts.sum() == 16_171
    assert counts.min() >= 100
    by = dict(zip(glyphs.CLASSES, counts.tolist()))
    # unbalanced like a real corpus: frequent lowercase letters dominate, capitals are rare
    assert by["e"] > 1000 and by["e"] > 5 * by["A"]
    assert min(by[c] for c in "eint") > max(by[c] for c in "ABCDEFGHILMNPRST")
    # fixed table: calling again gives the same, and the numbers are pinned (changing them
    # changes the data set, which needs a GENERATOR_VERSION bump and an update here)
    assert np.array_equal(counts, glyphs.class_counts())
    assert by == {
        "a": 1025, "b": 290, "c": 551, "d": 432, "e": 1429, "f": 207, "g": 242, "h": 195,
        "i": 1334, "j": 124, "k": 112, "l": 480, "m": 717, "n": 859, "o": 741, "p": 456,
        "q": 290, "r": 883, "s": 954, "t": 1025, "u": 978, "v": 242, "w": 112, "x": 171,
        "y": 124, "z": 112, "A": 147, "B": 118, "C": 136, "D": 136, "E": 135, "F": 118,
        "G": 118, "H": 118, "I": 147, "L": 124, "M": 130, "N": 130, "P": 135, "R": 124,
        "S": 135, "T": 135}
    assert glyphs.split_sizes(16_171) == SIZES_FULL

    # the split the full set uses, on its labels only (no images generated)
    labels = np.repeat(np.arange(42), counts)
    tr, va, te = stratified_split(labels, 0, totals=glyphs.split_sizes(len(labels)))
    assert (len(tr), len(va), len(te)) == SIZES_FULL
    assert len(np.unique(np.concatenate([tr, va, te]))) == 16_171
    for k in range(42):   # stratified: each class within one image of its 15 % share
        for part in (va, te):
            share = np.count_nonzero(labels[part] == k)
            assert abs(share - 0.15 * counts[k]) <= 1.0


def test_stratified_split_without_totals_unchanged():
    labels = np.repeat(np.arange(3), [1, 7, 20])
    tr, va, te = stratified_split(labels, 3)
    assert (len(tr), len(va), len(te)) == (20, 4, 4)
    with pytest.raises(ValueError):
        stratified_split(labels, 3, totals=(10, 10, 10))


def test_small_set_shapes_dtypes_and_sizes(small_splits):
    s = small_splits
    assert s.sizes() == {"train": 1470, "val": 315, "test": 315}
    assert s.classes == glyphs.CLASSES and s.num_classes == 42
    assert s.source == "embedded"
    assert s.meta["generator_version"] == glyphs.GENERATOR_VERSION
    assert s.meta["seed"] == 0 and s.meta["small"] is True
    assert len(s.meta["fonts"]) >= 3
    for name in ("train", "val", "test"):
        x, y = s.split(name)
        assert x.dtype == np.uint8 and x.shape[1:] == (56, 56)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert y.min() >= 0 and y.max() < 42
        assert set(np.unique(y)) == set(range(42))        # every class in every split
    x, y = _all(s)
    assert np.array_equal(np.bincount(y, minlength=42), np.full(42, 50))
    # real images: dark ink on light paper, not blank, not saturated
    assert np.all(x.reshape(len(x), -1).min(axis=1) < 120)
    assert np.all(np.median(x.reshape(len(x), -1), axis=1) > 150)


def test_images_within_a_class_differ(small_splits):
    x, y = _all(small_splits)
    for k in range(42):
        imgs = x[y == k]
        assert len({hashlib.sha1(im.tobytes()).hexdigest() for im in imgs}) == len(imgs)
        assert imgs.astype(np.float32).std(axis=0).mean() > 10    # real variation
        assert np.all(imgs.reshape(len(imgs), -1).std(axis=1) > 5)  # no flat image


def test_classes_differ_on_average(small_splits):
    x, y = _all(small_splits)
    means = np.stack([x[y == k].astype(np.float32).mean(axis=0) for k in range(42)])
    # the mean image of 'i' and of 'm' must be clearly different
    i, m = glyphs.CLASSES.index("i"), glyphs.CLASSES.index("m")
    assert np.abs(means[i] - means[m]).mean() > 3


# --- determinism -----------------------------------------------------------------------------
def test_render_glyph_deterministic():
    a = glyphs.render_glyph("e", seed=0, index=17)
    b = glyphs.render_glyph("e", seed=0, index=17)
    assert a.dtype == np.uint8 and a.shape == (56, 56)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, glyphs.render_glyph("e", seed=1, index=17))
    assert not np.array_equal(a, glyphs.render_glyph("e", seed=0, index=18))
    assert not np.array_equal(a, glyphs.render_glyph("o", seed=0, index=17))
    assert glyphs.render_glyph("A", 0, 3, size=32).shape == (32, 32)


def test_generated_set_matches_render_glyph_and_worker_count(small_splits):
    labels = np.repeat(np.arange(42), 50)[:300:7]      # a spread of classes
    one = glyphs.render_many(labels, 0, workers=1)
    two = glyphs.render_many(labels, 0, workers=2)
    assert one.tobytes() == two.tobytes()
    for i in (0, 5, 40):
        assert np.array_equal(one[i], glyphs.render_glyph(glyphs.CLASSES[labels[i]], 0, i))
    # image i of the small set is render_glyph(class, seed, i): find one in the splits
    i = 123
    ref = glyphs.render_glyph(glyphs.CLASSES[i // 50], 0, i)
    x, _ = _all(small_splits)
    assert any(np.array_equal(ref, im) for im in x)


def test_different_seed_gives_different_split_and_images():
    labels = np.repeat(np.arange(42), 50)
    a = stratified_split(labels, 0, totals=glyphs.split_sizes(2100))
    b = stratified_split(labels, 1, totals=glyphs.split_sizes(2100))
    assert not np.array_equal(a[1], b[1])
    x0 = glyphs.render_many(labels[:64], 0)
    x1 = glyphs.render_many(labels[:64], 1)
    assert all(not np.array_equal(p, q) for p, q in zip(x0, x1))


def test_bad_arguments():
    with pytest.raises(ConfigError):
        glyphs.render_glyph("Q", 0, 0)          # not a class
    with pytest.raises(ConfigError):
        glyphs.render_glyph("a", -1, 0)
    with pytest.raises(ConfigError):
        glyphs.render_glyph("a", 0, -3)
    with pytest.raises(ConfigError):
        glyphs.cache_path(seed=-2)


# --- cache -----------------------------------------------------------------------------------
def test_cache_path_naming(tmp_cache, tmp_path):
    p = glyphs.cache_path(seed=3, small=True)
    assert p.parent == tmp_cache
    assert p.name == f"glyphs-v{glyphs.GENERATOR_VERSION}-seed3-small.npz"
    assert glyphs.cache_path(seed=3).name.endswith("-seed3-full.npz")
    assert glyphs.cache_path(seed=3, cache_dir=tmp_path / "x").parent == tmp_path / "x"


def _counting_generate(monkeypatch, splits):
    calls = []

    def fake(seed=0, small=False, progress=True, workers=None):
        calls.append((seed, small))
        return splits

    monkeypatch.setattr(glyphs, "generate", fake)
    return calls


def test_cache_written_then_hit_without_regenerating(tmp_cache, monkeypatch, small_splits):
    calls = _counting_generate(monkeypatch, small_splits)
    first = glyphs.load_glyphs(seed=0, small=True, progress=False)
    assert calls == [(0, True)]
    path = glyphs.cache_path(seed=0, small=True)
    assert path.is_file()
    assert list(tmp_cache.iterdir()) == [path]       # no temp files left behind

    def boom(*a, **k):
        raise AssertionError("generate() called although the cache is valid")

    monkeypatch.setattr(glyphs, "generate", boom)
    second = glyphs.load_glyphs(seed=0, small=True, progress=False)
    assert _same(first, second) and _same(second, small_splits)
    assert second.classes == glyphs.CLASSES
    assert second.meta == small_splits.meta
    assert second.source == "embedded"
    # another seed is another file: it must be generated
    with pytest.raises(AssertionError):
        glyphs.load_glyphs(seed=1, small=True, progress=False)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_is_regenerated(tmp_cache, monkeypatch, capsys, small_splits, damage):
    calls = _counting_generate(monkeypatch, small_splits)
    glyphs.load_glyphs(seed=0, small=True, progress=False)
    path = glyphs.cache_path(seed=0, small=True)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"this is not a zip file" * 10)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    capsys.readouterr()
    again = glyphs.load_glyphs(seed=0, small=True, progress=False)
    assert len(calls) == 2
    assert "regenerating" in capsys.readouterr().err
    assert _same(again, small_splits)
    # and the rewritten file is good again
    monkeypatch.setattr(glyphs, "generate", lambda *a, **k: pytest.fail("regenerated"))
    assert _same(glyphs.load_glyphs(seed=0, small=True, progress=False), small_splits)


def test_cache_of_wrong_set_is_regenerated(tmp_cache, monkeypatch, small_splits):
    calls = _counting_generate(monkeypatch, small_splits)
    path = glyphs.cache_path(seed=0, small=True)
    path.parent.mkdir(parents=True)
    # a valid npz, but with a shape that does not match the small set
    np.savez_compressed(path, train_x=np.zeros((2, 56, 56), np.uint8))
    assert _same(glyphs.load_glyphs(seed=0, small=True, progress=False), small_splits)
    assert len(calls) == 1


# --- output helpers --------------------------------------------------------------------------
def _few(s: Splits, per_class: int = 2) -> Splits:
    def take(x, y):
        keep = np.concatenate([np.flatnonzero(y == k)[:per_class] for k in range(42)])
        return x[keep], y[keep]
    tx, ty = take(s.train_x, s.train_y)
    vx, vy = take(s.val_x, s.val_y)
    ex, ey = take(s.test_x, s.test_y)
    return Splits(tx, ty, vx, vy, ex, ey, classes=list(s.classes), meta=dict(s.meta))


def test_write_image_folder_pooled(tmp_path, small_splits):
    s = _few(small_splits)
    glyphs.write_image_folder(s, tmp_path / "flat")
    dirs = sorted(p.name for p in (tmp_path / "flat").iterdir())
    assert dirs == sorted(glyphs.CLASS_DIRNAMES)
    for k, d in enumerate(glyphs.CLASS_DIRNAMES):
        files = sorted((tmp_path / "flat" / d).glob("*.png"))
        assert len(files) == 6            # 2 train + 2 val + 2 test
        first = np.asarray(Image.open(files[0]))
        assert first.dtype == np.uint8 and first.shape == (56, 56)
        assert np.array_equal(first, s.train_x[s.train_y == k][0])


def test_write_image_folder_pre_split(tmp_path, small_splits):
    s = _few(small_splits, per_class=1)
    glyphs.write_image_folder(s, tmp_path / "pre", pre_split=True)
    assert sorted(p.name for p in (tmp_path / "pre").iterdir()) == ["test", "train", "val"]
    for name in ("train", "val", "test"):
        x, y = s.split(name)
        for k, d in enumerate(glyphs.CLASS_DIRNAMES):
            files = sorted((tmp_path / "pre" / name / d).glob("*.png"))
            assert len(files) == 1
            assert np.array_equal(np.asarray(Image.open(files[0])), x[y == k][0])


def test_contact_sheet_and_cli(tmp_path, tmp_cache, monkeypatch, small_splits):
    out = tmp_path / "sheet.png"
    glyphs.contact_sheet(small_splits, out, per_class=4)
    im = Image.open(out)
    assert im.height > im.width > 100          # 42 rows of 4 images: tall
    arr = np.asarray(im.convert("L"))
    assert arr.min() < 60 and arr.max() > 200

    _counting_generate(monkeypatch, small_splits)
    out2 = tmp_path / "docs" / "g.png"
    assert glyphs.main(["--out", str(out2), "--small", "--quiet"]) == 0
    assert out2.is_file()
    assert glyphs.main(["--out", str(out2), "--seed", "-1", "--quiet"]) == 2


def test_missing_font_folder_falls_back_to_dejavu(tmp_path, monkeypatch):
    monkeypatch.setenv("GLYPH_EBM_FONT_DIR", str(tmp_path / "no-fonts"))
    with pytest.warns(RuntimeWarning, match="DejaVu"):
        img = glyphs.render_glyph("g", 0, 1)
    assert img.shape == (56, 56) and img.min() < 120
    assert "fallbackfonts" in glyphs.cache_path(0, small=True, cache_dir=tmp_path).name


def test_pixels_match_the_pinned_fingerprint_of_this_generator_version():
    """Any change to the rendered pixels must bump GENERATOR_VERSION (it keys the cache), or
    old caches would silently serve different images; then update the fingerprint here."""
    import hashlib

    imgs = np.stack([glyphs.render_glyph(c, seed=0, index=i) for i, c in enumerate("aegRST")])
    digest = hashlib.sha256(imgs.tobytes()).hexdigest()
    assert (glyphs.GENERATOR_VERSION, digest) == (
        "2", "560277184e8f8d5b842444cfed63a04d5247029a65ada8f856dc50c693d7ff64"), \
        "the generator's output changed: bump GENERATOR_VERSION and update this fingerprint"
