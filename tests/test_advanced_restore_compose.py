"""Restoration (inpainting, denoising), cross-class mapping, compositions and chain starts, on
energies with known answers (quadratic toys) and the reference CNN."""
import pytest
import torch

from conftest import SOLUTIONS  # noqa: F401
from ex3_model import CNNModel
from glyph_course.advanced.chains import compare_chain_inits
from glyph_course.advanced.compose import (class_energy, composition_report, cross_class_rate, ink_coverage,
                                        ink_weight_energy, sample_composition, sum_energies)
from glyph_course.advanced.restore import centre_mask, corrupt, denoise, inpaint, inpainting_report, mean_fill
from glyph_ebm.errors import GlyphEBMError
from glyph_ebm.checks.toys import QuadraticEnergy


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _glyph(h=16, w=16):
    x = torch.ones(1, 1, h, w)
    x[..., 3:13, 6:10] = -1.0
    return x


def test_centre_mask_covers_thirty_percent_in_the_middle():
    m = centre_mask((8, 1, 56, 56))
    assert m.shape == (1, 1, 56, 56) and m.dtype == torch.bool
    assert abs(float(m.float().mean()) - 0.3) < 0.01
    rows, cols = torch.nonzero(m[0, 0], as_tuple=True)
    assert int(rows.min()) + int(rows.max()) in (55, 54) and int(cols.min()) + int(cols.max()) in (55, 54)
    with pytest.raises(GlyphEBMError, match="hidden fraction"):
        centre_mask((56, 56), frac=1.0)


def test_inpainting_keeps_the_visible_pixels_bitwise():
    torch.manual_seed(0)
    model = CNNModel(num_classes=4, hidden=4)
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    hole = centre_mask(images.shape)
    out, kept = inpaint(model, images, hole, steps=6, step_size=100.0, noise=0.2, grad_clip=None,
                        keep_steps=range(7))
    visible = (~hole).expand_as(images)
    for x in kept.values():
        assert torch.equal(x[visible], images[visible])
    assert not torch.equal(out[~visible], images[~visible])
    assert out.min() >= -1 and out.max() <= 1


def test_inpainting_report_on_an_energy_that_knows_the_answer():
    clean = _glyph().repeat(4, 1, 1, 1)
    toy = QuadraticEnergy(clean[:1], precision=1.0)              # the energy's minimum is the glyph itself
    report = inpainting_report(toy, clean, steps=60, step_size=0.5, noise=0.0, grad_clip=None, frac=0.3)
    hole = centre_mask(clean.shape)
    by_hand = float((mean_fill(clean, hole.expand_as(clean)) - clean)[hole.expand_as(clean)].pow(2).mean())
    assert report["mse_mean_fill"] == pytest.approx(by_hand)
    assert report["mse_restored"] < 1e-6 and report["ratio"] == pytest.approx(report["mse_restored"] / by_hand)


def test_averaging_chains_estimates_the_posterior_mean():
    """One noisy chain is a sample; the mean of many is closer to the truth, visible pixels intact."""
    clean = _glyph().repeat(4, 1, 1, 1)
    toy = QuadraticEnergy(clean[:1], precision=1.0)
    hole = centre_mask(clean.shape)
    sgld = dict(steps=40, step_size=0.5, noise=0.3, grad_clip=None, fill="noise", seed=0)
    one = inpainting_report(toy, clean, hole, chains=1, **sgld)
    many = inpainting_report(toy, clean, hole, chains=16, **sgld)
    assert many["mse_restored"] < 0.6 * one["mse_restored"]     # measured ~0.47 (clamping at +-1 biases)
    assert many["factor"] == pytest.approx(many["mse_mean_fill"] / many["mse_restored"])
    out = inpaint(toy, clean, hole, chains=16, **sgld)
    assert out.shape == clean.shape
    assert torch.equal(out[~hole.expand_as(clean)], clean[~hole.expand_as(clean)])
    with pytest.raises(GlyphEBMError, match="chains"):
        inpaint(toy, clean, hole, chains=0)


def test_corruption_and_denoising():
    clean = _glyph().repeat(8, 1, 1, 1)
    noisy = corrupt(clean, "salt_pepper", amount=0.2, seed=0)
    changed = float((noisy != clean).float().mean())
    assert 0.05 < changed < 0.2                                   # half the hits land on their own colour
    assert torch.equal(noisy, corrupt(clean, "salt_pepper", amount=0.2, seed=0))
    toy = QuadraticEnergy(clean[:1], precision=1.0)
    restored = denoise(toy, noisy, steps=30, step_size=0.3, noise=0.0, grad_clip=None)
    assert (restored - clean).pow(2).mean() < 0.01 * (noisy - clean).pow(2).mean()
    with pytest.raises(GlyphEBMError, match="unknown corruption"):
        corrupt(clean, "blur")


def _two_class_toy():
    centres = torch.stack([torch.full((1, 8, 8), -0.5), torch.full((1, 8, 8), 0.5)])
    return QuadraticEnergy(centres, precision=1.0)


def test_cross_class_mapping_reaches_the_target_class():
    toy = _two_class_toy()
    g = torch.Generator().manual_seed(0)
    images = (-0.5 + 0.05 * torch.randn(6, 1, 8, 8, generator=g)).clamp(-1, 1)   # class 0
    source, target = torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.long)
    rate = cross_class_rate(toy, toy, images, source, target, steps=40, step_size=0.2, noise=0.0, grad_clip=None)
    assert rate == {"target_before": 0.0, "target_after": 1.0, "source_after": 0.0, "n": 6}


def test_energies_add_and_the_ink_energy_reaches_its_target():
    toy = _two_class_toy()
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    f0, f1 = class_energy(toy, 0), class_energy(toy, 1)
    torch.testing.assert_close(f0(x), toy.get_logits(x)[:, 0])
    torch.testing.assert_close(sum_energies([f0, f1], [2.0, 0.5])(x), 2 * f0(x) + 0.5 * f1(x))
    assert torch.allclose(ink_coverage(torch.full((2, 1, 4, 4), -1.0)), torch.ones(2))
    samples = sample_composition(ink_weight_energy(0.3, strength=1.0), 8, (1, 16, 16), steps=60,
                                 step_size=1.0, noise=0.0, grad_clip=None)
    assert torch.allclose(ink_coverage(samples), torch.full((8,), 0.3), atol=0.01)
    both = sample_composition(sum_energies([f0, f1]), 4, (1, 8, 8), steps=80, step_size=0.3, noise=0.0,
                              grad_clip=None)
    torch.testing.assert_close(both, torch.zeros_like(both), atol=1e-3, rtol=0)   # product of two Gaussians
    with pytest.raises(GlyphEBMError, match="ink coverage target"):
        ink_weight_energy(1.5)


def test_composition_report_against_the_closed_form():
    """Quadratic class energies around -0.5 and +0.5: their sum has its minimum at 0, where the
    judge (the same toy) cannot tell the classes apart (p = 1/2 each). Class 1 plus the ink energy
    with target t and strength s settles at the pixel value v = (1/2 + s/2 - s t) / (1 + s/2)."""
    toy = _two_class_toy()
    sgld = dict(step_size=0.3, noise=0.0, grad_clip=None)
    rep = composition_report(toy, toy, [(0, 1)], ink_targets=(0.2,), label_for_ink=1, n=4, steps=80,
                             img_shape=(1, 8, 8), **sgld)
    assert len(rep["pairs"]) == 1 and len(rep["ink"]) == 2
    row = rep["pairs"][0]
    assert row["p_a|a"] > 0.999 and row["p_b|b"] > 0.999 and row["p_b|a"] < 1e-3
    assert row["p_a|a+b"] == pytest.approx(0.5, abs=1e-3) and row["p_b|a+b"] == pytest.approx(0.5, abs=1e-3)
    alone, with_ink = rep["ink"]
    v = (0.5 + 0.5 - 0.2) / 1.5
    assert alone["coverage"] == pytest.approx(0.25, abs=1e-4)            # (1 - 0.5) / 2
    assert with_ink["coverage"] == pytest.approx((1 - v) / 2, abs=1e-4)
    assert with_ink["judge_says_class"] == 1.0


def test_compare_chain_inits_runs_all_three_starts():
    """f = -|x|^2 / 2, no noise: each step multiplies x by 0.9, so after 10 steps a chain has moved
    (1 - 0.9^10) |x0| and its energy |x|^2 / 2 has shrunk by 0.81^10."""
    toy = QuadraticEnergy(torch.zeros(1, 1, 8, 8), precision=1.0)
    data = torch.full((20, 1, 8, 8), 0.1)
    buffer = torch.full((10, 1, 8, 8), 0.5)
    out = compare_chain_inits(toy, data, steps=10, step_size=0.1, noise=0.0, buffer=buffer, n=6)
    assert list(out) == ["persistent", "data", "noise"]
    shrink = 1 - 0.9 ** 10
    for mode, level in (("persistent", 0.5), ("data", 0.1)):                # |x0| = 8 * level (64 pixels)
        assert out[mode]["moved"] == pytest.approx(shrink * 8 * level, rel=1e-5), mode
        assert out[mode]["energy_start"] == pytest.approx(32 * level ** 2, rel=1e-5), mode
        assert out[mode]["energy_end"] == pytest.approx(32 * level ** 2 * 0.81 ** 10, rel=1e-5), mode
    noise = out["noise"]                                                   # U(-1, 1) starts: E = 64/6 on average
    assert noise["energy_end"] == pytest.approx(noise["energy_start"] * 0.81 ** 10, rel=1e-5)
    assert 8 < noise["energy_start"] < 13 and noise["moved"] > out["data"]["moved"]
    assert list(compare_chain_inits(toy, data, steps=1, step_size=0.1, noise=0.0, n=2)) == ["data", "noise"]
