"""Exercise 3.3: the SGLD sampler and its replay buffer."""
import pytest
import torch
import torch.nn as nn

from ex3_main import MCMCSampler
from ex3_model import CNNModel


class Quadratic(nn.Module):
    """f(x) = -|x - mu|^2 / (2 s^2): a Gaussian N(mu, s^2 I) as an energy model."""

    def __init__(self, mu=0.3, s=0.2):
        super().__init__()
        self.mu, self.s = mu, s
        self.dummy = nn.Parameter(torch.zeros(()))      # so the sampler can find a device

    def forward(self, x, y=None):
        return -((x - self.mu) ** 2).flatten(1).sum(1) / (2 * self.s ** 2) + 0 * self.dummy


def test_buffer_never_exceeds_max_len():
    model = CNNModel(num_classes=3, hidden=4)
    s = MCMCSampler(model, (1, 8, 8), sample_size=16, max_len=40, seed=1)
    for _ in range(12):
        s.sample(steps=1, step_size=0.1, noise=0.01)
        assert len(s.buffer) <= 40
    assert len(s.buffer) == 40
    assert len(s.buffer_labels) == len(s.buffer)


def test_fresh_fraction_matches_reinit_frac_once_the_buffer_is_full():
    """With a full buffer, each chain restarts from noise with prob. reinit_frac.
    Tolerance: 20000 chains, std of the fraction ~0.0015; we allow 0.01."""
    model = Quadratic()
    s = MCMCSampler(model, (1, 2, 2), sample_size=20000, max_len=100, reinit_frac=0.05, seed=0)
    s.buffer = torch.full((100, 1, 2, 2), 0.5)
    s.buffer_labels = torch.full((100,), -1)
    x0, slots = s.sample_initial(20000)
    fresh = (slots < 0).float().mean().item()
    assert abs(fresh - 0.05) < 0.01
    # fresh chains are small Gaussian noise, the others are buffer images
    assert torch.all(x0[slots >= 0] == 0.5)
    assert x0[slots < 0].std().item() == pytest.approx(0.01, rel=0.1)


def test_empty_buffer_gives_only_fresh_chains():
    s = MCMCSampler(Quadratic(), (1, 4, 4), sample_size=50, max_len=100, seed=0)
    x0, slots = s.sample_initial(50)
    assert torch.all(slots == -1)
    assert x0.abs().max() < 0.1


def test_langevin_lowers_the_energy_of_a_quadratic():
    model = Quadratic(mu=0.3, s=1.0)
    s = MCMCSampler(model, (1, 4, 4), sample_size=64, seed=0)
    x0 = torch.zeros(64, 1, 4, 4) - 0.8
    x = s.langevin(x0, steps=50, step_size=0.05, noise=0.0)
    assert (-model(x)).mean() < 0.1 * (-model(x0)).mean()
    assert torch.equal(x0, torch.zeros(64, 1, 4, 4) - 0.8), "langevin must not modify its input in place"


def test_langevin_reaches_the_gaussian_it_samples():
    """Step eps with noise sqrt(2 eps) samples N(mu, s^2) (Langevin with temperature 1)."""
    mu, sd, eps = 0.2, 0.15, 1e-3
    model = Quadratic(mu=mu, s=sd)
    s = MCMCSampler(model, (1, 8, 8), sample_size=256, seed=3)
    x = s.langevin(torch.zeros(256, 1, 8, 8), steps=600, step_size=eps, noise=(2 * eps) ** 0.5)
    assert x.mean().item() == pytest.approx(mu, abs=0.01)
    assert x.std().item() == pytest.approx(sd, rel=0.08)


def test_samples_are_clamped_to_pixel_range():
    model = Quadratic(mu=5.0, s=0.1)
    s = MCMCSampler(model, (1, 4, 4), sample_size=8, seed=0)
    x = s.sample(steps=5, step_size=1.0, noise=0.5)
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x, torch.ones_like(x))


def test_no_parameter_gradients_and_mode_restored():
    model = CNNModel(num_classes=3, hidden=4)
    model.train()
    s = MCMCSampler(model, (1, 16, 16), sample_size=4, seed=0)
    s.sample(steps=3, step_size=1.0, noise=0.01)
    assert all(p.grad is None for p in model.parameters())
    assert model.training
    model.eval()
    s.sample(steps=3, step_size=1.0, noise=0.01)
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())


def test_works_under_no_grad():
    model = CNNModel(num_classes=3, hidden=4)
    s = MCMCSampler(model, (1, 16, 16), sample_size=4, seed=0)
    with torch.no_grad():
        x = s.langevin(torch.zeros(4, 1, 16, 16), steps=2, step_size=1.0, noise=0.0)
    assert not torch.equal(x, torch.zeros_like(x)), "SGLD under torch.no_grad() did not move"


def test_persistent_chains_go_back_to_their_slot():
    s = MCMCSampler(Quadratic(), (1, 2, 2), sample_size=4, max_len=4, seed=0)
    s.buffer = torch.zeros(4, 1, 2, 2)
    s.buffer_labels = torch.full((4,), -1)
    s.update_buffer(torch.ones(2, 1, 2, 2) * torch.tensor([0.5, 0.75]).view(2, 1, 1, 1),
                    torch.tensor([2, 0]))
    assert s.buffer[2].flatten().tolist() == [0.5] * 4
    assert s.buffer[0].flatten().tolist() == [0.75] * 4
    assert s.buffer[1].abs().sum() == 0


def test_conditional_chains_start_from_their_own_class():
    s = MCMCSampler(Quadratic(), (1, 2, 2), sample_size=8, max_len=6, reinit_frac=0.0, seed=0)
    s.buffer = torch.arange(6).float().view(6, 1, 1, 1).expand(6, 1, 2, 2).clone()
    s.buffer_labels = torch.tensor([0, 1, 0, 1, 2, 2])
    y = torch.tensor([1, 1, 2, 0, 2, 0, 1, 2])
    x0, slots = s.sample_initial(8, y)
    assert torch.all(slots >= 0)
    assert torch.equal(s.buffer_labels[slots], y)


def test_state_dict_roundtrip_continues_identically():
    model = CNNModel(num_classes=3, hidden=4)
    a = MCMCSampler(model, (1, 8, 8), sample_size=4, max_len=10, seed=5)
    a.sample(steps=2, step_size=0.5, noise=0.01)
    state = a.state_dict()
    x1 = a.sample(steps=2, step_size=0.5, noise=0.01)
    b = MCMCSampler(model, (1, 8, 8), sample_size=4, max_len=10, seed=99)
    b.load_state_dict(state)
    x2 = b.sample(steps=2, step_size=0.5, noise=0.01)
    assert torch.equal(x1, x2)
