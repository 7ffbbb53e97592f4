"""Tests for glyph_ebm.ood (out-of-distribution test sets). ID fixtures are made here."""
from __future__ import annotations


import numpy as np
import pytest

from glyph_ebm.datasets import to_tensor
from glyph_ebm.errors import ConfigError
from glyph_ebm.glyphs import GENERATOR_VERSION
from glyph_ebm.ood import OOD_SETS, RENDERED, RENDERED_MAX, describe, make_ood_sets, rendered_set

PAPER, INK = 228, 18


def fake_glyphs(n: int = 40, seed: int = 0) -> np.ndarray:
    """Asymmetric 'F'-like glyphs (dark ink on light paper) at random positions/sizes."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 56, 56), PAPER, np.uint8)
    for i in range(n):
        top, left = rng.integers(8, 16), rng.integers(10, 22)
        h, w = rng.integers(26, 36), rng.integers(16, 24)
        t = rng.integers(3, 6)
        x[i, top:top + h, left:left + t] = INK                    # stem
        x[i, top:top + t, left:left + w] = INK                    # top arm
        x[i, top + h // 2:top + h // 2 + t, left:left + w // 2] = INK   # middle arm
        x[i] = np.clip(x[i].astype(int) + rng.integers(-6, 7, (56, 56)), 0, 255)
    return x


@pytest.fixture(scope="module")
def id_images():
    return fake_glyphs()


@pytest.fixture(scope="module")
def sets(id_images):
    return make_ood_sets(id_images, seed=0)


def ink(a: np.ndarray) -> np.ndarray:
    return (a < 128).sum(axis=(-2, -1))


def test_keys_shapes_dtypes(id_images, sets):
    assert OOD_SETS == ("noise", "uniform", "rotated", "flipped", "small", "digits",
                        "blank", "blots", "between", "degraded", "symbols")
    assert tuple(sets) == OOD_SETS
    for name, a in sets.items():
        assert a.dtype == np.uint8, name
        assert a.shape == id_images.shape, name
        t = to_tensor(a)
        assert t.shape == (len(a), 1, 56, 56)
        assert float(t.min()) >= -1.0 and float(t.max()) <= 1.0


@pytest.mark.parametrize("n", [0, 7, 40, 95])
def test_n_controls_size(id_images, n):
    out = make_ood_sets(id_images, n=n, seed=1)
    assert all(a.shape == (n, 56, 56) for a in out.values())


def test_names_subset_and_independence(id_images, sets):
    sub = make_ood_sets(id_images, seed=0, names=("small", "noise"))
    assert tuple(sub) == ("small", "noise")
    assert np.array_equal(sub["small"], sets["small"])
    assert np.array_equal(sub["noise"], sets["noise"])


def test_deterministic_per_seed(id_images, sets):
    again = make_ood_sets(id_images, seed=0)
    other = make_ood_sets(id_images, seed=1)
    for name in OOD_SETS:
        assert np.array_equal(sets[name], again[name]), name
    for name in ("noise", "uniform", "rotated", "small", "digits"):
        assert not np.array_equal(sets[name], other[name]), name


def test_unknown_name_and_describe():
    for name in OOD_SETS:
        d = describe(name)
        assert isinstance(d, str) and d and "\n" not in d
    assert len({describe(nm) for nm in OOD_SETS}) == len(OOD_SETS)
    with pytest.raises(ConfigError, match="blurry"):
        describe("blurry")
    with pytest.raises(ConfigError, match="blurry"):
        make_ood_sets(fake_glyphs(3), names=("noise", "blurry"))


def test_rejects_wrong_input():
    with pytest.raises(ValueError):
        make_ood_sets(np.zeros((3, 56, 56), np.float32))
    with pytest.raises(ValueError):
        make_ood_sets(np.zeros((56, 56), np.uint8))


def test_noise_statistics(sets):
    g = sets["noise"].astype(float)
    assert abs(g.mean() - 127.5) < 2
    assert 55 < g.std() < 66
    u = sets["uniform"].astype(float)
    assert abs(u.mean() - 127.5) < 2
    assert abs(u.std() - 255 / np.sqrt(12)) < 3
    assert u.min() == 0 and u.max() == 255
    # noise is bell-shaped, uniform is flat: noise has more mass near the middle
    band = lambda a: ((a > 107) & (a < 148)).mean()  # noqa: E731
    assert band(g) > 1.3 * band(u)
    assert 0.01 < (g == 0).mean() < 0.04   # clipped tail of N(127.5, 64)


def test_rotated_is_rot90_of_id(id_images, sets):
    r = sets["rotated"]
    ks = []
    for i in range(len(r)):
        if np.array_equal(r[i], np.rot90(id_images[i], 1)):
            ks.append(1)
        elif np.array_equal(r[i], np.rot90(id_images[i], 3)):
            ks.append(3)
        else:
            pytest.fail(f"rotated[{i}] is not a 90-degree rotation of id_images[{i}]")
    assert set(ks) == {1, 3}  # both directions occur


def test_rotated_subset_comes_from_id(id_images):
    r = make_ood_sets(id_images, n=10, seed=4, names=("rotated",))["rotated"]
    flat = {id_images[j].tobytes() for j in range(len(id_images))}
    for img in r:
        assert np.rot90(img, 1).tobytes() in flat or np.rot90(img, 3).tobytes() in flat


def test_flipped_is_upside_down(id_images, sets):
    f = sets["flipped"]
    assert np.array_equal(f, id_images[:, ::-1, :])
    assert not np.array_equal(f, id_images[:, :, ::-1])


def test_small_has_less_ink_centred_on_paper(id_images, sets):
    s = sets["small"]
    ratio = ink(s) / ink(id_images)
    assert np.all(ratio > 0.05) and np.all(ratio < 0.45), ratio
    for img, src in zip(s, id_images):
        rows = np.flatnonzero((img < 128).any(axis=1))
        cols = np.flatnonzero((img < 128).any(axis=0))
        assert rows.max() - rows.min() < 0.6 * 56 and cols.max() - cols.min() < 0.6 * 56
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        assert abs(np.median(border) - np.median(src[0])) <= 8    # paper-coloured background
        assert img.max() <= src.max()                              # no bright halo
    # shrunk towards the centre: the ink centroid of a small glyph is near the middle
    ys, xs = np.nonzero(s[0] < 128)
    assert abs(ys.mean() - 27.5) < 8 and abs(xs.mean() - 27.5) < 8


def test_digits_dark_on_light_with_margin(sets):
    d = sets["digits"]
    assert d[:, :5].min() == 255 and d[:, -5:].min() == 255    # margin of paper
    assert d[:, :, :5].min() == 255 and d[:, :, -5:].min() == 255
    assert np.median(d.reshape(len(d), -1), axis=1).min() > 200  # mostly paper
    assert np.all(d.reshape(len(d), -1).min(axis=1) < 60)        # every digit has dark ink
    ink_frac = (d < 128).mean(axis=(1, 2))
    assert np.all(ink_frac > 0.03) and np.all(ink_frac < 0.5)
    assert len({img.tobytes() for img in d}) > 20                   # varied samples


def test_digits_come_from_sklearn():
    from sklearn.datasets import load_digits

    d = make_ood_sets(fake_glyphs(5), n=30, seed=2, names=("digits",))["digits"]
    bank = load_digits().images                                       # 0..16, 16 = ink
    # downsample the central 42x42 box back to 8x8 and match a sklearn digit closely
    for img in d[:10]:
        core = img[7:49, 7:49].astype(float)
        ink_map = 1 - core / 255.0
        coarse = np.array([[ink_map[int(r * 5.25):int((r + 1) * 5.25),
                                    int(c * 5.25):int((c + 1) * 5.25)].mean()
                            for c in range(8)] for r in range(8)])
        err = np.abs(bank / 16.0 - coarse).mean(axis=(1, 2))
        assert err.min() < 0.08, err.min()


def test_sets_differ_from_id(id_images, sets):
    for name, a in sets.items():
        diff = np.abs(a.astype(int) - id_images.astype(int)).mean()
        assert diff > 5, (name, diff)


def test_full_size_sets():
    x = fake_glyphs(2426, seed=5)
    out = make_ood_sets(x)
    assert all(len(a) == (min(2426, RENDERED_MAX) if name in RENDERED else 2426) for name, a in out.items())


# -- the sets drawn by the glyph generator -------------------------------------------------------
@pytest.fixture(scope="module")
def crops():
    """40 real glyphs and 40 crops of every rendered kind, at the glyphs' size."""
    from glyph_ebm.glyphs import CLASSES, render_many

    glyphs = render_many(np.arange(40) % len(CLASSES), seed=0)
    return glyphs, {kind: rendered_set(kind, 40, 56, seed=0) for kind in RENDERED}


def dark(a: np.ndarray) -> np.ndarray:
    """Share of clearly inked pixels per image (darker than the paper by a margin)."""
    paper = np.median(a.reshape(len(a), -1), axis=1)[:, None, None]
    return (a < paper - 60).mean(axis=(1, 2))


def test_rendered_sets_are_deterministic_and_cached(crops, tmp_path, monkeypatch):
    _, made = crops
    monkeypatch.setenv("GLYPH_EBM_CACHE", str(tmp_path))
    for kind in RENDERED:
        first = rendered_set(kind, 12, 56, seed=3)
        assert len(list(tmp_path.glob(f"ood-v{GENERATOR_VERSION}-{kind}-*-seed3-n12-56px.npz"))) == 1
        assert np.array_equal(first, rendered_set(kind, 12, 56, seed=3))            # from the cache
        assert not np.array_equal(first, rendered_set(kind, 12, 56, seed=4))
    kinds = list(RENDERED)
    for a, b in zip(kinds, kinds[1:]):
        assert not np.array_equal(made[a], made[b]), (a, b)


def test_blank_crops_have_no_ink_and_blots_have_blobs_but_no_letter(crops):
    glyphs, made = crops
    assert np.median(dark(made["blank"])) < 0.002 < np.median(dark(glyphs))
    blots = dark(made["blots"])
    assert (blots > 0.005).mean() > 0.9                       # ink on (almost) every crop
    assert np.median(dark(made["blank"])) < np.median(blots)


def test_crops_between_letters_have_ink_at_both_sides(crops):
    glyphs, made = crops

    def both_sides(a):
        paper = np.median(a.reshape(len(a), -1), axis=1)[:, None, None]
        inked = a < paper - 60
        return (inked[:, :, :14].mean(axis=(1, 2)) > 0.01) & (inked[:, :, -14:].mean(axis=(1, 2)) > 0.01)

    assert both_sides(made["between"]).mean() > 0.7
    assert both_sides(made["between"]).mean() > both_sides(glyphs).mean() + 0.3


def test_degraded_glyphs_are_blurred_and_broken(crops):
    glyphs, made = crops

    def sharpness(a):
        a = a.astype(float)
        return (np.abs(np.diff(a, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(a, axis=2)).mean(axis=(1, 2)))

    assert np.median(sharpness(made["degraded"])) < 0.6 * np.median(sharpness(glyphs))
    assert np.median(dark(made["degraded"])) < np.median(dark(glyphs))


def test_symbols_are_marks_of_the_types_that_are_no_letters_of_the_set(crops):
    from glyph_ebm.glyphs import CLASSES, SYMBOLS, _fonts, _symbols

    assert not set(SYMBOLS) & set(CLASSES)
    for path, name, _ in _fonts()[0]:
        marks = _symbols(path)
        assert marks and set(marks) <= set(SYMBOLS), name
    _, made = crops
    assert (dark(made["symbols"]) > 0.01).mean() > 0.9       # something is printed on every crop
