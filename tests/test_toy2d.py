"""Tests of the 2D toy EBM module behind notebooks/01_ebm_theory.ipynb (each runs in about a
second on one CPU thread)."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from glyph_course.toy2d import (GaussianEnergy, MLPEnergy, ReplayBuffer, contrastive_loss,  # noqa: E402
                             energy_on_grid, grid_log_z, langevin, plot_chains, plot_energy,
                             plot_energy_history, plot_points, ring_energy, ring_of_gaussians,
                             sgld_temperature, three_bumps, train_toy_ebm, two_moons, uniform_box)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The networks are tiny: one thread is faster, and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MEAN = torch.tensor([1.0, -0.5])
COV = torch.tensor([[0.5, 0.2], [0.2, 0.3]])


def _moments(x):
    m = x.mean(dim=0)
    d = x - m
    return m, d.T @ d / (len(x) - 1)


# -- analytic energies ----------------------------------------------------------------------
def test_gaussian_energy_is_a_normalised_log_density():
    e = GaussianEnergy(MEAN, COV)
    x = torch.tensor([[0.3, 0.1], [1.0, -0.5]])
    ref = torch.distributions.MultivariateNormal(MEAN, COV).log_prob(x)
    torch.testing.assert_close(e(x), ref)                 # forward = f = -E = log p
    torch.testing.assert_close(e.energy(x), -ref)
    xs, E = energy_on_grid(e, lim=4.0, n=200)
    assert abs(grid_log_z(E, xs)) < 0.01                  # Z = 1


@pytest.mark.parametrize("make", [three_bumps, ring_energy])
def test_mixture_energies_are_normalised_and_sample_their_moments(make):
    e = make()
    xs, E = energy_on_grid(e, lim=4.0, n=200)
    assert abs(grid_log_z(E, xs)) < 0.01
    m, c = _moments(e.sample(20000, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(m, e.mean(), atol=0.05, rtol=0)
    torch.testing.assert_close(c, e.covariance(), atol=0.06, rtol=0)


def test_ring_energy_matches_the_ring_sampler():
    x = ring_of_gaussians(20000, k=8, radius=2.0, std=0.15, generator=torch.Generator().manual_seed(0))
    e = ring_energy(k=8, radius=2.0, std=0.15)
    y = e.sample(20000, generator=torch.Generator().manual_seed(1))
    # same distribution: same radial profile and the same mean log density
    assert abs(x.norm(dim=1).mean() - y.norm(dim=1).mean()) < 0.01
    assert abs(e(x).mean() - e(y).mean()) < 0.03
    assert torch.allclose(e.means.norm(dim=1), torch.full((8,), 2.0))


def test_samplers_are_seeded_and_shaped():
    for sampler in (ring_of_gaussians, two_moons, uniform_box):
        a = sampler(50, generator=torch.Generator().manual_seed(3))
        b = sampler(50, generator=torch.Generator().manual_seed(3))
        c = sampler(50, generator=torch.Generator().manual_seed(4))
        assert a.shape == (50, 2)
        assert torch.equal(a, b) and not torch.equal(a, c)
    assert uniform_box(1000, lim=1.5).abs().max() <= 1.5


# -- Langevin -------------------------------------------------------------------------------
def test_langevin_reaches_mean_and_covariance_of_a_gaussian():
    """Langevin proper (step eta/2, noise sqrt(eta)) from far away: mean within 0.05 and
    covariance entries within 0.04 of the target after 800 steps of eta = 0.01."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4000, 2, generator=g) - 2.0
    eta = 0.01
    x = langevin(GaussianEnergy(MEAN, COV), x0, steps=800, step_size=eta / 2, noise=math.sqrt(eta),
                 generator=g)
    m, c = _moments(x)
    torch.testing.assert_close(m, MEAN, atol=0.05, rtol=0)
    torch.testing.assert_close(c, COV, atol=0.04, rtol=0)


def test_decoupled_noise_samples_at_temperature_noise2_over_2step():
    step, noise = 0.005, 0.05
    T = sgld_temperature(step, noise)
    assert T == pytest.approx(0.25)
    g = torch.Generator().manual_seed(1)
    x = langevin(GaussianEnergy(MEAN, COV), torch.zeros(4000, 2), steps=800, step_size=step,
                 noise=noise, generator=g)
    m, c = _moments(x)
    torch.testing.assert_close(m, MEAN, atol=0.03, rtol=0)
    torch.testing.assert_close(c, T * COV, atol=0.015, rtol=0)


def test_langevin_without_noise_descends_to_the_minimum():
    x = langevin(GaussianEnergy(MEAN, COV), torch.zeros(3, 2), steps=2000, step_size=0.02, noise=0.0)
    torch.testing.assert_close(x, MEAN.expand(3, 2), atol=1e-3, rtol=0)


def test_langevin_chain_shape_no_side_effects_and_seeding():
    model = MLPEnergy(16, seed=0)
    x0 = torch.randn(5, 2)
    keep = x0.clone()
    with torch.no_grad():                                 # must still work under no_grad
        x, chain = langevin(model, x0, steps=10, step_size=0.01, noise=0.1, keep_every=3,
                            generator=torch.Generator().manual_seed(0))
    assert chain.shape == (1 + 10 // 3, 5, 2)
    assert torch.equal(chain[0], x0) and torch.equal(x0, keep)
    assert not x.requires_grad
    assert all(p.grad is None for p in model.parameters())
    x2 = langevin(model, x0, steps=10, step_size=0.01, noise=0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_langevin_clip_keeps_points_in_the_box():
    x = langevin(GaussianEnergy(MEAN, COV), torch.zeros(100, 2), steps=20, step_size=0.5, noise=3.0,
                 clip=2.0, generator=torch.Generator().manual_seed(0))
    assert x.abs().max() <= 2.0


# -- replay buffer --------------------------------------------------------------------------
def test_replay_buffer_samples_and_writes_back_to_slots():
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(10, uniform_box, reinit_frac=0.0, generator=g)
    x0, slots = buf.sample(4)
    assert torch.equal(x0, buf.points[slots])
    new = torch.full((4, 2), 7.0)
    buf.update(new, slots)
    assert torch.equal(buf.points[slots], new)
    assert len(buf) == 10
    fresh = ReplayBuffer(10, uniform_box, reinit_frac=1.0, generator=g)
    fresh.points.fill_(100.0)
    x0, _ = fresh.sample(6)
    assert x0.abs().max() <= 3.0                          # all restarted from noise


# -- loss and training ----------------------------------------------------------------------
def test_contrastive_loss_by_hand():
    e_real = torch.tensor([1.0, 2.0, 3.0])
    e_fake = torch.tensor([0.0, -1.0])
    # mean real 2, mean fake -0.5; mean squares 14/3 and 1/2
    assert contrastive_loss(e_real, e_fake).item() == pytest.approx(2.5)
    assert contrastive_loss(e_real, e_fake, alpha=0.1).item() == pytest.approx(2.5 + 0.1 * (14 / 3 + 0.5))


def test_contrastive_loss_gradient_is_minus_the_likelihood_gradient():
    """E_theta(x) = theta |x|^2 / 2, Z = 2 pi / theta: with exact model samples the loss gradient
    estimates -d/dtheta mean log q(x_data) = mean |x|^2 / 2 - 1 / theta."""
    g = torch.Generator().manual_seed(0)
    x_data = 0.5 * torch.randn(50000, 2, generator=g)
    theta = torch.tensor(1.5, requires_grad=True)
    x_model = torch.randn(50000, 2, generator=g) / math.sqrt(1.5)
    energy = lambda x: theta * x.pow(2).sum(dim=1) / 2  # noqa: E731
    contrastive_loss(energy(x_data), energy(x_model)).backward()
    exact = x_data.pow(2).sum(dim=1).mean().item() / 2 - 1 / 1.5
    assert theta.grad.item() == pytest.approx(exact, abs=0.02)
    assert exact < -0.3                                   # the sign is informative


def test_short_training_lowers_data_energy_below_noise_energy():
    model, hist = train_toy_ebm(ring_of_gaussians, steps=300, batch_size=64, sgld_steps=10, seed=0)
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        e_data = model.energy(ring_of_gaussians(2000, generator=g)).mean().item()
        e_noise = model.energy(uniform_box(2000, 3.0, generator=g)).mean().item()
    assert e_noise - e_data > 2.0
    assert np.mean(hist["e_real"][-50:]) < np.mean(hist["e_fake"][-50:])
    assert len(hist["loss"]) == 300 and hist["buffer"].shape == (2000, 2)
    assert hist["settings"]["noise"] == pytest.approx(math.sqrt(2 * 0.01))


def test_training_is_reproducible_from_the_seed():
    kw = dict(steps=15, batch_size=32, sgld_steps=5, buffer_size=100)
    torch.manual_seed(999)                                # the global state must not matter
    m1, h1 = train_toy_ebm(ring_of_gaussians, seed=5, **kw)
    torch.manual_seed(0)
    m2, h2 = train_toy_ebm(ring_of_gaussians, seed=5, **kw)
    _, h3 = train_toy_ebm(ring_of_gaussians, seed=6, **kw)
    assert h1["loss"] == h2["loss"] and torch.equal(h1["buffer"], h2["buffer"])
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert h1["loss"] != h3["loss"]


@pytest.mark.parametrize("init", ["data", "noise"])
def test_other_initialisations_train_without_a_buffer(init):
    _, hist = train_toy_ebm(two_moons, steps=5, batch_size=16, sgld_steps=3, init=init)
    assert hist["buffer"] is None and len(hist["e_fake"]) == 5


def test_unknown_initialisation_is_refused():
    with pytest.raises(ValueError, match="init"):
        train_toy_ebm(ring_of_gaussians, steps=1, init="buffers")


def test_alpha_enters_the_training_loss():
    kw = dict(steps=3, batch_size=16, sgld_steps=2, buffer_size=50, seed=0)
    _, h0 = train_toy_ebm(ring_of_gaussians, alpha=0.0, **kw)
    _, h1 = train_toy_ebm(ring_of_gaussians, alpha=1.0, **kw)
    e_r, e_f = h0["e_real"][0], h0["e_fake"][0]
    assert h0["loss"][0] == pytest.approx(e_r - e_f, abs=1e-5)
    assert h1["loss"][0] > h0["loss"][0]                  # same first batch, plus the penalty


# -- plots ----------------------------------------------------------------------------------
def test_plot_energy_density_is_normalised_on_the_grid_and_plots_run():
    fig, axes = plt.subplots(1, 4)
    e = three_bumps()
    art = plot_energy(axes[0], e, lim=3.0, kind="density", T=2.0, n=100)
    q = np.asarray(art.get_array())
    dx = 6.0 / 99
    assert q.sum() * dx * dx == pytest.approx(1.0, rel=1e-4)
    plot_energy(axes[1], e, lim=3.0, kind="energy", contours=True, n=50)
    plot_points(axes[2], e.sample(10), lim=3.0, title="points")
    _, chain = langevin(e, torch.zeros(3, 2), 5, 0.01, 0.1, keep_every=1)
    plot_chains(axes[2], chain, n=2)
    plot_energy_history(axes[3], {"e_real": [0.0, -1.0, -2.0], "e_fake": [0.0, 1.0, 2.0]}, smooth=2)
    with pytest.raises(ValueError):
        plot_energy(axes[0], e, kind="log")
    plt.close(fig)
