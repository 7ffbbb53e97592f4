"""The chapter's SGLD function: temperature, clipping, clamped pixels, composed energies, jumps."""
import pytest
import torch

from conftest import SOLUTIONS  # noqa: F401
from ex3_model import CNNModel
from glyph_course.advanced.langevin import langevin
from glyph_ebm.errors import GlyphEBMError
from glyph_ebm.checks.toys import QuadraticEnergy


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _toy():
    return QuadraticEnergy(torch.zeros(1, 1, 4, 4), precision=1.0)


def test_temperature_divides_the_drift():
    x0 = torch.full((3, 1, 4, 4), 0.5)
    moves = {}
    for t in (1.0, 0.5, 2.0):
        x = langevin(_toy(), x0, steps=1, step_size=0.1, noise=0.0, temperature=t)
        moves[t] = x - x0
    # f = -|x|^2 / 2, grad f = -x: one step moves by -0.1 * x / T
    torch.testing.assert_close(moves[1.0], torch.full_like(x0, -0.05))
    torch.testing.assert_close(moves[0.5], 2 * moves[1.0])
    torch.testing.assert_close(moves[2.0], 0.5 * moves[1.0])


def test_gradient_clip_bounds_each_move_and_noise_is_seeded():
    x0 = torch.full((2, 1, 4, 4), 0.9)
    x = langevin(QuadraticEnergy(torch.zeros(1, 1, 4, 4), precision=100.0), x0, 1, 1.0, 0.0, grad_clip=0.01)
    torch.testing.assert_close(x - x0, torch.full_like(x0, -0.01))
    a = langevin(_toy(), x0, 3, 0.1, 0.05, generator=torch.Generator().manual_seed(3))
    b = langevin(_toy(), x0, 3, 0.1, 0.05, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, langevin(_toy(), x0, 3, 0.1, 0.0))


def test_only_input_gradients_and_the_mode_is_restored():
    model = CNNModel(num_classes=3, hidden=4)
    model.train()
    x0 = torch.rand(2, 1, 16, 16) * 2 - 1
    x, kept = langevin(model, x0, 4, 1.0, 0.01, y=torch.tensor([0, 2]), keep_steps=(0, 2, 4))
    assert all(p.grad is None for p in model.parameters())
    assert model.training and not x.requires_grad
    assert sorted(kept) == [0, 2, 4] and torch.equal(kept[4], x) and torch.equal(kept[0], x0)
    assert x.min() >= -1 and x.max() <= 1
    model.eval()
    langevin(model, x0, 1, 1.0, 0.0)
    assert not model.training


def test_observed_pixels_stay_bitwise_fixed():
    torch.manual_seed(0)
    model = CNNModel(num_classes=3, hidden=4)
    x_obs = torch.rand(3, 1, 16, 16) * 2 - 1
    mask = torch.rand(1, 1, 16, 16) < 0.5
    x0 = torch.rand(3, 1, 16, 16) * 2 - 1
    x, kept = langevin(model, x0, 5, 50.0, 0.3, observed=(x_obs, mask), keep_steps=range(6))
    for step in kept.values():
        assert torch.equal(step[mask.expand_as(x)], x_obs[mask.expand_as(x)])
    assert not torch.equal(x[~mask.expand_as(x)], x0[~mask.expand_as(x)])   # the rest moved
    free = langevin(model, x0, 5, 50.0, 0.3)
    assert not torch.equal(free[mask.expand_as(x)], x_obs[mask.expand_as(x)])  # (so the check has teeth)


def test_energy_fn_and_augmentation_jumps():
    calls = []

    def jump(x):
        calls.append(1)
        return x * 0

    x0 = torch.full((2, 1, 4, 4), 0.5)
    x = langevin(None, x0, 10, 0.1, 0.0, energy_fn=lambda z: z.flatten(1).sum(1), augment_every=4, augment=jump)
    assert len(calls) == 2                     # after steps 4 and 8, never after the last
    torch.testing.assert_close(x, torch.full_like(x0, 0.2))   # reset to 0 at step 8, then +0.1 twice


def test_bad_settings_give_clear_errors():
    x0 = torch.zeros(2, 1, 4, 4)
    with pytest.raises(GlyphEBMError, match="temperature"):
        langevin(_toy(), x0, 1, 0.1, 0.0, temperature=0)
    with pytest.raises(GlyphEBMError, match="steps"):
        langevin(_toy(), x0, -1, 0.1, 0.0)
    with pytest.raises(GlyphEBMError, match="augment callable"):
        langevin(_toy(), x0, 1, 0.1, 0.0, augment_every=2)
    with pytest.raises(GlyphEBMError, match="model or an energy_fn"):
        langevin(None, x0, 1, 0.1, 0.0)
    with pytest.raises(GlyphEBMError, match="one value"):
        langevin(None, x0, 1, 0.1, 0.0, energy_fn=lambda z: z.sum())
    with pytest.raises(GlyphEBMError, match="do not fit"):
        langevin(_toy(), x0, 1, 0.1, 0.0, observed=(torch.zeros(2, 1, 5, 5), torch.ones(1, 1, 5, 5)))
