"""Exercise 3.4: px/pyx losses and the training step against hand-computed values."""
import math

import pytest
import torch

from ex3_main import JEM
from glyph_ebm.config import TrainConfig


def make_jem(mode="jem", **kw):
    torch.manual_seed(0)
    cfg = TrainConfig(mode=mode, hidden=4, sample_size=3, sgld_steps=2, warmup_epochs=0.0,
                      alpha=0.25, **kw)
    return JEM(cfg, num_classes=3, img_shape=(1, 8, 8))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 1, 8, 8, generator=g) * 2 - 1, torch.tensor([0, 2, 1, 2])


def fixed_fake(jem, x_fake):
    """Replace SGLD by a fixed batch of 'samples' so the loss can be computed by hand."""
    jem.sampler.sample = lambda *a, y=None, **k: x_fake


def test_px_step_unconditional(batch):
    jem = make_jem()
    x_fake = torch.zeros(3, 1, 8, 8)
    fixed_fake(jem, x_fake)
    x, _ = batch
    with torch.no_grad():
        lr = jem.cnn.get_logits(x)
        lf = jem.cnn.get_logits(x_fake)
    e_real = [-math.log(sum(math.exp(v) for v in row)) for row in lr.tolist()]
    e_fake = [-math.log(sum(math.exp(v) for v in row)) for row in lf.tolist()]
    mean = lambda v: sum(v) / len(v)
    expected = mean(e_real) - mean(e_fake) + 0.25 * (mean([e * e for e in e_real]) + mean([e * e for e in e_fake]))
    assert jem.px_step(batch).item() == pytest.approx(expected, rel=1e-5)


def test_px_step_sign_pushes_real_energy_down(batch):
    jem = make_jem()
    jem.cfg.alpha = 0.0
    fixed_fake(jem, torch.zeros(3, 1, 8, 8))
    loss = jem.px_step(batch)
    loss.backward()
    # one small gradient step must lower E(x_real) - E(x_fake)
    x, _ = batch
    with torch.no_grad():
        before = (-jem.cnn(x)).mean() - (-jem.cnn(torch.zeros(3, 1, 8, 8))).mean()
        for p in jem.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
        after = (-jem.cnn(x)).mean() - (-jem.cnn(torch.zeros(3, 1, 8, 8))).mean()
    assert after < before


def test_px_step_conditional_uses_class_logits(batch):
    jem = make_jem(mode="jem_cond")
    x_fake = torch.zeros(3, 1, 8, 8)
    seen = {}

    def fake_sample(*a, y=None, **k):
        seen["y"] = y
        return x_fake

    jem.sampler.sample = fake_sample
    x, y = batch
    torch.manual_seed(7)
    loss = jem.px_step(batch).item()
    y_fake = seen["y"]
    assert y_fake is not None and len(y_fake) == 3 and set(y_fake.tolist()) <= set(y.tolist())
    with torch.no_grad():
        e_real = -jem.cnn.get_logits(x)[torch.arange(4), y]
        e_fake = -jem.cnn.get_logits(x_fake)[torch.arange(3), y_fake]
    expected = e_real.mean() - e_fake.mean() + 0.25 * ((e_real ** 2).mean() + (e_fake ** 2).mean())
    assert loss == pytest.approx(expected.item(), rel=1e-5)


def test_pyx_step_is_cross_entropy_of_logits(batch):
    jem = make_jem()
    x, y = batch
    with torch.no_grad():
        logits = jem.cnn.get_logits(x)
    rows = logits.tolist()
    expected = -sum(math.log(math.exp(rows[i][y[i]]) / sum(math.exp(v) for v in rows[i])) for i in range(4)) / 4
    assert jem.pyx_step(batch).item() == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("mode,w_px,w_pyx", [("jem", 1.0, 1.0), ("jem", 0.5, 2.0), ("ebm", 1.0, 1.0)])
def test_training_step_is_weighted_sum(batch, mode, w_px, w_pyx):
    jem = make_jem(mode=mode, px_weight=w_px, pyx_weight=w_pyx)
    fixed_fake(jem, torch.zeros(3, 1, 8, 8))
    px = jem.px_step(batch).item()
    pyx = jem.pyx_step(batch).item()
    expected = w_px * px + (0.0 if mode == "ebm" else w_pyx * pyx)
    assert jem.training_step(batch, 0).item() == pytest.approx(expected, rel=1e-5)


def test_warmup_ramps_px_weight(monkeypatch, batch):
    """px_weight_now rises linearly from 0 to px_weight over warmup_epochs (no warm-up in ebm mode),
    and training_step uses it."""
    step = {"now": 0}
    monkeypatch.setattr(JEM, "global_step", property(lambda self: step["now"]))
    cfg = TrainConfig(hidden=4, warmup_epochs=2.0, px_weight=0.8, sample_size=3, sgld_steps=2)
    jem = JEM(cfg, num_classes=3, img_shape=(1, 8, 8), steps_per_epoch=10)
    for now, expected in [(0, 0.0), (5, 0.2), (10, 0.4), (15, 0.6), (20, 0.8), (35, 0.8)]:
        step["now"] = now
        assert jem.px_weight_now() == pytest.approx(expected), f"global step {now}"
    fixed_fake(jem, torch.zeros(3, 1, 8, 8))
    px, pyx = jem.px_step(batch).item(), jem.pyx_step(batch).item()
    step["now"] = 5
    assert jem.training_step(batch, 0).item() == pytest.approx(0.2 * px + pyx, rel=1e-5)
    jem.cfg.mode = "ebm"
    assert jem.px_weight_now() == pytest.approx(0.8)      # no warm-up when p(x) is the only term
