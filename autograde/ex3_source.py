# %% markdown id=intro
# # Exercise 3 — checks and grading
#
# This notebook checks your implementation of exercise 3. It **imports your files**
# `ex3_model.py`, `ex3_main.py`, `ex3_ood.py` and `ex3_data.py` from the folder it sits in, so
# keep it next to them, and hand it in together with them (or hand in the files alone: the
# grader brings its own copy of this notebook).
#
# * Run all cells (*Kernel → Restart & Run All*). Each test cell runs the **sanity checks** of
#   one task and prints `... passed`, or stops with a message saying what was expected and what
#   your code produced.
# * When your work is graded, every test cell also runs **hidden tests** that check the
#   behaviour more thoroughly (signs, formulas, statistics of the sampler). Passing the sanity
#   checks does not guarantee full marks.
# * The checks use small models with known answers (for example a Gaussian energy whose samples
#   must have a known mean and variance), so they run in seconds on a CPU and do not depend on
#   how well your network trains.
# * Do not edit the cells: they are locked, and edited or deleted test cells are reported to
#   your instructor and replaced by the original ones before grading.
#
# | task | what is checked | points |
# |---|---|---|
# | 3.2a | `CNNModel.get_logits`: shape, all layers, any input size | 3 |
# | 3.2b | `CNNModel.forward`: `f(x) = -E(x)` as logsumexp, the conditional logit, stability | 4 |
# | 3.3a | initial samples and replay buffer: size bound, fresh fraction, fresh-noise scale | 5 |
# | 3.3b/c | SGLD update: direction, noise, mean and variance on a Gaussian energy, no parameter gradients | 5 |
# | 3.4a | `JEM.px_step`: contrastive loss + L2 energy regulariser | 4 |
# | 3.4b | `JEM.pyx_step`: cross-entropy on the logits | 3 |
# | 3.4c | `JEM.training_step`: weighted sum of both | 3 |
# | 3.5 | `run_generation`: long-run chains from fresh noise, the chain record | 3 |
# | 3.6 | `run_ood_analysis`: energy scores and AUROC (ID = 0, OOD = 1) | 4 |
# | | **total** | **34** |
#
# Conventions (as in the sheet): images are `(B, 1, H, W)` in [-1, 1]; the model returns
# `f(x) = -E(x)`; the OOD score is `E(x)`, higher meaning more out-of-distribution.

# %% code id=setup
# Set-up: loads your exercise files from this folder (run this cell first).
import tempfile
from pathlib import Path

import numpy as np
import torch
from glyph_ebm.config import TrainConfig
from glyph_ebm.checks.harness import (buffer_images, check, check_close, check_shape, describe,
                                       no_parameter_gradients, setup, task)
from glyph_ebm.checks.toys import FixedSampler, QuadraticEnergy, constant_images

student = setup()
IMG = (1, 8, 8)                       # small images keep the checks fast


def tiny_jem(mode="jem", num_classes=3, **fields):
    """Your JEM with a small configuration (no warm-up, so px_weight applies from step 0)."""
    cfg = TrainConfig(mode=mode, hidden=4, sample_size=8, sgld_steps=2, buffer_size=32,
                      warmup_epochs=0.0, channels_last=False, **fields)
    return student.main.JEM(cfg, num_classes=num_classes, img_shape=IMG)


def scratch():
    """A fresh temporary folder for figures."""
    return Path(tempfile.mkdtemp(prefix="ex3-check-"))


print("set-up done; files are loaded from", student.folder)

# %% markdown id=md_3_2
# ## 3.2 The energy function
# `get_logits(x)` maps `(B, 1, H, W)` images to `(B, C)` logits; `forward(x, y=None)` returns
# `f(x) = -E(x)`: the logsumexp of the logits for `y=None`, the logit of class `y[i]` otherwise.

# %% grade id=test_3_2a_sanity task=3.2a points=1
with task("3.2a"):
    model = student.model.CNNModel(num_classes=42)
    x = torch.rand(5, 1, 56, 56) * 2 - 1
    check_shape(model.get_logits(x), (5, 42), "get_logits of 5 glyphs of size 1x56x56")
    print("3.2a sanity checks passed")

# %% grade id=test_3_2a_hidden task=3.2a points=2
# 3.2a: hidden tests (run when your work is graded)
with task("3.2a"):
    ### BEGIN HIDDEN TESTS
    net = student.model.CNNModel(num_classes=7, hidden=8)
    x = torch.rand(4, 1, 56, 56) * 2 - 1
    layered = net.head(net.pool(net.features(x)))
    check_close(net.get_logits(x), layered, "get_logits(x) against features -> pool -> head",
                hint="use the layers defined in __init__, in that order")
    for side in (28, 37, 64):
        check_shape(net.get_logits(torch.rand(3, 1, side, side) * 2 - 1), (3, 7),
                    f"get_logits of {side}x{side} images (adaptive pooling makes any size work)")
    check_close(net.get_logits(x[2:3])[0], net.get_logits(x)[2], "logits of an image alone and inside a batch",
                hint="images of a batch must not influence each other")
    net.zero_grad()
    net.get_logits(x).sum().backward()
    idle = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    check(not idle, f"these parameters get no gradient through get_logits: {idle}")
    ### END HIDDEN TESTS
    print("3.2a hidden tests passed")

# %% grade id=test_3_2b_sanity task=3.2b points=1
with task("3.2b"):
    model = student.model.CNNModel(num_classes=42)
    x = torch.rand(5, 1, 56, 56) * 2 - 1
    check_shape(model(x), (5,), "model(x): one value f(x) = -E(x) per image")
    check_shape(model(x, torch.tensor([0, 1, 2, 3, 41])), (5,), "model(x, y): one value f(x, y) per image")
    print("3.2b sanity checks passed")

# %% grade id=test_3_2b_hidden task=3.2b points=3
# 3.2b: hidden tests (run when your work is graded)
with task("3.2b"):
    ### BEGIN HIDDEN TESTS
    net = student.model.CNNModel(num_classes=6, hidden=8)
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    y_cls = torch.tensor([5, 0, 3, 3, 1])
    logit_table = net.get_logits(x).detach()
    check_close(net(x), torch.logsumexp(logit_table, dim=1), "model(x) with y=None",
                hint="f(x) = -E(x) is the logsumexp of the logits (not their mean or max, and not its negative)")
    check_close(net(x, y_cls), logit_table[torch.arange(5), y_cls], "model(x, y)",
                hint="f(x, y) = -E(x, y) is the logit of class y[i] for image i")
    final_linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        boost = 600.0 / logit_table.abs().max().clamp_min(1e-6)
        final_linear.weight.mul_(boost)
        final_linear.bias.mul_(boost)
    huge = net.get_logits(x).detach()
    check_close(net(x), torch.logsumexp(huge, dim=1), "model(x) when the logits are in the hundreds",
                atol=1e-2, hint="log(sum(exp(logits))) overflows; torch.logsumexp is stable")
    ### END HIDDEN TESTS
    print("3.2b hidden tests passed")

# %% markdown id=md_3_3
# ## 3.3 The SGLD sampler
# `MCMCSampler(model, img_shape, sample_size, max_len, reinit_frac, init_std, grad_clip, seed)`;
# `sample(steps, step_size, noise, y=None)` returns `sample_size` images (`len(y)` with labels).
# The checks read the replay buffer from `sampler.buffer` (a tensor, list or deque of images).
# One step moves `x <- x + step_size * grad_x f(x)` plus `noise * N(0, I)`, clamped to [-1, 1].

# %% grade id=test_3_3a_sanity task=3.3a points=1
with task("3.3a"):
    flat = QuadraticEnergy(torch.zeros(1, *IMG), precision=1.0)
    sampler = student.main.MCMCSampler(flat, IMG, sample_size=16, max_len=40, reinit_frac=0.05,
                                       init_std=0.01, grad_clip=None, seed=0)
    for _ in range(6):
        check_shape(sampler.sample(steps=2, step_size=0.1, noise=0.01), (16, *IMG),
                    "sampler.sample(...) with sample_size=16")
    held = len(buffer_images(sampler, IMG))
    check(held <= 40, f"after 6 calls with sample_size=16 the buffer holds {held} images; "
                      "it must never hold more than max_len=40")
    print("3.3a sanity checks passed")

# %% grade id=test_3_3a_hidden task=3.3a points=4
# 3.3a: hidden tests (run when your work is graded)
with task("3.3a"):
    ### BEGIN HIDDEN TESTS
    def filled_sampler(reinit, chains, seed):
        """A sampler whose buffer is full of images pulled half-way to 0.8 (far from fresh noise)."""
        pull = QuadraticEnergy(constant_images([0.8], IMG), precision=1.0)
        smp = student.main.MCMCSampler(pull, IMG, sample_size=chains, max_len=chains, reinit_frac=reinit,
                                       init_std=0.05, grad_clip=None, seed=seed)
        for _ in range(3):
            smp.sample(steps=1, step_size=0.5, noise=0.0)
        stored = buffer_images(smp, IMG)
        check(len(stored) == chains, f"after 3 calls with sample_size={chains} and max_len={chains} the buffer "
                                     f"should be full ({chains} images); found {len(stored)}")
        check(stored.reshape(chains, -1).mean(1).abs().min() > 0.2,
              "the buffer should hold the end points of the chains; found images that look like fresh noise")
        with torch.no_grad():
            pull.precision.zero_()   # flat energy: a noiseless step leaves every start where it is
        starts = smp.sample(steps=1, step_size=0.5, noise=0.0).detach().float().reshape(chains, -1)
        return starts, stored.reshape(chains, -1)

    starts, stored = filled_sampler(0.2, 1000, seed=3)
    is_fresh = starts.mean(1).abs() < 0.1
    share = is_fresh.float().mean().item()
    check(abs(share - 0.2) <= 0.05, f"with reinit_frac=0.2, {share:.3f} of 1000 chains started from fresh noise; "
                                    "expected 0.2 +- 0.05 (about 4 binomial standard deviations)")
    fresh_px = starts[is_fresh]
    check(abs(fresh_px.std().item() - 0.05) < 0.0075 and abs(fresh_px.mean().item()) < 0.005,
          f"fresh chains should start from N(0, init_std^2) with init_std=0.05; their pixels have mean "
          f"{fresh_px.mean().item():.4f} and std {fresh_px.std().item():.4f}")
    gap = torch.cdist(starts[~is_fresh], stored, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values.max().item()
    check(gap < 1e-3, "chains that do not start fresh must continue from an image of the buffer; "
                      f"found a start {gap:.3g} away from every buffer image")
    starts0, _ = filled_sampler(0.0, 200, seed=4)
    check((starts0.mean(1).abs() >= 0.1).all(), "with reinit_frac=0 every chain should continue from the full buffer")
    starts1, _ = filled_sampler(1.0, 200, seed=5)
    check((starts1.mean(1).abs() < 0.1).all(), "with reinit_frac=1 every chain should start from fresh noise")
    flat = QuadraticEnergy(torch.zeros(1, *IMG), precision=1.0)
    wide = student.main.MCMCSampler(flat, IMG, sample_size=50, max_len=30, reinit_frac=0.3,
                                    init_std=0.01, grad_clip=None, seed=6)
    for _ in range(4):
        wide.sample(steps=1, step_size=0.1, noise=0.01)
    held = len(buffer_images(wide, IMG))
    check(held <= 30, f"with sample_size=50 and max_len=30 the buffer grew to {held} images")
    ### END HIDDEN TESTS
    print("3.3a hidden tests passed")

# %% grade id=test_3_3bc_sanity task=3.3b/c points=1
with task("3.3b/c"):
    target = constant_images([0.5], IMG)
    pull = QuadraticEnergy(target, precision=1.0)
    sampler = student.main.MCMCSampler(pull, IMG, sample_size=8, max_len=100, reinit_frac=1.0,
                                       init_std=0.01, grad_clip=None, seed=0)
    out = sampler.sample(steps=1, step_size=1.0, noise=0.0)
    check_close(out, target.expand(8, *IMG), "one noiseless SGLD step of size 1 on E(x) = ||x - 0.5||^2 / 2",
                atol=1e-4, hint="x <- x + step_size * grad_x f(x) with f = -E moves to lower energy")
    print("3.3b/c sanity checks passed")

# %% grade id=test_3_3bc_hidden task=3.3b/c points=4
# 3.3b/c: hidden tests (run when your work is graded)
with task("3.3b/c"):
    ### BEGIN HIDDEN TESTS
    mu = torch.linspace(-0.3, 0.3, 64).reshape(1, *IMG)
    gauss = QuadraticEnergy(mu, precision=100.0)          # Gibbs density: N(mu, 0.1^2) per pixel
    gauss.train()
    langevin = student.main.MCMCSampler(gauss, IMG, sample_size=256, max_len=256, reinit_frac=1.0,
                                        init_std=0.01, grad_clip=None, seed=0)
    draws = langevin.sample(steps=1000, step_size=1e-4, noise=(2e-4) ** 0.5)
    check(not draws.requires_grad, "sample() should return detached images (no autograd graph attached)")
    spread = (draws.detach() - mu).reshape(-1)
    check(abs(spread.mean().item()) < 0.01,
          "Langevin chains on a Gaussian energy (mean mu, std 0.1 per pixel; step 1e-4, noise sqrt(2e-4), "
          f"1000 steps) should reach its mean: average deviation from mu is {spread.mean().item():.4f} (tolerance 0.01)")
    check(0.09 < spread.std().item() < 0.11,
          "Langevin chains on a Gaussian energy with std 0.1 (step 1e-4, noise sqrt(2e-4)) should have std 0.1: "
          f"found {spread.std().item():.4f} (accepted 0.09 to 0.11; 0 means the noise is missing)")
    check(no_parameter_gradients(gauss), "after sample() the model's parameters carry gradients (or had "
          "requires_grad switched off): take gradients with respect to the input only")
    check(gauss.training, "sample() should leave the model in the mode it found it in (it was in train mode)")
    gauss.eval()
    langevin.sample(steps=2, step_size=1e-4, noise=0.01)
    check(not gauss.training, "sample() should leave the model in the mode it found it in (it was in eval mode)")
    beyond = QuadraticEnergy(constant_images([3.0], IMG), precision=1.0)
    clamped = student.main.MCMCSampler(beyond, IMG, sample_size=8, max_len=16, reinit_frac=1.0,
                                       init_std=0.01, grad_clip=None, seed=0)
    edge = clamped.sample(steps=5, step_size=0.5, noise=0.01).detach()
    check(edge.max().item() <= 1.0 + 1e-6 and edge.min().item() >= -1.0 - 1e-6,
          f"pixels must stay in [-1, 1] (clamp after every step); found values from {edge.min().item():.3f} "
          f"to {edge.max().item():.3f} for an energy whose minimum lies at 3.0")
    check(edge.min().item() > 0.99, "pulled towards 3.0, every pixel should end at the upper bound 1.0")
    classes = QuadraticEnergy(constant_images([-0.5, 0.0, 0.5], IMG), precision=1.0)
    cond = student.main.MCMCSampler(classes, IMG, sample_size=4, max_len=32, reinit_frac=1.0,
                                    init_std=0.01, grad_clip=None, seed=0)
    labels = torch.tensor([2, 0, 1, 2, 1, 0])
    check_close(cond.sample(steps=1, step_size=1.0, noise=0.0, y=labels), classes.centers.detach()[labels],
                "class-conditional SGLD (one noiseless step of size 1 on E(x, y) = ||x - c_y||^2 / 2)",
                atol=1e-4, hint="with labels y, use f(x, y) = model(x, y) and return len(y) images")
    ### END HIDDEN TESTS
    print("3.3b/c hidden tests passed")

# %% markdown id=md_3_4
# ## 3.4 JEM losses and the training step
# The checks put a small quadratic energy into `jem.cnn` and a fixed batch of "fake" images into
# `jem.sampler`, so the losses can be compared with the formulas:
# `px = mean E(x_real) - mean E(x_fake) + alpha * (mean E(x_real)^2 + mean E(x_fake)^2)` and
# `pyx = cross-entropy(get_logits(x), y)`.

# %% grade id=test_3_4a_sanity task=3.4a points=1
with task("3.4a"):
    jem = tiny_jem("jem")
    jem.cnn = QuadraticEnergy(torch.rand(3, *IMG) - 0.5, precision=0.3)
    jem.sampler = FixedSampler(torch.rand(8, *IMG) * 2 - 1)
    batch = (torch.rand(6, *IMG) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2]))
    loss = jem.px_step(batch)
    check(isinstance(loss, torch.Tensor) and loss.dim() == 0, f"px_step should return a scalar tensor; found {describe(loss)}")
    check(torch.isfinite(loss), f"px_step returned {describe(loss)}")
    check(loss.requires_grad, "the px loss must depend on the model's parameters (requires_grad) so that it can be trained")
    print("3.4a sanity checks passed")

# %% grade id=test_3_4a_hidden task=3.4a points=3
# 3.4a: hidden tests (run when your work is graded)
with task("3.4a"):
    ### BEGIN HIDDEN TESTS
    import copy

    x_real = torch.rand(6, *IMG) * 2 - 1
    y_real = torch.tensor([0, 1, 2, 0, 2, 2])
    fakes = torch.rand(8, *IMG) * 2 - 1

    def px_reference(energy_model, alpha, y_r=None, x_f=fakes, y_f=None):
        e_r = -energy_model(x_real, y_r)
        e_f = -energy_model(x_f, y_f)
        return e_r.mean() - e_f.mean() + alpha * (e_r.pow(2).mean() + e_f.pow(2).mean())

    for mode, alpha in (("jem", 0.1), ("ebm", 0.5)):
        jem = tiny_jem(mode, alpha=alpha)
        jem.cnn = QuadraticEnergy(torch.rand(3, *IMG) - 0.5, precision=0.3)
        twin = copy.deepcopy(jem.cnn)
        jem.sampler = FixedSampler(fakes)
        got = jem.px_step((x_real, y_real))
        want = px_reference(twin, alpha)
        check_close(got, want, f"px_step in mode {mode!r} with alpha={alpha}",
                    hint="px = mean E(x_real) - mean E(x_fake) + alpha * (mean E(x_real)^2 + mean E(x_fake)^2), E = -model(x)")
        got.backward()
        want.backward()
        check_close(jem.cnn.centers.grad, twin.centers.grad, f"gradient of px_step (mode {mode!r}) w.r.t. the parameters",
                    hint="both energies must stay differentiable w.r.t. the parameters; only the samples are detached")
    jem = tiny_jem("jem_cond", alpha=0.2)
    jem.cnn = QuadraticEnergy(torch.rand(3, *IMG) - 0.5, precision=0.3)
    twin = copy.deepcopy(jem.cnn)
    jem.sampler = FixedSampler(fakes)
    got = jem.px_step((x_real, y_real))
    y_fake = jem.sampler.labels[-1] if jem.sampler.labels else None
    check(y_fake is not None, "in mode 'jem_cond' the fake samples must be class-conditional: "
                              "pass labels to the sampler, sampler.sample(..., y=labels)")
    x_used = fakes[torch.arange(len(y_fake)) % len(fakes)]
    check_close(got, px_reference(twin, 0.2, y_real, x_used, y_fake.long()), "px_step in mode 'jem_cond'",
                hint="use E(x, y) = -model(x, y) for the real pairs and for the fakes with the labels given to the sampler")
    ### END HIDDEN TESTS
    print("3.4a hidden tests passed")

# %% grade id=test_3_4b_sanity task=3.4b points=1
with task("3.4b"):
    jem = tiny_jem("jem")
    jem.cnn = QuadraticEnergy(torch.rand(3, *IMG) - 0.5, precision=0.3)
    loss = jem.pyx_step((torch.rand(6, *IMG) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])))
    check(isinstance(loss, torch.Tensor) and loss.dim() == 0, f"pyx_step should return a scalar tensor; found {describe(loss)}")
    check(torch.isfinite(loss) and loss.requires_grad, f"pyx_step should return a finite, trainable loss; found {describe(loss)}")
    print("3.4b sanity checks passed")

# %% grade id=test_3_4b_hidden task=3.4b points=2
# 3.4b: hidden tests (run when your work is graded)
with task("3.4b"):
    ### BEGIN HIDDEN TESTS
    import copy

    for n_cls, scale in ((3, 0.3), (5, 2.0)):
        jem = tiny_jem("jem", num_classes=n_cls)
        jem.cnn = QuadraticEnergy(torch.rand(n_cls, *IMG) - 0.5, precision=scale)
        twin = copy.deepcopy(jem.cnn)
        xb = torch.rand(7, *IMG) * 2 - 1
        yb = torch.randint(n_cls, (7,))
        got = jem.pyx_step((xb, yb))
        table = twin.get_logits(xb)
        want = (torch.logsumexp(table, dim=1) - table[torch.arange(7), yb]).mean()
        check_close(got, want, f"pyx_step with {n_cls} classes",
                    hint="pyx = cross-entropy of get_logits(x) (raw logits, no softmax first) against the labels y")
        got.backward()
        want.backward()
        check_close(jem.cnn.centers.grad, twin.centers.grad, "gradient of pyx_step w.r.t. the parameters")
    ### END HIDDEN TESTS
    print("3.4b hidden tests passed")

# %% grade id=test_3_4c_sanity task=3.4c points=1
with task("3.4c"):
    jem = tiny_jem("jem", px_weight=1.0, pyx_weight=1.0)
    jem.px_step = lambda batch: torch.tensor(1.5, requires_grad=True)
    jem.pyx_step = lambda batch: torch.tensor(0.25, requires_grad=True)
    out = jem.training_step((torch.rand(4, *IMG), torch.tensor([0, 1, 2, 0])), 0)
    out = out["loss"] if isinstance(out, dict) else out
    check(isinstance(out, torch.Tensor) and out.dim() == 0, f"training_step should return a scalar loss; found {describe(out)}")
    print("3.4c sanity checks passed")

# %% grade id=test_3_4c_hidden task=3.4c points=2
# 3.4c: hidden tests (run when your work is graded)
with task("3.4c"):
    ### BEGIN HIDDEN TESTS
    for mode, want in (("jem", 0.5 * 1.5 + 2.0 * 0.25), ("jem_cond", 0.5 * 1.5 + 2.0 * 0.25), ("ebm", 0.5 * 1.5)):
        jem = tiny_jem(mode, px_weight=0.5, pyx_weight=2.0)
        seen = []
        jem.px_step = lambda batch, seen=seen: seen.append("px") or torch.tensor(1.5, requires_grad=True)
        jem.pyx_step = lambda batch, seen=seen: seen.append("pyx") or torch.tensor(0.25, requires_grad=True)
        out = jem.training_step((torch.rand(4, *IMG), torch.tensor([0, 1, 2, 0])), 0)
        out = out["loss"] if isinstance(out, dict) else out
        check_close(out, torch.tensor(want), f"training_step in mode {mode!r} with px_step = 1.5, pyx_step = 0.25, "
                    "px_weight = 0.5, pyx_weight = 2.0",
                    hint="loss = px_weight * px_step + pyx_weight * pyx_step; in mode 'ebm' only the px term")
        check("px" in seen, f"training_step in mode {mode!r} should call px_step")
    ### END HIDDEN TESTS
    print("3.4c hidden tests passed")

# %% markdown id=md_3_5
# ## 3.5 Long-run generation
# `run_generation(model, K, n, step_size, noise, img_shape, out_dir, y, seed, init_std, grad_clip)`
# starts `n` chains from fresh noise `N(0, init_std^2)`, runs `K` SGLD steps and returns
# `{"samples", "chain", "paths"}`, where `chain[k]` holds the images after `k` steps for
# `k` in `chain_steps(K)`.

# %% grade id=test_3_5_sanity task=3.5 points=1
with task("3.5"):
    toy = QuadraticEnergy(constant_images([0.5], IMG), precision=1.0)
    folder = scratch()
    result = student.main.run_generation(toy, K=8, n=6, step_size=0.1, noise=0.0, img_shape=IMG,
                                         out_dir=folder, init_std=0.05)
    check_shape(result["samples"], (6, *IMG), "run_generation(...)['samples'] for n=6")
    check({0, 8} <= set(result["chain"]), f"the chain record should hold steps 0 and K=8; found steps {sorted(result['chain'])}")
    for name in ("samples.png", "generation_chain.png"):
        check((folder / name).exists(), f"run_generation should save {name} into out_dir")
    print("3.5 sanity checks passed")

# %% grade id=test_3_5_hidden task=3.5 points=2
# 3.5: hidden tests (run when your work is graded)
with task("3.5"):
    ### BEGIN HIDDEN TESTS
    toy = QuadraticEnergy(constant_images([0.5], IMG), precision=1.0)
    toy.grad_calls = 0
    long_run = student.main.run_generation(toy, K=32, n=200, step_size=0.05, noise=0.0, img_shape=IMG,
                                           out_dir=None, init_std=0.05, seed=2)
    record = long_run["chain"]
    expected_steps = set(student.main.chain_steps(32))
    check(expected_steps <= set(record), f"chain record: expected steps {sorted(expected_steps)}, found {sorted(record)}")
    start = torch.as_tensor(record[0]).detach().float()
    check(abs(start.std().item() - 0.05) < 0.01 and abs(start.mean().item()) < 0.01,
          f"chains should start from fresh noise N(0, init_std^2) with init_std=0.05; step 0 has mean "
          f"{start.mean().item():.4f} and std {start.std().item():.4f}")
    check(32 <= toy.grad_calls <= 33, f"K=32 SGLD steps need 32 gradient evaluations of the model; found {toy.grad_calls}")
    check_close(long_run["samples"], record[32], "the returned samples against chain[K]")
    check((torch.as_tensor(record[32]) - start).abs().max().item() > 1e-3, "the chains did not move during the K steps")
    pair = QuadraticEnergy(constant_images([-0.5, 0.5], IMG), precision=1.0)
    wanted = torch.tensor([1, 0, 1, 1])
    conditional = student.main.run_generation(pair, K=4, n=4, step_size=0.1, noise=0.0, img_shape=IMG,
                                              out_dir=None, init_std=0.05, y=wanted)
    check_shape(conditional["samples"], (4, *IMG), "class-conditional run_generation(..., y=4 labels)")
    used = [lab for lab in pair.labels_seen if lab is not None]
    check(used and torch.equal(used[-1].long(), wanted), "with labels y, run_generation should sample f(x, y): "
                                                        "pass y on to the sampler / the model")
    ### END HIDDEN TESTS
    print("3.5 hidden tests passed")

# %% markdown id=md_3_6
# ## 3.6 OOD detection
# `run_ood_analysis(model, id_images, ood_sets, out_dir)` scores images by their energy `E(x)`
# and returns `{"auroc": {name: value}, "scores": {...}, "paths": [...]}`, with the AUROC of
# ID (label 0) against each OOD set (label 1).

# %% grade id=test_3_6_sanity task=3.6 points=1
with task("3.6"):
    toy = QuadraticEnergy(torch.zeros(1, *IMG), precision=1.0)
    inside = torch.randn(50, *IMG) * 0.2
    outside = torch.randn(40, *IMG) * 0.2 + 0.6
    folder = scratch()
    result = student.main.run_ood_analysis(toy, inside, {"shifted": outside}, out_dir=folder)
    value = result["auroc"]["shifted"]
    check(isinstance(value, float) and 0.0 <= value <= 1.0, f"auroc['shifted'] should be a float in [0, 1]; found {describe(value)}")
    for name in ("ood_hist.png", "roc.png"):
        check((folder / name).exists(), f"run_ood_analysis should save {name} into out_dir")
    print("3.6 sanity checks passed")

# %% grade id=test_3_6_hidden task=3.6 points=3
# 3.6: hidden tests (run when your work is graded)
with task("3.6"):
    ### BEGIN HIDDEN TESTS
    from sklearn.metrics import roc_auc_score

    bowl = QuadraticEnergy(torch.zeros(1, *IMG), precision=1.0)       # E(x) = ||x||^2 / 2
    id_set = torch.randn(120, *IMG) * 0.2
    ood = {"bright": torch.randn(80, *IMG) * 0.2 + 0.5, "alike": torch.randn(90, *IMG) * 0.2,
           "mixed": torch.cat([torch.randn(30, *IMG) * 0.2 + 0.3, torch.randn(30, *IMG) * 0.2])}
    result = student.main.run_ood_analysis(bowl, id_set, ood, out_dir=None)
    check(set(result["auroc"]) == set(ood), f"auroc should have one entry per OOD set {sorted(ood)}; found {sorted(result['auroc'])}")
    e_id = 0.5 * id_set.pow(2).flatten(1).sum(1)
    for name, images in ood.items():
        e_ood = 0.5 * images.pow(2).flatten(1).sum(1)
        truth = roc_auc_score(np.r_[np.zeros(len(e_id)), np.ones(len(e_ood))], np.r_[e_id.numpy(), e_ood.numpy()])
        check_close(torch.tensor(float(result["auroc"][name])), torch.tensor(truth), f"AUROC of set {name!r}",
                    atol=1e-6, hint="score = E(x) (higher = more OOD), labels ID = 0 and OOD = 1")
        check_close(torch.as_tensor(np.asarray(result["scores"][name], dtype=np.float32)), e_ood,
                    f"scores of set {name!r}", atol=1e-4, hint="the scores are the energies E(x) = -model(x)")
    check(result["auroc"]["bright"] > 0.9, "OOD images with higher energy must give an AUROC near 1, found "
          f"{result['auroc']['bright']:.3f}: are the labels or the sign of the score flipped?")
    ### END HIDDEN TESTS
    print("3.6 hidden tests passed")
