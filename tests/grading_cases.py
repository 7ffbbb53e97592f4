"""Submissions for the grading tests, built from the reference in ``solutions/``.

* ``MUTANTS``: wrong implementations, one bug each, with the task the bug belongs to. The
  grader must take points off that task and give full points everywhere else (each task is
  checked with stand-ins for the others, so a bug elsewhere cannot reach it).
* ``ALTERNATIVES``: correct implementations written differently from ours, one for every
  reading the template's contract allows (the JEM authors' pre-filled buffer with random slots,
  the UvA tutorial's list buffer, a deque, ``.backward()`` with frozen parameters and the noise
  after the move, ``torch.func``, the marginal energy in the conditional ``px_step``, another
  pooling and head, other formulas for the same quantities). The grader must give them full
  marks.
* ``ROBUSTNESS``: submissions that misbehave (infinite loop, crash at import, syntax error,
  huge allocation, ``sys.exit()``, a missing file, an edited notebook): each may cost the
  affected tasks only, and the batch must go on.

Each edit replaces one exact snippet of the reference; building a submission fails loudly
when the snippet is not there (exactly once), so the cases follow the reference as it changes.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
TEMPLATE = ROOT / "ex3"
FILES = ("ex3_data.py", "ex3_model.py", "ex3_main.py", "ex3_ood.py")


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Case:
    name: str
    task: str | None          # the task that must lose points (None: full marks expected)
    edits: tuple[Edit, ...]
    what: str


def apply_edits(folder: Path, edits) -> None:
    for edit in edits:
        path = folder / edit.file
        text = path.read_text()
        count = text.count(edit.old)
        if count != 1:
            raise AssertionError(f"{edit.file}: snippet found {count} times, expected once:\n{edit.old}")
        path.write_text(text.replace(edit.old, edit.new))


def build(case_or_edits, target: Path, source: Path = SOLUTIONS) -> Path:
    """Write the reference files with the case's edits applied into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(source / name, target / name)
    edits = case_or_edits.edits if isinstance(case_or_edits, Case) else case_or_edits
    apply_edits(target, edits)
    return target


def _m(name, task, file, old, new, what):
    return Case(name, task, (Edit(file, old, new),), what)


MUTANTS = (
    # 3.2a: the network
    _m("logits_softmaxed", "3.2a", "ex3_model.py",
       "return self.head(self.pool(self.features(x)))",
       "return torch.softmax(self.head(self.pool(self.features(x))), dim=1)",
       "get_logits returns probabilities instead of logits"),
    _m("pool_fixed_size", "3.2a", "ex3_model.py",
       "self.pool = nn.AdaptiveAvgPool2d(pool)", "self.pool = nn.AvgPool2d(7, stride=7)",
       "a fixed 7x7 average pooling: only 56x56 inputs work"),
    _m("batch_norm_in_head", "3.2a", "ex3_model.py",
       "            nn.Linear(c3 * pool * pool, c3),\n",
       "            nn.Linear(c3 * pool * pool, c3),\n            nn.BatchNorm1d(c3),\n",
       "batch norm in the head couples the images of a batch"),
    _m("layer_left_unused", "3.2a", "ex3_model.py",
       "        self.pool = nn.AdaptiveAvgPool2d(pool)\n",
       "        self.pool = nn.AdaptiveAvgPool2d(pool)\n        self.skip = nn.Linear(c3, num_classes)\n",
       "a layer that get_logits never uses"),
    # 3.2b: the energy
    _m("energy_sign_flipped", "3.2b", "ex3_model.py",
       "return torch.logsumexp(logits, dim=1)", "return -torch.logsumexp(logits, dim=1)",
       "forward returns E(x) instead of f(x) = -E(x)"),
    _m("mean_not_logsumexp", "3.2b", "ex3_model.py",
       "return torch.logsumexp(logits, dim=1)", "return logits.mean(dim=1)",
       "mean of the logits instead of logsumexp"),
    _m("max_not_logsumexp", "3.2b", "ex3_model.py",
       "return torch.logsumexp(logits, dim=1)", "return logits.max(dim=1).values",
       "max of the logits instead of logsumexp"),
    _m("conditional_ignores_y", "3.2b", "ex3_model.py",
       "return logits.gather(1, y.view(-1, 1).long()).squeeze(1)", "return torch.logsumexp(logits, dim=1)",
       "forward(x, y) ignores the class"),
    _m("naive_logsumexp", "3.2b", "ex3_model.py",
       "return torch.logsumexp(logits, dim=1)", "return logits.exp().sum(dim=1).log()",
       "log(sum(exp)) overflows for large logits"),
    # 3.3a: starts and replay buffer
    _m("buffer_never_trimmed", "3.3a", "ex3_main.py",
       "room = max(0, self.max_len - len(self.buffer))", "room = len(fresh)",
       "every fresh chain is appended: the buffer grows without bound"),
    _m("buffer_never_filled", "3.3a", "ex3_main.py",
       "room = max(0, self.max_len - len(self.buffer))", "room = 0",
       "fresh chains never enter the buffer: it stays empty"),
    _m("no_fresh_chains", "3.3a", "ex3_main.py",
       "from_buffer = (torch.rand(n, generator=g) >= self.reinit_frac) & (torch.rand(n, generator=g) < fill)",
       "from_buffer = (torch.rand(n, generator=g) >= 0.0) & (torch.rand(n, generator=g) < fill)",
       "reinit_frac ignored: once the buffer is full no chain starts fresh"),
    _m("reinit_inverted", "3.3a", "ex3_main.py",
       "from_buffer = (torch.rand(n, generator=g) >= self.reinit_frac) & (torch.rand(n, generator=g) < fill)",
       "from_buffer = (torch.rand(n, generator=g) < self.reinit_frac) & (torch.rand(n, generator=g) < fill)",
       "reinit_frac used as the share of chains continued from the buffer"),
    _m("fresh_scale_ignored", "3.3a", "ex3_main.py",
       "x0 = (self.init_std * torch.randn((n, *self.img_shape), generator=g)).clamp(-1.0, 1.0)",
       "x0 = torch.randn((n, *self.img_shape), generator=g).clamp(-1.0, 1.0)",
       "fresh chains start from N(0, 1) instead of N(0, init_std^2)"),
    _m("chains_not_written_back", "3.3a", "ex3_main.py",
       "            self.buffer[slots[old]] = x[old]\n", "",
       "chains continued from the buffer are never written back: persistent chains never advance"),
    # 3.3b/c: the SGLD step
    _m("gradient_ascent_on_energy", "3.3b/c", "ex3_main.py",
       "x = (x.detach() + step_size * grad).clamp(-1.0, 1.0)",
       "x = (x.detach() - step_size * grad).clamp(-1.0, 1.0)",
       "SGLD climbs the energy"),
    _m("noise_missing", "3.3b/c", "ex3_main.py",
       "x = x + noise * self._randn(x.shape, x.device)", "x = x",
       "no Langevin noise"),
    _m("noise_is_a_variance", "3.3b/c", "ex3_main.py",
       "x = x + noise * self._randn(x.shape, x.device)", "x = x + noise ** 2 * self._randn(x.shape, x.device)",
       "noise squared: the noise scale taken as a variance"),
    _m("parameter_gradients_left", "3.3b/c", "ex3_main.py",
       "(grad,) = torch.autograd.grad(f.sum(), x)",
       "f.sum().backward()\n                grad = x.grad",
       ".backward() without protecting the parameters: their .grad fills up"),
    _m("mode_not_restored", "3.3b/c", "ex3_main.py",
       "self.model.train(was_training)", "pass",
       "the model is left in eval mode after sampling"),
    _m("no_clamp", "3.3b/c", "ex3_main.py",
       "x = (x.detach() + step_size * grad).clamp(-1.0, 1.0)", "x = x.detach() + step_size * grad",
       "pixels leave [-1, 1]"),
    _m("grad_clip_ignored", "3.3b/c", "ex3_main.py",
       "                if self.grad_clip is not None:\n                    grad = grad.clamp(-self.grad_clip, self.grad_clip)\n",
       "", "the input gradient is never clipped"),
    _m("graph_kept_across_steps", "3.3b/c", "ex3_main.py",
       "(grad,) = torch.autograd.grad(f.sum(), x)", "(grad,) = torch.autograd.grad(f.sum(), x, create_graph=True)",
       "the autograd graph of every step is kept: memory grows with the number of steps"),
    _m("sgld_ignores_labels", "3.3b/c", "ex3_main.py",
       "f = self.model(x, y)", "f = self.model(x)",
       "class-conditional chains sample the marginal energy"),
    # 3.4a: the contrastive loss
    _m("contrastive_terms_swapped", "3.4a", "ex3_main.py",
       "cdiv = e_real.mean() - e_fake.mean()", "cdiv = e_fake.mean() - e_real.mean()",
       "E(x_fake) - E(x_real)"),
    _m("regulariser_missing", "3.4a", "ex3_main.py",
       "reg = self.cfg.alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean())",
       "reg = torch.zeros((), device=e_real.device)",
       "no L2 energy regulariser"),
    _m("regulariser_on_real_only", "3.4a", "ex3_main.py",
       "reg = self.cfg.alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean())",
       "reg = self.cfg.alpha * e_real.pow(2).mean()",
       "the L2 regulariser forgets the samples"),
    _m("fake_energy_detached", "3.4a", "ex3_main.py",
       "e_fake = -self.cnn(x_fake, y_fake)", "e_fake = -self.cnn(x_fake, y_fake).detach()",
       "E(x_fake) without gradient: right value, wrong training signal"),
    _m("conditional_energies_mixed", "3.4a", "ex3_main.py",
       "e_fake = -self.cnn(x_fake, y_fake)", "e_fake = -self.cnn(x_fake)",
       "jem_cond: the real pairs with E(x, y), the samples with E(x): neither reading of the objective"),
    # 3.4b: the classifier
    _m("cross_entropy_on_probabilities", "3.4b", "ex3_main.py",
       "loss = F.cross_entropy(logits, y)", "loss = F.cross_entropy(logits.softmax(dim=1), y)",
       "classification on the wrong output (softmax applied twice)"),
    _m("nll_on_raw_logits", "3.4b", "ex3_main.py",
       "loss = F.cross_entropy(logits, y)", "loss = F.nll_loss(logits, y)",
       "nll_loss on raw logits (no log-softmax)"),
    # 3.4c: the training step
    _m("pyx_term_dropped", "3.4c", "ex3_main.py",
       "loss = loss + self.cfg.pyx_weight * self.pyx_step(batch)", "pass",
       "training_step forgets the classification term"),
    _m("warmup_ignored", "3.4c", "ex3_main.py",
       "w_px = self.px_weight_now()", "w_px = self.cfg.px_weight",
       "the p(x) term at full weight from the first step (warm-up ignored)"),
    _m("pyx_in_ebm_mode", "3.4c", "ex3_main.py",
       "        if self.cfg.mode != \"ebm\":\n            loss = loss + self.cfg.pyx_weight * self.pyx_step(batch)\n",
       "        loss = loss + self.cfg.pyx_weight * self.pyx_step(batch)\n",
       "the classification term is trained in 'ebm' mode too"),
    # 3.5: long-run generation
    _m("generation_ignores_K", "3.5", "ex3_main.py",
       "samples, chain = sampler.langevin(x0, K, step_size, noise, y=y, keep_steps=keep)",
       "samples, chain = sampler.langevin(x0, 60, step_size, noise, y=y, keep_steps=keep)",
       "run_generation always runs 60 steps"),
    _m("generation_drops_grad_clip", "3.5", "ex3_main.py",
       "                          grad_clip=grad_clip, seed=seed)", "                          grad_clip=None, seed=seed)",
       "run_generation samples without the gradient clip"),
    _m("generation_ignores_labels", "3.5", "ex3_main.py",
       "samples, chain = sampler.langevin(x0, K, step_size, noise, y=y, keep_steps=keep)",
       "samples, chain = sampler.langevin(x0, K, step_size, noise, keep_steps=keep)",
       "class-conditional generation samples the marginal energy"),
    _m("generation_init_std_dropped", "3.5", "ex3_main.py",
       "sampler = MCMCSampler(model, img_shape, n, max_len=1, reinit_frac=1.0, init_std=init_std,",
       "sampler = MCMCSampler(model, img_shape, n, max_len=1, reinit_frac=1.0, init_std=1.0,",
       "run_generation starts its chains from N(0, 1) whatever init_std says"),
    # 3.6: OOD detection
    _m("auroc_labels_flipped", "3.6", "ex3_main.py",
       "labels = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])",
       "labels = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])",
       "AUROC with ID = 1 and OOD = 0"),
    _m("auroc_of_thresholded_scores", "3.6", "ex3_main.py",
       "aurocs[name] = float(roc_auc_score(labels, all_scores))",
       "aurocs[name] = float(roc_auc_score(labels, all_scores > np.median(all_scores)))",
       "AUROC of a yes/no decision instead of the scores"),
)


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i:text.index(end, i)]


def _replace_sampler_parts(bodies: dict[str, str], extra_init: str = "", imports: str = "") -> tuple[Edit, ...]:
    """Edits that replace the reference's sample_initial / update_buffer / langevin bodies (the
    solution blocks) by other implementations, and add lines to ``__init__``."""
    main = (SOLUTIONS / "ex3_main.py").read_text()
    edits = []
    if imports:
        edits.append(Edit("ex3_main.py", "import sys\n", imports + "import sys\n"))
    if extra_init:
        edits.append(Edit("ex3_main.py", "        self.n_seen = 0                                              # fresh chains offered so far\n",
                          "        self.n_seen = 0                                              # fresh chains offered so far\n" + extra_init))
    anchors = {"sample_initial": "# BEGIN SOLUTION 3.3a: fresh chains", "update_buffer": "# BEGIN SOLUTION 3.3a: write chains back",
               "langevin": "# BEGIN SOLUTION 3.3b/c"}
    for name, body in bodies.items():
        start = main.index(anchors[name])
        start = main.rindex("\n", 0, start) + 1
        stop = main.index("# END SOLUTION\n", start) + len("# END SOLUTION\n")
        edits.append(Edit("ex3_main.py", main[start:stop], body))
    return tuple(edits)


# The JEM authors' buffer: pre-filled with fresh noise, chains drawn from random slots (with
# replacement), every chain (fresh ones too) written back to the slot it was drawn for.
_JEM_CODE_SAMPLER = {
    "sample_initial": """        slots = torch.randint(self.max_len, (n,), generator=self.generator)
        x0 = self.buffer[slots].clone()
        fresh = torch.rand(n, generator=self.generator) < self.reinit_frac
        noise = (self.init_std * torch.randn((n, *self.img_shape), generator=self.generator)).clamp(-1, 1)
        x0[fresh] = noise[fresh]
        return x0.to(self._device()), slots
""",
    "update_buffer": """        self.buffer[slots] = x.detach().cpu()
""",
}
_JEM_CODE_INIT = ("        self.buffer = (self.init_std * torch.randn((self.max_len, *self.img_shape),\n"
                  "                                                    generator=self.generator)).clamp(-1, 1)\n")

# The UvA tutorial's buffer: a list of (1, C, H, W) images, the share of new chains drawn from a
# binomial, old ones with random.choices; new chains put in front and the list cut to max_len.
_TUTORIAL_SAMPLER = {
    "sample_initial": """        n_new = int(np.random.binomial(n, self.reinit_frac)) if self.buffer else n
        fresh = (torch.randn((n_new, *self.img_shape)) * self.init_std).clamp(-1, 1)
        old = torch.cat(random.choices(self.buffer, k=n - n_new), dim=0) if n > n_new else fresh[:0]
        return torch.cat([fresh, old], dim=0).to(self._device()), None
""",
    "update_buffer": """        self.buffer = list(x.detach().cpu().split(1, dim=0)) + self.buffer
        self.buffer = self.buffer[:self.max_len]
""",
}

# SGLD through .backward() with the parameters frozen, the noise added after the move.
_BACKWARD_LANGEVIN = {
    "langevin": """                frozen = [p.requires_grad for p in self.model.parameters()]
                for p in self.model.parameters():
                    p.requires_grad_(False)
                x = x.detach().requires_grad_(True)
                self.model(x, y).sum().backward()
                step = x.grad if self.grad_clip is None else x.grad.clamp(-self.grad_clip, self.grad_clip)
                for p, flag in zip(self.model.parameters(), frozen):
                    p.requires_grad_(flag)
                x = (x.detach() + step_size * step).clamp(-1, 1)
                x = (x + noise * torch.randn_like(x)).clamp(-1, 1)
""",
}

# torch.func: the input gradient of a functional call (parameters never see a gradient).
_FUNCTIONAL_LANGEVIN = {
    "langevin": """                noisy = (x.detach() + noise * torch.randn_like(x)).clamp(-1, 1)
                grad = torch.func.grad(lambda z: self.model(z, y).sum())(noisy)
                if self.grad_clip:
                    grad = torch.clamp(grad, min=-self.grad_clip, max=self.grad_clip)
                x = torch.clamp(noisy + step_size * grad, -1, 1).detach()
""",
}


def _jem_code_alternative() -> Case:
    return Case("jem_code_buffer", None, _replace_sampler_parts(_JEM_CODE_SAMPLER, _JEM_CODE_INIT),
                "buffer pre-filled with noise, random slots, every chain written back (the JEM code)")


def _tutorial_alternative() -> Case:
    return Case("tutorial_list_buffer", None,
                _replace_sampler_parts(_TUTORIAL_SAMPLER, "        self.buffer = []\n", "import random\n"),
                "a list buffer, new chains in front, cut to max_len (the UvA tutorial)")


def _backward_alternative() -> Case:
    return Case("backward_sampler", None, _replace_sampler_parts(_BACKWARD_LANGEVIN),
                ".backward() with the parameters frozen, noise after the move")


def _functional_alternative() -> Case:
    return Case("functional_style", None, (
        *_replace_sampler_parts(_FUNCTIONAL_LANGEVIN),
        Edit("ex3_main.py", "        cdiv = e_real.mean() - e_fake.mean()\n        reg = self.cfg.alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean())\n",
             "        energies = torch.cat([e_real, e_fake])\n"
             "        weights = torch.cat([torch.full_like(e_real, 1 / len(e_real)), torch.full_like(e_fake, -1 / len(e_fake))])\n"
             "        cdiv = (weights * energies).sum()\n"
             "        reg = self.cfg.alpha * (weights.abs() * energies.pow(2)).sum()\n"),
    ), "torch.func.grad for SGLD, the losses as weighted sums")


def _marginal_conditional_alternative() -> Case:
    return _m("conditional_px_marginal", None, "ex3_main.py",
              "        e_real = -self.cnn(x_real, y_real if self.conditional else None)\n        e_fake = -self.cnn(x_fake, y_fake)\n",
              "        e_real = -self.cnn(x_real)              # log q(x): the marginal energy, samples drawn per class\n"
              "        e_fake = -self.cnn(x_fake)\n",
              "jem_cond px_step with the marginal energy for real images and samples (the JEM code's reading)")


def _own_network_alternative() -> Case:
    return Case("own_network", None, (
        Edit("ex3_model.py", _between((SOLUTIONS / "ex3_model.py").read_text(), "        self.pool = nn.AdaptiveAvgPool2d(pool)\n",
                                      "        # END SOLUTION\n"),
             "        self.squeeze = nn.Conv2d(c3, c3 // 2, kernel_size=1)\n"
             "        self.out = nn.Linear(c3 // 2 * 2 * 2, num_classes)\n"),
        Edit("ex3_model.py", "return self.head(self.pool(self.features(x)))",
             "h = nn.functional.silu(self.squeeze(self.features(x)))\n"
             "        return self.out(nn.functional.adaptive_max_pool2d(h, 2).flatten(1))"),
    ), "its own pooling and head (1x1 conv, 2x2 max pooling, one linear layer)")


# A tutorial-style sampler on a deque (oldest images drop out first): labels ignored for buffer
# picks, Python's random module, .backward() with the parameters frozen, the gradient step before
# the noise, and a run_generation with its own loop.
_DEQUE_PARTS = {
    "sample_initial": """        starts = []
        for _ in range(n):
            if not self.buffer or self.rng.random() < self.reinit_frac:
                starts.append(torch.randn(self.img_shape) * self.init_std)
            else:
                starts.append(self.rng.choice(self.buffer))
        return torch.stack(starts).clamp(-1, 1).to(self._device()), None
""",
    "update_buffer": """        self.buffer.extend(img.clone() for img in x.detach().cpu())
""",
    "langevin": """                frozen = [p.requires_grad for p in self.model.parameters()]
                for p in self.model.parameters():
                    p.requires_grad_(False)
                x = x.detach().clone().requires_grad_(True)
                self.model(x, y).sum().backward()
                g = x.grad if self.grad_clip is None else x.grad.clamp(-self.grad_clip, self.grad_clip)
                x.data.add_(step_size * g)
                x.data.add_(noise * torch.randn_like(x))
                x.data.clamp_(-1, 1)
                x = x.detach()
                for p, flag in zip(self.model.parameters(), frozen):
                    p.requires_grad_(flag)
""",
}

_OWN_GENERATION_LOOP = '''    torch.manual_seed(seed)
    x = (torch.randn(n if y is None else len(y), *img_shape) * init_std).clamp(-1, 1)
    chain = {0: x.clone()}
    for k in range(1, K + 1):
        x = x.requires_grad_(True)
        (g,) = torch.autograd.grad(model(x, y).sum(), x)
        if grad_clip is not None:
            g = g.clamp(-grad_clip, grad_clip)
        x = (x.detach() + step_size * g + noise * torch.randn_like(x)).clamp(-1, 1)
        if k in keep:
            chain[k] = x.clone()
    samples = x
'''


def _deque_alternative() -> Case:
    main = (SOLUTIONS / "ex3_main.py").read_text()
    old_generation = _between(main, "    sampler = MCMCSampler(model, img_shape, n, max_len=1",
                              "    # END SOLUTION\n    paths = []")
    return Case("deque_buffer_and_backward", None, (
        *_replace_sampler_parts(_DEQUE_PARTS, "        self.buffer = collections.deque(maxlen=self.max_len)\n"
                                              "        self.rng = random.Random(seed)\n",
                                "import collections\nimport random\n"),
        Edit("ex3_main.py", old_generation, _OWN_GENERATION_LOOP),
        # px_step: the same loss, written with stacked energies and one regulariser term
        Edit("ex3_main.py", "        reg = self.cfg.alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean())\n",
             "        reg = self.cfg.alpha * (torch.cat([e_real, e_fake]).pow(2) * torch.cat([\n"
             "            torch.full_like(e_real, 1 / len(e_real)), torch.full_like(e_fake, 1 / len(e_fake))])).sum()\n"),
    ), "deque buffer, random module, .backward() with frozen parameters, own generation loop")


def _rewritten_alternative() -> Case:
    return Case("rewritten_formulas", None, (
        Edit("ex3_model.py", "return self.head(self.pool(self.features(x)))",
             "h = torch.nn.functional.adaptive_avg_pool2d(self.features(x), self.pool.output_size)\n"
             "        return self.head[3](self.head[2](self.head[1](torch.flatten(h, 1))))"),
        Edit("ex3_model.py", "return torch.logsumexp(logits, dim=1)",
             "top = logits.max(dim=1, keepdim=True).values\n"
             "            return (top + (logits - top).exp().sum(dim=1, keepdim=True).log()).squeeze(1)"),
        Edit("ex3_model.py", "return logits.gather(1, y.view(-1, 1).long()).squeeze(1)",
             "return logits[torch.arange(len(y)), y.long()]"),
        Edit("ex3_main.py", "loss = F.cross_entropy(logits, y)",
             "loss = F.nll_loss(F.log_softmax(logits, dim=1), y)"),
        Edit("ex3_main.py", "        cdiv = e_real.mean() - e_fake.mean()\n",
             "        cdiv = -(e_fake.mean() - e_real.mean())\n"),
        Edit("ex3_main.py", "        aurocs[name] = float(roc_auc_score(labels, all_scores))\n",
             "        aurocs[name] = float(roc_auc_score(1 - labels, -all_scores))  # same ranking, both flipped\n"),
        Edit("ex3_main.py", "                (grad,) = torch.autograd.grad(f.sum(), x)\n",
             "                grad = torch.autograd.grad(f, x, grad_outputs=torch.ones_like(f))[0]\n"),
        Edit("ex3_main.py", "            loss = loss + w_px * self.px_step(batch)\n",
             "            loss = torch.add(loss, self.px_step(batch), alpha=w_px)\n"),
    ), "manual stable logsumexp, indexing, nll_loss, rearranged losses, flipped-twice AUROC")


ALTERNATIVES = (_jem_code_alternative(), _tutorial_alternative(), _deque_alternative(), _backward_alternative(),
                _functional_alternative(), _marginal_conditional_alternative(), _own_network_alternative(),
                _rewritten_alternative())


# -- misbehaving submissions ----------------------------------------------------------------
ROBUSTNESS = (
    _m("infinite_loop", "3.6", "ex3_ood.py",
       '    return -model(x, y)\n', '    while True:\n        pass\n', "score never returns"),
    _m("crash_at_import", "3.6", "ex3_ood.py",
       "from glyph_ebm import ood\n", "from glyph_ebm import ood\n\nraise RuntimeError('half-finished edit')\n",
       "ex3_ood.py raises when imported"),
    _m("syntax_error", "3.2", "ex3_model.py",
       "def get_logits(self, x: torch.Tensor) -> torch.Tensor:", "def get_logits(self, x: torch.Tensor) -> torch.Tensor",
       "a missing colon in ex3_model.py"),
    _m("huge_allocation", "3.3a", "ex3_main.py",
       "        x = x.detach().cpu()\n        labels = torch.full(",
       "        hoard = torch.ones(2 * 10**9)  # 8 GB\n        x = x.detach().cpu()\n        labels = torch.full(",
       "update_buffer allocates 8 GB"),
    _m("sys_exit", "3.4b", "ex3_main.py",
       "        logits = self.cnn.get_logits(x)\n        loss = F.cross_entropy(logits, y)\n",
       "        sys.exit('done')\n", "pyx_step calls sys.exit()"),
)


def write_notebook_variant(released_notebook: Path, target: Path, edit_cell: str | None = None,
                           delete_cell: str | None = None) -> Path:
    """A copy of the released notebook with one cell edited and/or one deleted."""
    nb = json.loads(released_notebook.read_text())
    cells = []
    for cell in nb["cells"]:
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if gid == delete_cell:
            continue
        if gid == edit_cell:
            cell = {**cell, "source": "print('all good')  # tests removed\n"}
        cells.append(cell)
    nb["cells"] = cells
    target.write_text(json.dumps(nb))
    return target


def tasks_of(group: str, all_tasks) -> set[str]:
    """``"3.3"`` -> every task starting with 3.3; ``"3.4b"`` -> just that task."""
    return {t for t in all_tasks if t == group or re.match(re.escape(group) + r"[a-z/]", t)}

