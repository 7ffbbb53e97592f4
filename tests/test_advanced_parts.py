"""Building blocks of the advanced chapter: augmentations, multi-scale energy, EMA, spectral
normalisation, replay buffers and losses."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import SOLUTIONS  # noqa: F401
from ex3_model import CNNModel
from glyph_course.advanced.augment import GlyphAugment
from glyph_course.advanced.buffer import ReplayBuffer
from glyph_course.advanced.ema import EMA
from glyph_course.advanced.losses import contrastive_loss, kl_loss, px_loss, softmax_ml_loss, softmax_weights
from glyph_course.advanced.multiscale import MultiScaleEnergy
from glyph_course.advanced.spectral import apply_spectral_norm, spectral_norms
from glyph_ebm.errors import ConfigError, GlyphEBMError


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


# -- EMA ----------------------------------------------------------------------------------
class _WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.register_buffer("stat", torch.zeros(2, dtype=torch.float64))

    def forward(self, x, y=None):
        return self.lin(x).sum(1)


def test_ema_update_formula():
    torch.manual_seed(0)
    model, d = _WithBuffer(), 0.9
    ema = EMA(model, d)
    theta0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    steps = []
    for _ in range(2):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn_like(p))
            model.stat.add_(1.0)
        steps.append({k: v.detach().clone() for k, v in model.named_parameters()})
        ema.update(model)
    for k, p_ema in ema.model.named_parameters():
        expected = d * (d * theta0[k] + (1 - d) * steps[0][k]) + (1 - d) * steps[1][k]
        torch.testing.assert_close(p_ema, expected, rtol=0, atol=1e-14)
        assert not p_ema.requires_grad
    assert torch.equal(ema.model.stat, model.stat) and ema.updates == 2       # buffers copied
    zero = EMA(model, 0.0)
    with torch.no_grad():
        model.lin.weight.add_(1.0)
    zero.update(model)
    assert torch.equal(zero.model.lin.weight, model.lin.weight)
    with pytest.raises(GlyphEBMError, match="decay"):
        EMA(model, 1.0)


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


# -- replay buffers -----------------------------------------------------------------------
def _items(ids):
    return torch.as_tensor(ids, dtype=torch.float32).view(-1, 1)


def test_buffers_are_bounded_and_count_what_they_saw():
    for scheme in ("persistent", "reservoir"):
        buf = ReplayBuffer((1,), capacity=10, scheme=scheme, seed=0)
        for start in range(0, 100, 7):
            ids = list(range(start, min(start + 7, 100)))
            buf.push(_items(ids), torch.full((len(ids),), -1))
            assert len(buf) <= 10
        assert len(buf) == 10 and buf.n_seen == 100


def test_reservoir_keeps_a_uniform_sample_of_everything_it_saw():
    trials, counts = 1500, torch.zeros(50)
    for t in range(trials):
        buf = ReplayBuffer((1,), capacity=10, scheme="reservoir", seed=t)
        for start in range(0, 50, 5):
            buf.push(_items(range(start, start + 5)), torch.zeros(5, dtype=torch.long))   # slots ignored
        counts[buf.buffer.long().flatten()] += 1
    share = counts / trials                                       # each item kept w.p. 10/50
    assert (share - 0.2).abs().max() < 0.05, share
    assert abs(float(share[:10].mean()) - 0.2) < 0.02 and abs(float(share[-10:].mean()) - 0.2) < 0.02


def test_draws_restart_at_the_configured_rate_and_pick_slots_uniformly():
    buf = ReplayBuffer((1,), capacity=50, scheme="reservoir", reinit_frac=0.3, seed=0)
    buf.push(_items(range(10, 60)), torch.full((50,), -1))
    x0, slots = buf.draw(20000)
    fresh = slots < 0
    assert abs(float(fresh.float().mean()) - 0.3) < 0.015
    assert x0[fresh].abs().max() <= 1 and torch.equal(x0[~fresh].flatten(), buf.buffer[slots[~fresh]].flatten())
    hist = torch.bincount(slots[~fresh], minlength=50).float()
    assert hist.min() > 0.75 * hist.mean() and hist.max() < 1.25 * hist.mean()
    empty = ReplayBuffer((1,), capacity=50, seed=0)
    assert bool((empty.draw(100)[1] < 0).all())                  # nothing stored yet: all fresh


def test_persistent_writes_back_reservoir_adds():
    for scheme, expected_len in (("persistent", 4), ("reservoir", 8)):
        buf = ReplayBuffer((1,), capacity=100, scheme=scheme, reinit_frac=0.0, seed=0)
        buf.push(_items([1, 2, 3, 4]), torch.full((4,), -1))
        buf.capacity = 4                                          # "full": every chain comes from the buffer
        x0, slots = buf.draw(4)
        assert bool((slots >= 0).all())
        buf.capacity = 100
        buf.push(x0 + 100, slots)
        assert len(buf) == expected_len
        if scheme == "persistent":
            assert torch.equal(buf.buffer[slots].flatten(), (x0 + 100).flatten())
        else:
            assert torch.equal(buf.buffer[:4].flatten(), _items([1, 2, 3, 4]).flatten())


def test_conditional_draws_and_state_round_trip():
    buf = ReplayBuffer((1,), capacity=6, reinit_frac=0.0, seed=0)
    buf.push(_items([0, 1, 2, 10, 11, 12]), torch.full((6,), -1), y=torch.tensor([0, 0, 0, 1, 1, 1]))
    x0, slots = buf.draw(40, y=torch.tensor([1] * 40))
    assert bool((x0 >= 10).all())
    state = buf.state_dict()
    again = ReplayBuffer((1,), capacity=6, seed=5)
    again.load_state_dict(state)
    assert torch.equal(again.draw(8)[0], buf.draw(8)[0]) and again.n_seen == buf.n_seen
    with pytest.raises(ConfigError, match="scheme"):
        ReplayBuffer((1,), capacity=6, scheme="reservoir").load_state_dict(state)
    with pytest.raises(ConfigError, match="unknown buffer scheme"):
        ReplayBuffer((1,), capacity=6, scheme="fifo")


# -- losses -------------------------------------------------------------------------------
def test_softmax_ml_loss_has_the_gradient_of_the_log_sum_exp_form():
    theta = torch.tensor([0.3, -1.2, 0.8, 2.0], requires_grad=True)
    e_real = torch.tensor([0.1, -0.4])
    scale = torch.tensor([1.0, 2.0, -1.0, 0.5])
    e_fake = theta * scale                                          # energies depending on "parameters"
    (ours,) = torch.autograd.grad(softmax_ml_loss(e_real, e_fake), theta)
    (direct,) = torch.autograd.grad(e_real.mean() + torch.logsumexp(-theta * scale, 0), theta)
    torch.testing.assert_close(ours, direct)
    w = softmax_weights(e_fake)
    assert float(w.sum()) == pytest.approx(1.0) and int(w.argmax()) == int(e_fake.argmin())   # low energy, high weight
    same = torch.full((4,), 0.7)
    torch.testing.assert_close(softmax_ml_loss(e_real, same), contrastive_loss(e_real, same))


def test_px_and_kl_loss_assembly():
    e_real, e_fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    loss, parts = px_loss(e_real, e_fake, alpha=0.1)
    assert float(parts["ml"]) == pytest.approx(2.5) and float(parts["reg"]) == pytest.approx(0.1 * (5 + 0.5))
    assert float(loss) == pytest.approx(2.5 + 0.55)
    assert float(kl_loss(torch.tensor(2.0), torch.tensor(3.0), 0.5, 0.1)) == pytest.approx(1.0 - 0.3)
    assert float(kl_loss(None, None, 1.0, 1.0)) == 0.0
    with pytest.raises(ConfigError, match="unknown maximum-likelihood loss"):
        px_loss(e_real, e_fake, 0.1, kind="hinge")
    with pytest.raises(GlyphEBMError, match="vectors"):
        contrastive_loss(torch.zeros(2, 2), e_fake)
