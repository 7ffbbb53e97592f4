"""Our ``MCMCSampler.langevin`` computes the same chain as the tutorial's sampler
(``benchmarks/tutorial_sampler.py``), so that ``benchmarks/sampler.py`` compares like with like.

How the random numbers are lined up: the tutorial draws from the *global* torch generator,
first one throw-away ``torch.randn(shape)`` for its noise buffer, then ``normal_(0, 0.005)``
into that buffer at every step. Our sampler draws ``torch.randn(shape, generator=g)`` with its
own ``torch.Generator`` and scales it by ``noise``. Both are CPU Mersenne-twister generators, so
after ``torch.manual_seed(s)`` and ``g.manual_seed(s)`` they produce the same stream; we advance
``g`` by one ``randn(shape)`` to skip the tutorial's throw-away draw. For tensors of at least 16
elements ``buf.normal_(0, std)`` and ``std * torch.randn(...)`` give bitwise the same numbers
(both run the same Box-Muller kernel; with mean 0 the scaling is a single rounding either way;
below 16 elements PyTorch uses a different, double-precision path, hence the image size here).
The rest of the step is the same arithmetic in the same order (the tutorial back-propagates
``E = -f`` and subtracts the clamped gradient; negation is exact in floating point), so the
chains agree bit for bit and the test asserts ``torch.equal``.

The mutant tests check that the comparison is sensitive: a baseline with another noise scale,
gradient clamp or step size, without the throw-away draw, with the two half-steps swapped, or
without the pixel clamp gives a different chain.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from conftest import PYTHON, ROOT
from ex3_main import MCMCSampler
from ex3_model import CNNModel

STEPS, STEP_SIZE, NOISE, CLIP = 10, 10.0, 0.005, 0.03
SHAPE = (8, 1, 16, 16)


def _load_tutorial_module():
    name = "tutorial_sampler"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "tutorial_sampler.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


TutorialSampler = _load_tutorial_module().TutorialSampler


class Scaled(nn.Module):
    """``k * cnn(x)``: a small CNN whose input gradients are large enough (with ``k`` in the
    thousands) that the gradient clamp and the pixel clamp are active in many pixels."""

    def __init__(self, k: float, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.cnn = CNNModel(num_classes=5, hidden=8)
        self.k = k

    def forward(self, x, y=None):
        return self.k * self.cnn(x, y)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and on a busy machine much faster (every parallel
    region of a two-thread pool waits for a descheduled thread). The chains do not depend on it:
    both samplers run under the same setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _start(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(SHAPE, generator=g) * 2 - 1


def ours_chain(model, x0, seed, steps=STEPS):
    sampler = MCMCSampler(model, SHAPE[1:], sample_size=SHAPE[0], grad_clip=CLIP, seed=seed)
    torch.randn(x0.shape, generator=sampler.generator)   # the tutorial's throw-away buffer draw
    return sampler.langevin(x0, steps, step_size=STEP_SIZE, noise=NOISE)


def tutorial_chain(model, x0, seed, steps=STEPS, step_size=STEP_SIZE, **attrs):
    cls = type("Mutant", (TutorialSampler,), attrs) if attrs else TutorialSampler
    torch.manual_seed(seed)
    return cls.generate_samples(model, x0.clone(), steps=steps, step_size=step_size).detach()


@pytest.mark.parametrize("k", [1.0, 5000.0])
@pytest.mark.parametrize("seed", [0, 7])
def test_same_chain_as_the_tutorial(k, seed):
    model = Scaled(k)
    x0 = _start()
    ours = ours_chain(model, x0, seed)
    base = tutorial_chain(model, x0, seed)
    assert not torch.equal(ours, x0), "the chain did not move"
    assert torch.equal(ours, base), f"max |difference| {float((ours - base).abs().max()):.3g}"
    # the state of the model is restored by both
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_the_clamps_are_exercised():
    """With k = 5000 the comparison covers the gradient clamp and the pixel clamp."""
    model = Scaled(5000.0)
    x = _start().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    assert (g.abs() > CLIP).float().mean() > 0.2
    assert (g.abs() < 0.02).float().mean() > 0.05
    out = ours_chain(model, _start(), seed=0)
    assert (out.abs() == 1.0).float().mean() > 0.05


def test_noise_draws_line_up():
    """The premise: seeded global ``normal_`` after a throw-away ``randn`` equals our
    generator's scaled ``randn`` after advancing it by one draw."""
    seed = 3
    torch.manual_seed(seed)
    buf = torch.randn(SHAPE)
    theirs = [buf.normal_(0, NOISE).clone() for _ in range(3)]
    g = torch.Generator().manual_seed(seed)
    torch.randn(SHAPE, generator=g)
    ours = [NOISE * torch.randn(SHAPE, generator=g) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(theirs, ours))


def _swapped_order(model, x0, seed):
    """Gradient half-step first, then the noise: a plausible but different sampler."""
    torch.manual_seed(seed)
    torch.randn(x0.shape)
    x = x0.clone()
    for _ in range(STEPS):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(model(x).sum(), x)
        x = (x.detach() + STEP_SIZE * g.clamp(-CLIP, CLIP)).clamp(-1, 1)
        x = (x + torch.randn(x.shape) * NOISE).clamp(-1, 1)
    return x


def _no_pixel_clamp(model, x0, seed):
    torch.manual_seed(seed)
    torch.randn(x0.shape)
    x = x0.clone()
    for _ in range(STEPS):
        x = x + torch.randn(x.shape) * NOISE
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(model(x).sum(), x)
        x = x.detach() + STEP_SIZE * g.clamp(-CLIP, CLIP)
    return x


MUTANTS = {
    "noise scale": lambda m, x0, s: tutorial_chain(m, x0, s, noise_std=0.006),
    "gradient clamp": lambda m, x0, s: tutorial_chain(m, x0, s, grad_clip=0.02),
    "step size": lambda m, x0, s: tutorial_chain(m, x0, s, step_size=11.0),
    "no throw-away draw": lambda m, x0, s: MCMCSampler(m, SHAPE[1:], sample_size=SHAPE[0], grad_clip=CLIP,
                                                       seed=s).langevin(x0, STEPS, STEP_SIZE, NOISE),
    "swapped half-steps": _swapped_order,
    "no pixel clamp": _no_pixel_clamp,
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_different_sampler_is_detected(name):
    """The identity test can fail: each of these small changes gives another chain."""
    model = Scaled(5000.0)
    x0 = _start()
    base = tutorial_chain(model, x0, seed=0)
    other = MUTANTS[name](model, x0, 0)
    assert not torch.allclose(other, base, atol=1e-6)


@pytest.mark.slow
def test_sampler_benchmark_runs_end_to_end():
    proc = subprocess.run([PYTHON, str(ROOT / "benchmarks" / "sampler.py"), "--batch", "4",
                           "--steps", "2", "--repeats", "1", "--buffer", "256", "--threads", "1"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio \d+\.\d+", lines[-1]), lines[-5:]
    table = "\n".join(lines)
    for name in ("ours", "ours (NCHW)", "tutorial", "ours+freeze", "ours+bf16"):
        assert re.search(rf"^{re.escape(name)}\s+\d", table, re.M), f"{name} missing:\n{table}"
    # the benchmark's own identity check: the tutorial's chain equals ours (max|dx| = 0)
    assert re.search(r"^tutorial\s+.*\s0\s+0$", table, re.M), table
    # channels-last changes only the memory layout: same chain up to float rounding
    dev = re.search(r"^ours\s+.*\s(\S+)\s+(\S+)$", table, re.M)
    assert dev and float(dev.group(1)) < 1e-4, table
