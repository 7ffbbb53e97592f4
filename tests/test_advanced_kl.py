"""Improved CD's KL term: the sampler's KL path (the exercise's SGLD step with the graph of its
move attached) against a straightforward differentiable step, the gradient reaching the parameters
only through the sampler, and the nearest-neighbour entropy estimate against distributions of
known entropy."""
import copy
import math

import pytest
import torch
import torch.nn as nn

from conftest import SOLUTIONS  # noqa: F401  (puts the reference on sys.path)
from ex3_model import CNNModel
from glyph_course.advanced.kl import frozen_energy, kozachenko_leonenko, nn_distance, nn_entropy, sampler_energy_loss
from glyph_course.advanced.sampler import sampler_for
from glyph_ebm.errors import GlyphEBMError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Quadratic(nn.Module):
    """``f(x) = -a/2 * ||x - c||^2`` on points ``(B, D)``: parameters ``a`` (scalar) and ``c`` (D,)."""

    def __init__(self, a: float, c):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a), dtype=torch.float64))
        self.c = nn.Parameter(torch.as_tensor(c, dtype=torch.float64))

    def forward(self, x, y=None):
        return -0.5 * self.a * (x - self.c).pow(2).sum(1)


def _points():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(6, 3, generator=g, dtype=torch.float64) - 0.5)


def test_kl_gradient_equals_the_hand_derivation_through_one_step():
    """x1 = x0 - s*a*(x0 - c);  L = mean 0.5*a0*|x1 - c0|^2 with (a0, c0) frozen:
    dL/dc = mean a0 (x1 - c0) * s*a,  dL/da = mean a0 (x1 - c0) . (-s (x0 - c))."""
    model, s = Quadratic(1.5, [0.1, -0.2, 0.05]), 0.2
    x0 = _points()
    x1 = sampler_for(model).kl_path(x0, 1, step_size=s, noise=0.0)
    loss = sampler_energy_loss(model, x1)
    grad_a, grad_c = torch.autograd.grad(loss, [model.a, model.c])

    a, c = model.a.detach(), model.c.detach()
    x1_hand = x0 - s * a * (x0 - c)
    torch.testing.assert_close(x1.detach(), x1_hand, rtol=0, atol=1e-14)
    resid = a * (x1_hand - c)                                             # dE/dx at x1, frozen params
    torch.testing.assert_close(grad_c, (resid * s * a).mean(0), rtol=0, atol=1e-13)
    torch.testing.assert_close(grad_a, (resid * (-s * (x0 - c))).sum(1).mean(), rtol=0, atol=1e-13)


def test_the_check_would_catch_a_missing_stop_gradient():
    """Evaluating the energy with live parameters adds the direct term dE_theta(x1)/dtheta: the
    gradient then differs from the sampler-path-only gradient of the test above."""
    model, s = Quadratic(1.5, [0.1, -0.2, 0.05]), 0.2
    x1 = sampler_for(model).kl_path(_points(), 1, s, 0.0)
    right = torch.autograd.grad(sampler_energy_loss(model, x1), [model.a, model.c], retain_graph=True)
    wrong = torch.autograd.grad((-model(x1)).mean(), [model.a, model.c])
    assert not torch.allclose(right[0], wrong[0]) and not torch.allclose(right[1], wrong[1])


def test_no_differentiated_step_means_no_gradient_to_the_parameters():
    model = Quadratic(1.5, [0.1, -0.2, 0.05])
    x0 = _points()
    x_plain = sampler_for(model).kl_path(x0, 0, step_size=0.2, noise=0.0)
    loss = sampler_energy_loss(model, x_plain)
    assert not loss.requires_grad                       # gradient w.r.t. theta is exactly zero
    x_req = x0.clone().requires_grad_(True)             # ... while the input still gets one
    (gx,) = torch.autograd.grad(frozen_energy(model, x_req).sum(), x_req)
    assert gx.abs().sum() > 0
    assert model.a.grad is None and model.c.grad is None


def test_kl_gradient_of_the_cnn_matches_a_frozen_copy_and_is_nonzero():
    torch.manual_seed(0)
    model = CNNModel(num_classes=3, hidden=4)
    modes = []
    hook = model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    x0 = torch.rand(4, 1, 16, 16) * 2 - 1
    y = torch.tensor([0, 1, 2, 0])

    def run(evaluate):
        x1 = sampler_for(model, seed=5).kl_path(x0, 2, step_size=1.0, noise=0.01, y=y)
        grads = torch.autograd.grad(evaluate(x1), list(model.parameters()), allow_unused=True)
        # the last layer's bias does not change grad_x f: no path through the sampler, gradient 0
        return [torch.zeros_like(p) if g is None else g for p, g in zip(model.parameters(), grads)]

    ours = run(lambda x1: sampler_energy_loss(model, x1, y))
    assert modes and not any(modes)                          # eval mode during the steps
    hook.remove()
    frozen = copy.deepcopy(model).requires_grad_(False)
    by_copy = run(lambda x1: (-frozen(x1, y)).mean())
    for a, b in zip(ours, by_copy):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    assert sum(float(g.abs().sum()) for g in ours) > 0
    assert all(p.grad is None for p in model.parameters())   # autograd.grad only, nothing accumulated
    assert model.training                                    # mode restored


def _straightforward_steps(model, x, steps, step_size, noise, y, temperature, clip, generator):
    """The reference for the KL path: SGLD steps written with ``create_graph=True``, in the
    exercise's order (noise, clamp, tempered gradient, clip, move, clamp)."""
    counts = {"clamped_noise": 0, "clipped": 0, "free": 0, "clamped_move": 0}
    for _ in range(steps):
        if noise > 0:
            x = x + noise * torch.randn(x.shape, generator=generator)
            counts["clamped_noise"] += int((x.abs() > 1).sum())
        x = x.clamp(-1.0, 1.0)
        if not x.requires_grad:
            x = x.requires_grad_(True)
        (g,) = torch.autograd.grad(model(x, y).sum() / temperature, x, create_graph=True)
        counts["clipped"] += int((g.abs() > clip).sum())
        counts["free"] += int((g.abs() < clip).sum())
        g = g.clamp(-clip, clip)
        x = x + step_size * g
        counts["clamped_move"] += int((x.abs() > 1).sum())
        x = x.clamp(-1.0, 1.0)
    return x, counts


@pytest.mark.parametrize("noise", [0.3, 0.0])
def test_the_kl_path_is_the_exercise_step_with_the_gradient_of_a_straightforward_one(noise):
    """Values: the exercise's chain to the bit. Gradient: that of SGLD steps written with
    create_graph=True, through clamped pixels, clipped gradients and three chained steps."""
    torch.manual_seed(0)
    model = CNNModel(num_classes=3, hidden=4).double()                # float64: compare without rounding noise
    x0 = (torch.rand(4, 1, 16, 16, dtype=torch.float64) * 2.4 - 1.2).clamp(-1, 1)   # some pixels at the borders
    y = torch.tensor([0, 1, 2, 0])
    settings = dict(step_size=5000.0, noise=noise, y=y)
    clip, t = 4e-5, 0.7                                                # clips about half of the gradients
    x_kl = sampler_for(model, seed=5, grad_clip=clip, temperature=t).kl_path(x0, 3, **settings)
    plain = sampler_for(model, seed=5, grad_clip=clip, temperature=t).langevin(x0, 3, **settings)
    assert torch.equal(x_kl.detach(), plain)                           # the exercise's values
    ref, counts = _straightforward_steps(model, x0, 3, settings["step_size"], noise, y, t, clip,
                                         torch.Generator().manual_seed(5))
    torch.testing.assert_close(x_kl.detach(), ref.detach(), rtol=0, atol=1e-12)
    assert min(counts["clipped"], counts["free"], counts["clamped_move"]) > 100, counts   # every case occurs
    assert noise == 0 or counts["clamped_noise"] > 100, counts
    params = list(model.parameters())[:-1]            # the last bias does not change grad_x f
    weights = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = torch.autograd.grad((x_kl * weights).sum(), params)
    theirs = torch.autograd.grad((ref * weights).sum(), params)
    for a, b in zip(ours, theirs):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_entropy_estimate_of_gaussians_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    for d, sigma in ((2, 0.5), (4, 1.3)):
        x = sigma * torch.randn(4000, d, generator=g, dtype=torch.float64)
        exact = 0.5 * d * math.log(2 * math.pi * math.e * sigma ** 2)
        assert kozachenko_leonenko(x) == pytest.approx(exact, abs=0.06), d


def test_entropy_estimate_shifts_by_log_scale_and_catches_a_collapse():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 5, generator=g, dtype=torch.float64)
    ref = torch.randn(100, 5, generator=g, dtype=torch.float64)
    assert float(nn_entropy(3.0 * x, 3.0 * ref) - nn_entropy(x, ref)) == pytest.approx(math.log(3.0), abs=1e-9)
    assert kozachenko_leonenko(2.0 * x) - kozachenko_leonenko(x) == pytest.approx(5 * math.log(2.0), abs=1e-9)
    collapsed = x[:1].repeat(500, 1) + 1e-3 * torch.randn(500, 5, generator=g, dtype=torch.float64)
    assert kozachenko_leonenko(collapsed) < kozachenko_leonenko(x) - 10   # far less entropy


def test_entropy_gradient_pushes_samples_away_from_their_neighbours():
    ref = torch.zeros(1, 2, dtype=torch.float64)
    x = torch.tensor([[0.3, 0.4], [-1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(nn_entropy(x, ref), x)
    # d/dx mean log |x| = x / |x|^2 / N: ascent moves each point away from the origin
    torch.testing.assert_close(grad, x.detach() / x.detach().pow(2).sum(1, keepdim=True) / 2)
    d = nn_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.5]]))
    torch.testing.assert_close(d, torch.tensor([5.0, 0.5, 0.5]))   # self excluded


def test_entropy_rejects_bad_input():
    with pytest.raises(GlyphEBMError, match="at least 2"):
        nn_entropy(torch.zeros(1, 3))
    with pytest.raises(GlyphEBMError, match="different sizes"):
        nn_entropy(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(GlyphEBMError, match="empty"):
        nn_entropy(torch.zeros(4, 3), torch.zeros(0, 3))
