"""Augmented chain starts (``glyph_ebm.augment``) and the sampler's ``start_transform`` hook."""
import math

import pytest
import torch

from glyph_ebm.augment import ChainStartAugment, gaussian_blur

SHARP = dict(degrees=0.0, shift=0.0, blur=(0.0, 0.0), fade=(1.0, 1.0))


def impulse(n=1, size=21):
    x = torch.zeros(n, 1, size, size)
    x[:, :, size // 2, size // 2] = 1.0
    return x


def test_blur_of_an_impulse_is_the_sampled_gaussian():
    x = impulse(3)
    sigma = torch.tensor([0.0, 1.0, 2.0])
    y = gaussian_blur(x, sigma)
    assert torch.equal(y[0], x[0])                                   # width 0: unchanged
    for i, s in ((1, 1.0), (2, 2.0)):
        r = math.ceil(3 * 2.0)                                       # the widest blur sets the radius
        k = torch.exp(-torch.arange(-r, r + 1.0).pow(2) / (2 * s * s))
        k = k / k.sum()
        assert y[i, 0, 10, 10].item() == pytest.approx((k[r] ** 2).item(), rel=1e-5)
        assert y[i, 0, 10, 10 + 1].item() == pytest.approx((k[r] * k[r + 1]).item(), rel=1e-5)
        assert y[i].sum().item() == pytest.approx(1.0, rel=1e-5)     # mass kept away from the borders
    assert y[2, 0, 10, 10] < y[1, 0, 10, 10]                          # wider = flatter


def test_blur_keeps_a_constant_image_and_wants_one_width_per_image():
    x = torch.full((2, 1, 8, 8), -0.4)
    assert torch.allclose(gaussian_blur(x, torch.tensor([1.5, 0.7])), x)    # replicated borders
    with pytest.raises(ValueError, match="one blur width per image"):
        gaussian_blur(x, torch.tensor([1.0]))


def glyph_square(n=4, size=56):
    x = torch.ones(n, 1, size, size)                                # paper
    x[:, :, 18:38, 18:38] = -1.0                                    # a 20x20 block of ink
    return x


def ink_area(x):
    return (x < 0).float().sum(dim=(1, 2, 3))


def test_zoom_shrinks_the_ink_by_the_square_of_the_factor():
    x = glyph_square()
    out = ChainStartAugment(1.0, scale=(0.5, 0.5), **SHARP)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(ink_area(out), ink_area(x) / 4, rtol=0.15)
    assert out.min() >= -1 and out.max() <= 1


def test_only_a_share_p_of_starts_is_changed_and_a_seed_repeats_it():
    x = glyph_square(400)
    changed = lambda out: (out - x).abs().flatten(1).amax(1) > 1e-6     # noqa: E731
    assert not changed(ChainStartAugment(0.0)(x, torch.Generator().manual_seed(0))).any()
    share = changed(ChainStartAugment(0.3)(x, torch.Generator().manual_seed(0))).float().mean().item()
    assert 0.22 < share < 0.38
    a = ChainStartAugment(0.5)(x, torch.Generator().manual_seed(3))
    b = ChainStartAugment(0.5)(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, ChainStartAugment(0.5)(x, torch.Generator().manual_seed(4)))


def test_fade_and_blur_take_ink_towards_the_paper():
    x = glyph_square()
    faded = ChainStartAugment(1.0, scale=(1.0, 1.0), degrees=0.0, shift=0.0, blur=(0.0, 0.0), fade=(0.5, 0.5))(x)
    assert torch.allclose(faded[:, :, 28, 28], torch.zeros(4, 1), atol=1e-5)    # halfway from ink -1 to paper 1
    blurred = ChainStartAugment(1.0, scale=(1.0, 1.0), degrees=0.0, shift=0.0, blur=(2.0, 2.0), fade=(1.0, 1.0))(x)
    edge = blurred[:, 0, 28, 18]                                    # the block's edge is no longer sharp
    assert ((edge > -0.9) & (edge < 0.9)).all(), edge


def test_the_sampler_runs_its_chains_from_the_transformed_starts():
    from ex3_main import MCMCSampler

    class Flat(torch.nn.Module):                                    # f = 0: SGLD without noise does not move
        def forward(self, x, y=None):
            return x.sum(dim=(1, 2, 3)) * 0.0

    seen = []

    def to_paper(x0, generator):
        seen.append(x0.shape)
        return torch.ones_like(x0)

    s = MCMCSampler(Flat(), (1, 8, 8), 4, max_len=16, reinit_frac=1.0, seed=0, start_transform=to_paper)
    out = s.sample(steps=3, step_size=1.0, noise=0.0)
    assert seen == [torch.Size([4, 1, 8, 8])]
    assert torch.equal(out, torch.ones(4, 1, 8, 8))


def test_the_config_sets_the_share_and_the_widest_blur_of_the_jems_chain_starts():
    from ex3_main import JEM

    from glyph_ebm.config import TrainConfig
    from glyph_ebm.errors import ConfigError

    jem = JEM(TrainConfig(start_augment=0.3, start_blur=3.5, hidden=4), num_classes=3, img_shape=(1, 8, 8))
    assert jem.sampler.start_transform.p == 0.3 and jem.sampler.start_transform.blur == (0.0, 3.5)
    assert JEM(TrainConfig(start_augment=0.0, hidden=4), num_classes=3, img_shape=(1, 8, 8)).sampler.start_transform is None
    with pytest.raises(ConfigError, match="start_blur must be >= 0"):
        TrainConfig(start_blur=-1.0)
