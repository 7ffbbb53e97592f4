"""SGLD throughput: our ``MCMCSampler`` against the tutorial's sampler, side by side.

Both samplers run the same model (``CNNModel(num_classes=42, hidden=32)`` from ``solutions/``,
initialised with seed 0; ``--model tutorial``: the tutorial's own CNN on 28x28; ``--checkpoint``:
the CNN of a trained run), the same batch, the same number of SGLD steps and the same step
size / noise / gradient clamp (10 / 0.005 / 0.03, the tutorial's values), each starting from
the same full replay buffer (8192 images, the steady state of training). One timed call = one
batch of chains (``MCMCSampler.sample`` / ``TutorialSampler.sample_new_exmps``, buffer handling
included). The calls of all samplers are interleaved, the order alternating between repeats,
and every figure is a median over ``--repeats`` calls after a warm-up, because the machine
this runs on is shared and noisy.

Besides the shipped sampler (``ours``), opt-in variants are measured (``--variants``, flags
joined by ``+``): ``freeze`` (parameters ``requires_grad=False`` during sampling, as the
tutorial does), ``channels_last`` (channels-last conv weights: the change proposed for
``MCMCSampler``), ``inplace`` (the step on preallocated buffers), ``mkldnn_off``, ``compile`` (``torch.compile`` of the model; falls back to
eager if compiling fails), ``compile_step`` (one compiled SGLD step with ``torch.func.grad``)
and ``bf16`` (bfloat16 autocast: NOT the same numbers). Columns ``max|dx|`` / ``mean|dx|``: pixel
difference to ``ours`` after ``--steps`` steps from the same start with the same noise draws
(for ``tutorial``: its global generator seeded so that its draws coincide with ours; 0 means
bitwise the same chain). ``--malloc-tune`` keeps freed memory in the process (glibc
``mallopt``) for all samplers alike.

The last line is ``ratio X.XX`` = samples/s of ``ours`` (the shipped sampler) / samples/s of
the tutorial sampler.

    python benchmarks/sampler.py [--batch 128] [--steps 20] [--repeats 7] [--threads 2]
    python benchmarks/sampler.py --threads 1 --variants channels_last,freeze+compile,bf16
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE.parent / "solutions"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from ex3_main import MCMCSampler  # noqa: E402
from ex3_model import CNNModel  # noqa: E402
from tutorial_sampler import TutorialCNN, TutorialSampler  # noqa: E402

DEFAULT_VARIANTS = "freeze,bf16"
KNOWN_FLAGS = ("freeze", "channels_last", "inplace", "mkldnn_off", "compile", "compile_step", "bf16")


class VariantSampler(MCMCSampler):
    """``MCMCSampler`` with opt-in speed-ups; ``langevin`` does the same SGLD step
    (perturb, clamp, input gradient of f, clamp the gradient, step, clamp) with the same
    generator draws, so without ``bf16`` it computes the same chain up to floating-point
    rounding of the convolution kernels."""

    def __init__(self, model, *args, flags=(), **kwargs):
        unknown = set(flags) - set(KNOWN_FLAGS)
        if unknown:
            raise ValueError(f"unknown variant flag(s) {sorted(unknown)}; known: {', '.join(KNOWN_FLAGS)}")
        if "channels_last" in flags:   # the shipped option, on a copy so the others keep NCHW
            model, kwargs["channels_last"] = copy.deepcopy(model), True
        super().__init__(model, *args, **kwargs)
        self.flags = set(flags)
        self.compile_error = None
        self.eager_model = self.model
        self._step = None
        if "compile" in self.flags:
            try:
                self.model = torch.compile(self.eager_model)
            except Exception as exc:  # no compiler / unsupported: keep eager
                self.compile_error = f"{type(exc).__name__}: {exc}"
        if "compile_step" in self.flags:
            self._step = self._make_compiled_step()

    def _make_compiled_step(self):
        model = self.eager_model

        def step(x, eps, step_size: float, clip):
            x = (x + eps).clamp(-1.0, 1.0)
            g = torch.func.grad(lambda z: model(z).sum())(x)
            if clip is not None:
                g = g.clamp(-clip, clip)
            return (x + step_size * g).clamp(-1.0, 1.0)

        try:
            return torch.compile(step)
        except Exception as exc:
            self.compile_error = f"{type(exc).__name__}: {exc}"
            return None

    def _autocast(self):
        if "bf16" in self.flags:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _mkldnn(self):
        if "mkldnn_off" in self.flags:
            return torch.backends.mkldnn.flags(enabled=False)
        return contextlib.nullcontext()

    def langevin(self, x, steps, step_size, noise, y=None, keep_steps=()):
        compiled = self.model is not self.eager_model or self._step is not None
        if not compiled:
            return self._langevin(x, steps, step_size, noise, y, keep_steps)
        state = self.generator.get_state()
        try:
            return self._langevin(x, steps, step_size, noise, y, keep_steps)
        except Exception as exc:   # compilation happens at the first call: fall back to eager
            first_line = (str(exc).strip().splitlines() or [""])[0]
            self.compile_error = f"{type(exc).__name__}: {first_line}"
            self.model, self._step = self.eager_model, None
            self.generator.set_state(state)
            return self._langevin(x, steps, step_size, noise, y, keep_steps)

    def _langevin(self, x, steps, step_size, noise, y=None, keep_steps=()):
        if keep_steps:
            raise NotImplementedError("keep_steps is not needed by the benchmark")
        model = self.model
        was_training = self.eager_model.training
        self.eager_model.eval()
        frozen = []
        if "freeze" in self.flags or self._step is not None:
            frozen = [p for p in self.eager_model.parameters() if p.requires_grad]
            for p in frozen:
                p.requires_grad_(False)
        x = x.detach().clone()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            if self._step is not None and y is None:
                with torch.no_grad():
                    for _ in range(steps):
                        eps = noise * self._randn(x.shape, x.device)
                        x = self._step(x, eps, float(step_size), self.grad_clip)
            elif "inplace" in self.flags:
                x = self._langevin_inplace(x, steps, step_size, noise, y, model)
            else:
                with torch.enable_grad(), self._mkldnn():
                    for _ in range(steps):
                        if noise > 0:
                            x = x + noise * self._randn(x.shape, x.device)
                        x = x.clamp(-1.0, 1.0).requires_grad_(True)
                        with self._autocast():
                            f = model(x, y)
                        (grad,) = torch.autograd.grad(f.sum(), x)
                        if self.grad_clip is not None:
                            grad = grad.clamp(-self.grad_clip, self.grad_clip)
                        x = (x.detach() + step_size * grad.to(x.dtype)).clamp(-1.0, 1.0)
        finally:
            for p in frozen:
                p.requires_grad_(True)
            self.eager_model.train(was_training)
        return x.detach().contiguous()


    def _langevin_inplace(self, x, steps, step_size, noise, y, model):
        """The same step on two preallocated buffers (bitwise the same numbers: the noise is
        drawn by the same ``randn`` kernel and every product is rounded before the sum)."""
        eps = torch.empty_like(x)
        with torch.enable_grad(), self._mkldnn():
            for _ in range(steps):
                if noise > 0:
                    torch.randn(x.shape, generator=self.generator, out=eps)
                    x.add_(eps.mul_(noise))
                x.clamp_(-1.0, 1.0).requires_grad_(True)
                with self._autocast():
                    f = model(x, y)
                (grad,) = torch.autograd.grad(f.sum(), x)
                x = x.detach()
                if self.grad_clip is not None:
                    grad.clamp_(-self.grad_clip, self.grad_clip)
                x.add_(grad.mul_(step_size)).clamp_(-1.0, 1.0)
        return x


def tune_malloc() -> bool:
    """Keep freed memory in the process (glibc only): no ``mmap``/``munmap`` and no fresh
    zeroed pages for every large temporary tensor. Same numbers, less kernel time. Equivalent
    to ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824
    MALLOC_TOP_PAD_=268435456`` in the environment. Returns whether it was applied."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        ok &= libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)
        ok &= libc.mallopt(m_top_pad, 256 * 1024 * 1024)
        return bool(ok)
    except (OSError, AttributeError):   # not glibc
        return False


def fill_buffers(ours, tutorial, n: int, img_shape, seed: int) -> None:
    """Both buffers full with the same ``n`` uniform images (steady state of training)."""
    g = torch.Generator().manual_seed(seed + 12345)
    imgs = torch.rand((n, *img_shape), generator=g) * 2 - 1
    for s in ours:
        s.buffer = imgs.clone()
        s.buffer_labels = torch.full((n,), -1, dtype=torch.long)
        s.n_seen = n
    tutorial.examples = list(imgs.clone().chunk(n, dim=0))


def chain_deviation(name, sampler, ref_sampler, x0, args) -> tuple[float, float]:
    """Max and mean |x - x_ours| after ``args.steps`` steps from ``x0``, same noise draws."""
    seed = args.seed + 777
    if name == "tutorial":
        # the tutorial draws one throw-away torch.randn(shape) before its loop from the global
        # generator; seed ours the same way and advance it by that draw
        torch.manual_seed(seed)
        ref_sampler.generator.manual_seed(seed)
        torch.randn(x0.shape, generator=ref_sampler.generator)
        ref = ref_sampler.langevin(x0, args.steps, args.step_size, args.noise)
        torch.manual_seed(seed)
        out = TutorialSampler.generate_samples(sampler.model, x0.clone(), args.steps, args.step_size)
    else:
        ref_sampler.generator.manual_seed(seed)
        ref = ref_sampler.langevin(x0, args.steps, args.step_size, args.noise)
        sampler.generator.manual_seed(seed)
        out = sampler.langevin(x0, args.steps, args.step_size, args.noise)
    diff = (out.detach() - ref).abs()
    return float(diff.max()), float(diff.mean())


def build_model(kind: str, seed: int, checkpoint: str | None = None):
    torch.manual_seed(seed)
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        hp = state.get("hyper_parameters", {})
        model = CNNModel(num_classes=hp.get("num_classes", 42), hidden=hp.get("config", {}).get("hidden", 32),
                         in_channels=hp.get("img_shape", [1])[0])
        model.load_state_dict({k[len("cnn."):]: v for k, v in state["state_dict"].items() if k.startswith("cnn.")})
        return model, tuple(hp.get("img_shape", (1, 56, 56)))
    if kind == "glyph":
        return CNNModel(num_classes=42, hidden=32), (1, 56, 56)
    return TutorialCNN(hidden_features=32), (1, 28, 28)


def busy_warning(threads: int) -> str | None:
    """A warning when other processes keep the cores busy: a pool of several threads then
    waits at every parallel region for a descheduled thread (measured here: 5-14x slower)."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (OSError, AttributeError):
        return None
    if threads > 1 and load > cores - threads + 0.5:
        return (f"warning: load average {load:.1f} on {cores} cores: with {threads} threads every "
                f"parallel region waits for descheduled threads, so timings are dominated by the "
                f"other processes; --threads 1 gives steadier numbers")
    return None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128, help="chains per call (sample_size), default 128")
    p.add_argument("--steps", type=int, default=20, help="SGLD steps per call, default 20")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per variant, default 7")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per variant first, default 1")
    p.add_argument("--threads", type=int, default=2, help="torch threads, default 2")
    p.add_argument("--step-size", type=float, default=10.0)
    p.add_argument("--noise", type=float, default=0.005)
    p.add_argument("--grad-clip", type=float, default=0.03)
    p.add_argument("--buffer", type=int, default=8192, help="buffer size (both start full), default 8192")
    p.add_argument("--model", choices=("glyph", "tutorial"), default="glyph",
                   help="glyph: CNNModel(42, hidden=32) on 56x56; tutorial: the tutorial's CNN on 28x28")
    p.add_argument("--checkpoint", default=None, metavar="CKPT",
                   help="load the CNN of a trained run (run/checkpoints/last.ckpt) instead of a random init")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help=f"comma-separated opt-in variants of ours, flags joined by '+' "
                        f"({', '.join(KNOWN_FLAGS)}); 'none' for only ours vs tutorial "
                        f"(default {DEFAULT_VARIANTS})")
    p.add_argument("--malloc-tune", action="store_true",
                   help="glibc: keep freed memory in the process (mallopt) for ALL samplers; "
                        "same numbers, fewer page faults")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    malloc_tuned = tune_malloc() if args.malloc_tune else False
    warnings.filterwarnings("ignore")
    random.seed(args.seed)
    np.random.seed(args.seed)

    model, img_shape = build_model(args.model, args.seed, args.checkpoint)
    warning = busy_warning(args.threads)
    if warning:
        print(warning, flush=True)
    kw = dict(max_len=args.buffer, reinit_frac=TutorialSampler.reinit_prob, grad_clip=args.grad_clip,
              seed=args.seed)
    TutorialSampler.noise_std, TutorialSampler.grad_clip = args.noise, args.grad_clip
    # ours as the quick profile ships it (channels-last conv weights, on its own copy of the
    # same weights so that the tutorial keeps the default layout), and plain ours for reference
    samplers = {"ours": MCMCSampler(copy.deepcopy(model), img_shape, args.batch, channels_last=True, **kw),
                "ours (NCHW)": MCMCSampler(model, img_shape, args.batch, **kw),
                "tutorial": TutorialSampler(model, img_shape, args.batch, max_len=args.buffer)}
    variant_names = [] if args.variants.strip() in ("", "none") else \
        [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variant_names:
        samplers[f"ours+{v}"] = VariantSampler(model, img_shape, args.batch, flags=v.split("+"), **kw)
    ours_like = [s for s in samplers.values() if isinstance(s, MCMCSampler)]
    fill_buffers(ours_like, samplers["tutorial"], args.buffer, img_shape, args.seed)

    def call(name):
        s = samplers[name]
        if name == "tutorial":
            return s.sample_new_exmps(args.steps, args.step_size)
        return s.sample(args.steps, args.step_size, args.noise)

    names = list(samplers)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model "
          f"{args.checkpoint or args.model} "
          f"{img_shape}, batch {args.batch}, {args.steps} steps, step size {args.step_size:g}, "
          f"noise {args.noise:g}, grad clip {args.grad_clip:g}, buffer {args.buffer} (full), "
          f"{args.repeats} repeats, malloc tuned: {malloc_tuned}", flush=True)

    # warm-up (includes compilation for the compiled variants)
    first_call = {}
    for name in names:
        t = time.perf_counter()
        for _ in range(max(1, args.warmup)):
            call(name)
        first_call[name] = time.perf_counter() - t

    # deviation from ours after the same steps from the same start and noise
    g = torch.Generator().manual_seed(args.seed + 99)
    x0 = (torch.rand((min(args.batch, 32), *img_shape), generator=g) * 2 - 1)
    dev_ref = MCMCSampler(model, img_shape, args.batch, **kw)
    deviation = {name: ((0.0, 0.0) if name == "ours (NCHW)" else chain_deviation(name, samplers[name], dev_ref, x0, args))
                 for name in names}

    times = {name: [] for name in names}
    for r in range(args.repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t = time.perf_counter()
            call(name)
            times[name].append(time.perf_counter() - t)

    med = {n: statistics.median(v) for n, v in times.items()}
    base = med["tutorial"]
    paired = {n: statistics.median(b / a for a, b in zip(times[n], times["tutorial"])) for n in names}
    print(f"\n{'sampler':<36} {'s/call':>8} {'samples/s':>10} {'vs tut.':>8} {'paired':>7} "
          f"{'warm-up s':>9} {'max|dx|':>9} {'mean|dx|':>9}")
    for n in names:
        note = ""
        s = samplers[n]
        if getattr(s, "compile_error", None):
            note = f"  (compile failed, eager: {s.compile_error[:60]})"
        print(f"{n:<36} {med[n]:>8.3f} {args.batch / med[n]:>10.1f} {base / med[n]:>7.2f}x "
              f"{paired[n]:>6.2f}x {first_call[n]:>9.1f} {deviation[n][0]:>9.2g} {deviation[n][1]:>9.2g}{note}")
    print("(s/call, samples/s: medians; 'vs tut.': ratio of medians; 'paired': median of the "
          "per-repeat ratios; max|dx|, mean|dx|: pixel deviation from ours after the same chain)")
    print(f"ratio {base / med['ours']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
