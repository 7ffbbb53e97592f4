"""Building blocks of the advanced chapter: augmentations, multi-scale energy, spectral
normalisation and the chapter's loss terms (the replay buffers are the sampler's:
test_advanced_sampler.py; the EMA of the weights is Lightning's callback: test_advanced_training.py)."""
import pytest
import torch
import torch.nn.functional as F

from conftest import SOLUTIONS  # noqa: F401
from ex3_model import CNNModel
from glyph_course.advanced.augment import GlyphAugment
from glyph_course.advanced.losses import kl_loss, softmax_correction, softmax_weights
from glyph_course.advanced.multiscale import MultiScaleEnergy
from glyph_course.advanced.spectral import apply_spectral_norm, spectral_norms
from glyph_ebm.errors import GlyphEBMError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- augmentations ------------------------------------------------------------------------
def _glyph_batch(n=12):
    g = torch.Generator().manual_seed(0)
    x = torch.ones(n, 1, 28, 28)
    x[:, :, 8:20, 12:16] = -1.0                                  # a dark vertical stroke on paper
    return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_augmentations_keep_shape_and_range_and_are_seeded():
    x = _glyph_batch()
    a = GlyphAugment(seed=3)(x)
    assert a.shape == x.shape and a.dtype == x.dtype and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, GlyphAugment(seed=3)(x))
    assert torch.equal(GlyphAugment()(x, torch.Generator().manual_seed(9)),
                       GlyphAugment(seed=1)(x, torch.Generator().manual_seed(9)))
    assert not torch.equal(a, GlyphAugment(seed=4)(x))
    per_image = (a - x).flatten(1).abs().mean(1)
    assert len(set(per_image.round(decimals=4).tolist())) > 6     # every image its own parameters
    aug = GlyphAugment(seed=3)
    aug(x)
    state = aug.state_dict()
    nxt = aug(x)
    aug.load_state_dict(state)
    assert torch.equal(aug(x), nxt)


def test_zero_strength_is_the_identity_and_strokes_change_the_ink():
    x = _glyph_batch()
    off = GlyphAugment(shift=0, rotate=0, scale=(1, 1), stroke_prob=0, blur_prob=0, contrast=0, ink=0)
    torch.testing.assert_close(off(x), x, atol=1e-5, rtol=0)
    ink = lambda z: ((1 - z) / 2).mean()                            # noqa: E731
    bold = GlyphAugment(shift=0, rotate=0, scale=(1, 1), stroke_prob=1.0, stroke_amount=1.0, blur_prob=0,
                        contrast=0, ink=0, seed=0)
    out = bold(x)
    darker = (out - x).flatten(1).sum(1) < 0                        # thicker strokes on about half the images,
    assert 0 < int(darker.sum()) < len(x)                           # thinner on the rest
    assert ink(out[darker]) > ink(x[darker]) + 0.02 and ink(out[~darker]) < ink(x[~darker]) - 0.02


def test_augmentations_preserve_the_class_but_flips_do_not():
    from glyph_course import pretrained
    from glyph_ebm.datasets import to_tensor
    from glyph_ebm.glyphs import load_glyphs

    model, _ = pretrained.load()
    test_x, test_y = load_glyphs(small=True, progress=False).split("test")
    x, y = to_tensor(test_x), torch.as_tensor(test_y).long()
    with torch.no_grad():
        acc = lambda z: float((model.get_logits(z).argmax(1) == y).float().mean())   # noqa: E731
        clean, augmented, flipped = acc(x), acc(GlyphAugment(seed=0)(x)), acc(x.flip(-1))
    assert augmented > 0.8 * clean and flipped < 0.5 * clean, (clean, augmented, flipped)


def test_bad_augmentation_settings():
    with pytest.raises(GlyphEBMError, match="scale"):
        GlyphAugment(scale=(1.2, 0.9))
    with pytest.raises(GlyphEBMError, match="stroke_prob"):
        GlyphAugment(stroke_prob=1.5)
    with pytest.raises(GlyphEBMError, match=r"\(B, C, H, W\)"):
        GlyphAugment()(torch.zeros(3, 28, 28))


# -- multi-scale --------------------------------------------------------------------------
def test_multiscale_sums_the_logits_of_the_pooled_images():
    torch.manual_seed(0)
    nets = [CNNModel(num_classes=5, hidden=4) for _ in range(3)]
    ms = MultiScaleEnergy(nets, scales=(1, 2, 4))
    x = torch.rand(3, 1, 56, 56) * 2 - 1
    expected = nets[0].get_logits(x) + nets[1].get_logits(F.avg_pool2d(x, 2)) + nets[2].get_logits(F.avg_pool2d(x, 4))
    torch.testing.assert_close(ms.get_logits(x), expected)
    torch.testing.assert_close(ms(x), torch.logsumexp(expected, 1))
    y = torch.tensor([4, 0, 2])
    torch.testing.assert_close(ms(x, y), expected[torch.arange(3), y])
    single = MultiScaleEnergy([nets[0]], scales=(1,))
    torch.testing.assert_close(single(x), nets[0](x))
    with pytest.raises(GlyphEBMError, match="one network per scale"):
        MultiScaleEnergy(nets[:2], scales=(1, 2, 4))


# -- spectral normalisation ---------------------------------------------------------------
def test_spectral_norm_bounds_every_layer():
    torch.manual_seed(0)
    model = CNNModel(num_classes=5, hidden=8)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5.0)
    before = spectral_norms(model)
    assert len(before) == 6 and min(before.values()) > 1.5        # (so the check has teeth)
    apply_spectral_norm(model)
    model.train()
    x = torch.rand(4, 1, 16, 16)
    for _ in range(30):                                           # one power iteration per forward pass
        model(x)
    after = spectral_norms(model)
    assert after.keys() == before.keys()
    assert all(0.99 < s <= 1.01 for s in after.values()), after
    apply_spectral_norm(model)                                    # idempotent
    assert spectral_norms(model).keys() == before.keys()


# -- losses -------------------------------------------------------------------------------
def test_contrastive_plus_correction_has_the_gradient_of_the_log_sum_exp_form():
    theta = torch.tensor([0.3, -1.2, 0.8, 2.0], requires_grad=True)
    e_real = torch.tensor([0.1, -0.4])
    scale = torch.tensor([1.0, 2.0, -1.0, 0.5])
    e_fake = theta * scale                                          # energies depending on "parameters"
    contrastive = e_real.mean() - e_fake.mean()                     # the exercise's loss
    (ours,) = torch.autograd.grad(contrastive + softmax_correction(e_fake), theta)
    (direct,) = torch.autograd.grad(e_real.mean() + torch.logsumexp(-theta * scale, 0), theta)
    torch.testing.assert_close(ours, direct)
    w = softmax_weights(e_fake)
    assert float(w.sum()) == pytest.approx(1.0) and int(w.argmax()) == int(e_fake.argmin())   # low energy, high weight
    torch.testing.assert_close(softmax_correction(e_fake), ((0.25 - w) * e_fake).sum())
    assert float(softmax_correction(torch.full((4,), 0.7))) == 0.0   # equal energies: the contrastive loss
    with pytest.raises(GlyphEBMError, match="vector"):
        softmax_correction(torch.zeros(2, 2))


def test_kl_loss_assembly():
    assert float(kl_loss(torch.tensor(2.0), torch.tensor(3.0), 0.5, 0.1)) == pytest.approx(1.0 - 0.3)
    assert float(kl_loss(torch.tensor(2.0), None, 0.5, 0.1)) == pytest.approx(1.0)
    assert float(kl_loss(None, torch.tensor(3.0), 0.5, 0.1)) == pytest.approx(-0.3)
    assert float(kl_loss(None, None, 1.0, 1.0)) == 0.0
