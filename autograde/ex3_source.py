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
#   how well your network trains. Each task is checked on its own: where it needs another part
#   (the network, the sampler), a stand-in with known behaviour takes that part's place, so a
#   mistake costs points in its own task only.
# * The checks test the contract written in the docstrings of the template (what must hold),
#   not one particular way of meeting it.
# * Do not edit the cells: they are locked, and edited or deleted test cells are reported to
#   your instructor and replaced by the original ones before grading.
#
# | task | what is checked | points |
# |---|---|---|
# | 3.2a | `CNNModel`'s pooling, head and `get_logits`: logits of any input size, every parameter used, images independent | 3 |
# | 3.2b | `CNNModel.forward`: `f(x) = -E(x)` as logsumexp, the conditional logit, stability | 4 |
# | 3.3a | initial samples and replay buffer: size bound, fresh fraction and scale, chains continued and written back | 5 |
# | 3.3b/c | SGLD step: direction, noise, gradient clip, mean and variance on a Gaussian energy, no parameter gradients, no graph kept | 5 |
# | 3.4a | `JEM.px_step`: contrastive loss + L2 energy regulariser | 4 |
# | 3.4b | `JEM.pyx_step`: cross-entropy on the logits | 3 |
# | 3.4c | `JEM.training_step`: weighted sum of both, with the warm-up | 3 |
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
from glyph_ebm.checks.harness import (buffer_images, check, check_close, check_shape, describe,
                                      no_parameter_gradients, set_buffer_images, setup, stand_in, task)
from glyph_ebm.checks.toys import (FixedSampler, GraphProbe, QuadraticEnergy, StandInNetwork,
                                   StandInSampler, constant_images, with_logits, with_shift_chains)
from glyph_ebm.config import TrainConfig

student = setup()
IMG = (1, 8, 8)                       # small images keep the checks fast


def tiny_jem(mode="jem", num_classes=3, **fields):
    """Your JEM with a small configuration (no warm-up, so px_weight applies from step 0) and a
    stand-in network in place of your CNNModel (checked in 3.2)."""
    cfg = TrainConfig(mode=mode, hidden=4, sample_size=8, sgld_steps=2, buffer_size=32,
                      warmup_epochs=0.0, channels_last=False, **fields)
    with stand_in(student.main, CNNModel=StandInNetwork):
        return student.main.JEM(cfg, num_classes=num_classes, img_shape=IMG)


def sampler_for(model, sample_size=8, max_len=32, reinit_frac=1.0, init_std=0.01, grad_clip=None, seed=0):
    """Your MCMCSampler around a toy energy."""
    return student.main.MCMCSampler(model, IMG, sample_size=sample_size, max_len=max_len, reinit_frac=reinit_frac,
                                    init_std=init_std, grad_clip=grad_clip, seed=seed)


def scratch():
    """A fresh temporary folder for figures."""
    return Path(tempfile.mkdtemp(prefix="ex3-check-"))


print("set-up done; files are loaded from", student.folder)

# %% markdown id=md_3_2
# ## 3.2 The energy function
# `CNNModel` maps `(B, 1, H, W)` images of any size to `(B, C)` logits with `get_logits(x)`;
# `forward(x, y=None)` returns `f(x) = -E(x)`: the logsumexp of the logits for `y=None`, the
# logit of class `y[i]` otherwise. The checks of 3.2b use known logits in place of your
# `get_logits`, so 3.2b does not depend on 3.2a.

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
    for n_cls, width, channels in ((7, 8, 1), (3, 4, 2)):
        net = student.model.CNNModel(num_classes=n_cls, hidden=width, in_channels=channels)
        for side in (28, 37, 56, 64):
            check_shape(net.get_logits(torch.rand(3, channels, side, side) * 2 - 1), (3, n_cls),
                        f"get_logits of {side}x{side} images with {channels} channel(s) and num_classes={n_cls} "
                        "(adaptive pooling makes any size work)")
    net = student.model.CNNModel(num_classes=7, hidden=8)
    norms = [type(m).__name__ for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)]
    check(not norms, f"the network has normalisation layers {norms}: batch norm couples the images of a "
                     "batch (and the chains of SGLD); leave it out")
    x = torch.rand(4, 1, 56, 56) * 2 - 1
    net.eval()
    alone = torch.stack([net.get_logits(x[i:i + 1])[0] for i in range(4)]).detach()
    check_close(net.get_logits(x), alone, "logits of each image alone and inside a batch",
                atol=1e-4, hint="the images of a batch must not influence each other")
    net.train()
    logits = net.get_logits(x)
    probabilities = logits.min() >= 0 and (logits.sum(dim=1) - 1).abs().max() < 1e-4
    check(not probabilities, "get_logits should return raw logits; found rows of probabilities (softmax applied?)")
    net.zero_grad()
    logits.sum().backward()
    idle = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    check(not idle, f"these parameters get no gradient through get_logits: {idle} (every layer should be used)")
    ### END HIDDEN TESTS
    print("3.2a hidden tests passed")

# %% grade id=test_3_2b_sanity task=3.2b points=1
with task("3.2b"):
    table = torch.randn(5, 42)
    model = with_logits(student.model.CNNModel, lambda x: table)
    x = torch.rand(5, 1, 56, 56) * 2 - 1
    check_shape(model(x), (5,), "model(x): one value f(x) = -E(x) per image")
    check_shape(model(x, torch.tensor([0, 1, 2, 3, 41])), (5,), "model(x, y): one value f(x, y) per image")
    print("3.2b sanity checks passed")

# %% grade id=test_3_2b_hidden task=3.2b points=3
# 3.2b: hidden tests (run when your work is graded)
with task("3.2b"):
    ### BEGIN HIDDEN TESTS
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    logit_table = torch.randn(5, 6) * 3
    net = with_logits(student.model.CNNModel, lambda images: logit_table[:len(images)])
    y_cls = torch.tensor([5, 0, 3, 3, 1])
    check_close(net(x), torch.logsumexp(logit_table, dim=1), "model(x) with y=None",
                hint="f(x) = -E(x) is the logsumexp of the logits (not their mean or max, and not its negative)")
    check_close(net(x, y_cls), logit_table[torch.arange(5), y_cls], "model(x, y)",
                hint="f(x, y) = -E(x, y) is the logit of class y[i] for image i")
    check_close(net(x, y_cls.int()), logit_table[torch.arange(5), y_cls], "model(x, y) with int32 labels",
                hint="accept integer labels of any integer type")
    huge = logit_table * 200
    big = with_logits(student.model.CNNModel, lambda images: huge[:len(images)])
    check_close(big(x), torch.logsumexp(huge, dim=1), "model(x) when the logits are in the hundreds",
                atol=1e-2, hint="log(sum(exp(logits))) overflows; torch.logsumexp is stable")
    ### END HIDDEN TESTS
    print("3.2b hidden tests passed")

# %% markdown id=md_3_3
# ## 3.3 The SGLD sampler
# `MCMCSampler(model, img_shape, sample_size, max_len, reinit_frac, init_std, grad_clip, seed)`;
# `sample(steps, step_size, noise, y=None)` = `sample_initial` -> `langevin` -> `update_buffer`
# returns `sample_size` images (`len(y)` with labels). The checks read the replay buffer from
# `sampler.buffer` (a tensor, list or deque of images). The buffer checks (3.3a) use a stand-in
# for `langevin` that moves every chain by a fixed amount; the SGLD checks (3.3b/c) call
# `langevin` directly, so the two parts are graded independently.

# %% grade id=test_3_3a_sanity task=3.3a points=1
with task("3.3a"):
    Shifted = with_shift_chains(student.main.MCMCSampler, shift=0.0)
    sampler = Shifted(QuadraticEnergy(torch.zeros(1, *IMG)), IMG, sample_size=16, max_len=40,
                      reinit_frac=0.05, init_std=0.01, grad_clip=None, seed=0)
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
    def marked_sampler(reinit, chains, seed, max_len=None):
        """Your sampler (chains moved by -0.25 per call instead of SGLD), run until its buffer is
        full, then every buffer image replaced by a distinct constant "marker" image in [0.5, 0.9]."""
        max_len = max_len or chains
        smp = with_shift_chains(student.main.MCMCSampler, shift=-0.25)(
            QuadraticEnergy(torch.zeros(1, *IMG)), IMG, sample_size=chains, max_len=max_len,
            reinit_frac=reinit, init_std=0.05, grad_clip=None, seed=seed)
        for _ in range(40):
            smp.sample(steps=1, step_size=0.1, noise=0.0)
            held = len(buffer_images(smp, IMG))
            check(held <= max_len, f"the buffer grew to {held} images with max_len={max_len}")
            if held == max_len:
                break
        check(held == max_len, f"after {40 * chains} finished chains the buffer holds {held} images; it should "
                               f"be full (max_len={max_len}) once max_len chains have finished")
        markers = constant_images(torch.linspace(0.5, 0.9, max_len), IMG)
        set_buffer_images(smp, markers)
        return smp, markers

    def split_starts(smp, markers):
        """Which chains of the last call started from a marker (the buffer), which from fresh noise."""
        starts = smp.langevin_starts.float().reshape(len(smp.langevin_starts), -1)
        from_buffer = starts.mean(1) > 0.4
        gap = torch.cdist(starts[from_buffer], markers.reshape(len(markers), -1),
                          compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
        return starts, from_buffer, gap

    # reinit_frac = 0.2 with 1000 chains: the fresh share is binomial, sd 0.0126; +-0.05 is ~4 sd
    # (a correct sampler fails with probability < 1e-4)
    smp, markers = marked_sampler(0.2, 1000, seed=3)
    ends = smp.sample(steps=1, step_size=0.1, noise=0.0).detach().float().reshape(1000, -1)
    starts, from_buffer, gap = split_starts(smp, markers)
    share = 1 - from_buffer.float().mean().item()
    check(abs(share - 0.2) <= 0.05, f"with reinit_frac=0.2 and a full buffer, {share:.3f} of 1000 chains started "
                                    "from fresh noise; expected 0.2 +- 0.05 (about 4 binomial standard deviations)")
    fresh_px = starts[~from_buffer]
    # ~200 x 64 fresh pixels: their std is within 0.0075 of 0.05 unless the scale is wrong
    check(abs(fresh_px.std().item() - 0.05) < 0.0075 and abs(fresh_px.mean().item()) < 0.005,
          f"fresh chains should start from N(0, init_std^2) with init_std=0.05; their pixels have mean "
          f"{fresh_px.mean().item():.4f} and std {fresh_px.std().item():.4f}")
    check(gap.max().item() < 1e-5, "chains that do not start fresh must continue from an image of the buffer; "
                                   f"found a start {gap.max().item():.3g} away from every buffer image")
    smp0, markers0 = marked_sampler(0.0, 200, seed=4)
    ends0 = smp0.sample(steps=1, step_size=0.1, noise=0.0).detach().float().reshape(200, -1)
    starts0, from_buffer0, _ = split_starts(smp0, markers0)
    check(from_buffer0.all(), "with reinit_frac=0 and a full buffer every chain should continue from the buffer")
    # persistence (no fresh chains here, which may replace buffer images): for every buffer image
    # that chains continued from, the end point of (at least one of) those chains must be in the
    # buffer afterwards (several chains drawn from one slot may overwrite each other there)
    stored = buffer_images(smp0, IMG).reshape(-1, 64)
    origin = torch.cdist(starts0, markers0.reshape(len(markers0), -1),
                         compute_mode="donot_use_mm_for_euclid_dist").argmin(dim=1)
    kept = torch.cdist(ends0, stored, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values < 1e-5
    lost = [int(m) for m in origin.unique() if not kept[origin == m].any()]
    check(not lost, f"for {len(lost)} of the {len(origin.unique())} buffer images that chains continued from, no "
          "end point of those chains is in the buffer after the call: write the end points of chains that came from "
          "the buffer back (to their slot, or as new images), or the persistent chains never advance")
    smp1, markers1 = marked_sampler(1.0, 200, seed=5)
    smp1.sample(steps=1, step_size=0.1, noise=0.0)
    _, from_buffer1, _ = split_starts(smp1, markers1)
    check(not from_buffer1.any(), "with reinit_frac=1 every chain should start from fresh noise")
    wide = with_shift_chains(student.main.MCMCSampler, shift=0.0)(
        QuadraticEnergy(torch.zeros(1, *IMG)), IMG, sample_size=50, max_len=30, reinit_frac=0.3,
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
    sampler = sampler_for(QuadraticEnergy(target, precision=1.0))
    out = sampler.langevin(torch.zeros(8, *IMG), 1, 1.0, 0.0)
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
    start = torch.randn(256, *IMG) * 0.01
    draws = sampler_for(gauss).langevin(start.clone(), 1000, 1e-4, (2e-4) ** 0.5)
    check(not draws.requires_grad, "langevin should return detached images (no autograd graph attached)")
    check(torch.equal(start, start.clone()), "langevin must not change its input tensor in place")
    spread = (draws.detach() - mu).reshape(-1)
    # 16384 pixels: the sample mean has sd < 0.001 and the sample std sd < 0.001, so the
    # tolerances below are over 10 sd wide (no correct sampler fails them by chance)
    check(abs(spread.mean().item()) < 0.01,
          "Langevin chains on a Gaussian energy (mean mu, std 0.1 per pixel; step 1e-4, noise sqrt(2e-4), "
          f"1000 steps) should reach its mean: average deviation from mu is {spread.mean().item():.4f} (tolerance 0.01)")
    check(0.09 < spread.std().item() < 0.11,
          "Langevin chains on a Gaussian energy with std 0.1 (step 1e-4, noise sqrt(2e-4)) should have std 0.1: "
          f"found {spread.std().item():.4f} (accepted 0.09 to 0.11; 0 means the noise is missing)")
    check(no_parameter_gradients(gauss), "after langevin the model's parameters carry gradients (or had "
          "requires_grad switched off): take gradients with respect to the input only")
    check(gauss.training, "langevin should leave the model in the mode it found it in (it was in train mode)")
    gauss.eval()
    sampler_for(gauss).langevin(start.clone(), 2, 1e-4, 0.01)
    check(not gauss.training, "langevin should leave the model in the mode it found it in (it was in eval mode)")
    beyond = QuadraticEnergy(constant_images([3.0], IMG), precision=1.0)
    edge = sampler_for(beyond).langevin(torch.zeros(8, *IMG), 5, 0.5, 0.01).detach()
    check(edge.max().item() <= 1.0 + 1e-6 and edge.min().item() >= -1.0 - 1e-6,
          f"pixels must stay in [-1, 1] (clamp after every step); found values from {edge.min().item():.3f} "
          f"to {edge.max().item():.3f} for an energy whose minimum lies at 3.0")
    # the noise may come after the move (then clamped): 0.94 is 6 noise sd below the bound
    check(edge.min().item() > 0.94, "pulled towards 3.0, every pixel should end at the upper bound 1.0")
    steep = QuadraticEnergy(constant_images([0.5], IMG), precision=1000.0)    # gradient 500 at x = 0
    clipped = sampler_for(steep, grad_clip=0.03).langevin(torch.zeros(8, *IMG), 1, 1.0, 0.0).detach()
    check_close(clipped, torch.full((8, *IMG), 0.03), "one noiseless step of size 1 with grad_clip=0.03 on an "
                "energy whose gradient is 500", atol=1e-5,
                hint="clamp the input gradient elementwise to [-grad_clip, grad_clip] before the step")
    classes = QuadraticEnergy(constant_images([-0.5, 0.0, 0.5], IMG), precision=1.0)
    labels = torch.tensor([2, 0, 1, 2, 1, 0])
    check_close(sampler_for(classes).langevin(torch.zeros(6, *IMG), 1, 1.0, 0.0, y=labels),
                classes.centers.detach()[labels],
                "class-conditional SGLD (one noiseless step of size 1 on E(x, y) = ||x - c_y||^2 / 2)",
                atol=1e-4, hint="with labels y, use f(x, y) = model(x, y)")
    probe = GraphProbe(mu, precision=1.0)
    sampler_for(probe).langevin(torch.zeros(4, *IMG), 40, 1e-3, 0.01)
    check(max(probe.graph_sizes[-5:]) <= max(probe.graph_sizes[:2]) + 2,
          f"the autograd graph behind the chains grows with every step (from {probe.graph_sizes[1]} nodes at "
          f"step 2 to {probe.graph_sizes[-1]} at step 40), so memory grows with the number of steps: "
          "detach x after each step")
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

    def matches(got, want, model, twin):
        """Same loss and the same parameter gradient."""
        if not (got.requires_grad and torch.allclose(got.detach(), want.detach(), atol=1e-5, rtol=1e-4)):
            return False
        g_got = torch.autograd.grad(got, model.centers, retain_graph=True)[0]
        g_want = torch.autograd.grad(want, twin.centers, retain_graph=True)[0]
        return torch.allclose(g_got, g_want, atol=1e-5, rtol=1e-4)

    for mode, alpha in (("jem", 0.1), ("ebm", 0.5)):
        jem = tiny_jem(mode, alpha=alpha)
        jem.cnn = QuadraticEnergy(torch.rand(3, *IMG) - 0.5, precision=0.3)
        twin = copy.deepcopy(jem.cnn)
        jem.sampler = FixedSampler(fakes)
        got = jem.px_step((x_real, y_real))
        want = px_reference(twin, alpha)
        check_close(got, want, f"px_step in mode {mode!r} with alpha={alpha}",
                    hint="px = mean E(x_real) - mean E(x_fake) + alpha * (mean E(x_real)^2 + mean E(x_fake)^2), E = -model(x)")
        check(matches(got, want, jem.cnn, twin), f"gradient of px_step (mode {mode!r}) w.r.t. the parameters: "
              "both energies must stay differentiable w.r.t. the parameters; only the samples are detached")
    jem = tiny_jem("jem_cond", alpha=0.2)
    jem.cnn = QuadraticEnergy(torch.rand(3, *IMG) - 0.5, precision=0.3)
    twin = copy.deepcopy(jem.cnn)
    jem.sampler = FixedSampler(fakes)
    got = jem.px_step((x_real, y_real))
    y_fake = jem.sampler.labels[-1] if jem.sampler.labels else None
    check(y_fake is not None, "in mode 'jem_cond' the fake samples must be class-conditional: "
                              "pass labels to the sampler, sampler.sample(..., y=labels)")
    x_used = fakes[torch.arange(len(y_fake)) % len(fakes)]
    conditional = px_reference(twin, 0.2, y_real, x_used, y_fake.long())     # E(x, y) for both
    marginal = px_reference(twin, 0.2, None, x_used, None)                   # E(x) for both
    check(matches(got, conditional, jem.cnn, twin) or matches(got, marginal, jem.cnn, twin),
          f"px_step in mode 'jem_cond': found {describe(got)}; expected {describe(conditional)} with the "
          f"class-conditional energy E(x, y) = -model(x, y) for the real pairs and the samples (with the labels "
          f"given to the sampler), or {describe(marginal)} with the marginal E(x) = -model(x) for both, each with "
          "its parameter gradient")
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
    def step_loss(mode, warmup_weight=None, px_weight=0.5, pyx_weight=2.0):
        jem = tiny_jem(mode, px_weight=px_weight, pyx_weight=pyx_weight)
        if warmup_weight is not None:
            jem.px_weight_now = lambda: warmup_weight
        seen = []
        jem.px_step = lambda batch: seen.append("px") or torch.tensor(1.5, requires_grad=True)
        jem.pyx_step = lambda batch: seen.append("pyx") or torch.tensor(0.25, requires_grad=True)
        out = jem.training_step((torch.rand(4, *IMG), torch.tensor([0, 1, 2, 0])), 0)
        return (out["loss"] if isinstance(out, dict) else out), seen

    for mode, want in (("jem", 0.5 * 1.5 + 2.0 * 0.25), ("jem_cond", 0.5 * 1.5 + 2.0 * 0.25), ("ebm", 0.5 * 1.5)):
        out, seen = step_loss(mode)
        check_close(out, torch.tensor(want), f"training_step in mode {mode!r} with px_step = 1.5, pyx_step = 0.25, "
                    "px_weight = 0.5, pyx_weight = 2.0",
                    hint="loss = px_weight_now() * px_step + pyx_weight * pyx_step; in mode 'ebm' only the px term")
        check("px" in seen, f"training_step in mode {mode!r} should call px_step")
    out, _ = step_loss("jem", warmup_weight=0.2)
    check_close(out, torch.tensor(0.2 * 1.5 + 2.0 * 0.25), "training_step during the warm-up (px_weight_now() = 0.2, "
                "px_weight = 0.5)", hint="weight px_step by px_weight_now(), which ramps px_weight up during the warm-up")
    out, _ = step_loss("jem", warmup_weight=0.0)
    check_close(out, torch.tensor(2.0 * 0.25), "training_step at the start of the warm-up (px_weight_now() = 0)",
                hint="weight px_step by px_weight_now()")
    ### END HIDDEN TESTS
    print("3.4c hidden tests passed")

# %% markdown id=md_3_5
# ## 3.5 Long-run generation
# `run_generation(model, K, n, step_size, noise, img_shape, out_dir, y, seed, init_std, grad_clip)`
# starts `n` chains from fresh noise `N(0, init_std^2)`, runs `K` SGLD steps and returns
# `{"samples", "chain", "paths"}`, where `chain[k]` holds the images after `k` steps for
# `k` in `chain_steps(K)`. When graded, a stand-in takes the place of your `MCMCSampler`
# (checked in 3.3), so 3.5 does not depend on it.

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
    pair = QuadraticEnergy(constant_images([-0.5, 0.5], IMG), precision=1.0)
    wanted = torch.tensor([1, 0, 1, 1])
    expected_steps = set(student.main.chain_steps(32))
    StandInSampler.made = []
    with stand_in(student.main, MCMCSampler=StandInSampler):
        long_run = student.main.run_generation(toy, K=32, n=200, step_size=0.05, noise=0.01, img_shape=IMG,
                                               out_dir=None, init_std=0.05, seed=2, grad_clip=0.03)
        conditional = student.main.run_generation(pair, K=4, n=4, step_size=0.1, noise=0.0, img_shape=IMG,
                                                  out_dir=None, init_std=0.05, y=wanted)
    record = long_run["chain"]
    check(expected_steps <= set(record), f"chain record: expected steps {sorted(expected_steps)}, found {sorted(record)}")
    check_close(long_run["samples"], record[32], "the returned samples against chain[K]")
    check_shape(conditional["samples"], (4, *IMG), "class-conditional run_generation(..., y=4 labels)")
    if StandInSampler.made:
        # run_generation uses the MCMCSampler: check what it asked the (stand-in) sampler for
        first = StandInSampler.made[0]
        steps = sum(c[1] for c in first.calls if c[0] == "langevin")
        check(steps == 32, f"run_generation should run K=32 Langevin steps; the sampler was asked for {steps}")
        check(all(c[2:4] == (0.05, 0.01) for c in first.calls if c[0] == "langevin"),
              "run_generation should pass step_size and noise on to the sampler")
        check(first.settings["init_std"] == 0.05 and first.settings["grad_clip"] == 0.03,
              f"run_generation should build its sampler with init_std=0.05 and grad_clip=0.03; found "
              f"init_std={first.settings['init_std']} and grad_clip={first.settings['grad_clip']}")
        start = torch.as_tensor(record[0]).detach().float()
        check_close(start, first.started_from[:len(start)], "chain[0] against the fresh starts of the sampler",
                    hint="start every chain from fresh noise (sample_initial of a sampler without a buffer)")
        last = StandInSampler.made[-1]
        used = [c[4] for c in last.calls if c[0] == "langevin"]
        check(used and used[-1] is not None and torch.equal(torch.as_tensor(used[-1]).long(), wanted),
              "with labels y, run_generation should pass y on to the sampler")
    else:
        # run_generation runs its own chains: check them on the toy energy
        toy.grad_calls = 0
        own = student.main.run_generation(toy, K=32, n=200, step_size=0.05, noise=0.0, img_shape=IMG,
                                          out_dir=None, init_std=0.05, seed=2)
        start = torch.as_tensor(own["chain"][0]).detach().float()
        check(abs(start.std().item() - 0.05) < 0.01 and abs(start.mean().item()) < 0.01,
              f"chains should start from fresh noise N(0, init_std^2) with init_std=0.05; step 0 has mean "
              f"{start.mean().item():.4f} and std {start.std().item():.4f}")
        check(32 <= toy.grad_calls <= 33, f"K=32 SGLD steps need 32 gradient evaluations of the model; found {toy.grad_calls}")
        check((torch.as_tensor(own["chain"][32]) - start).abs().max().item() > 1e-3, "the chains did not move during the K steps")
        pair.labels_seen.clear()
        student.main.run_generation(pair, K=4, n=4, step_size=0.1, noise=0.0, img_shape=IMG, out_dir=None,
                                    init_std=0.05, y=wanted)
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
