"""Submissions for the grading tests, built from the reference in ``solutions/``.

* ``MUTANTS``: wrong implementations, one bug each, with the task the bug belongs to. The
  grader must take points off that task and give full points everywhere else.
* ``ALTERNATIVES``: correct implementations written differently from ours (another buffer
  data structure, ``.backward()`` instead of ``torch.autograd.grad``, other formulas for the
  same quantities). The grader must give them full marks.
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
    _m("logits_softmaxed", "3.2a", "ex3_model.py",
       "return self.head(self.pool(self.features(x)))",
       "return torch.softmax(self.head(self.pool(self.features(x))), dim=1)",
       "get_logits returns probabilities instead of logits"),
    _m("energy_sign_flipped", "3.2b", "ex3_model.py",
       "return torch.logsumexp(logits, dim=1)", "return -torch.logsumexp(logits, dim=1)",
       "forward returns E(x) instead of f(x) = -E(x)"),
    _m("mean_not_logsumexp", "3.2b", "ex3_model.py",
       "return torch.logsumexp(logits, dim=1)", "return logits.mean(dim=1)",
       "mean of the logits instead of logsumexp"),
    _m("conditional_ignores_y", "3.2b", "ex3_model.py",
       "return logits.gather(1, y.view(-1, 1).long()).squeeze(1)", "return torch.logsumexp(logits, dim=1)",
       "forward(x, y) ignores the class"),
    _m("naive_logsumexp", "3.2b", "ex3_model.py",
       "return torch.logsumexp(logits, dim=1)", "return logits.exp().sum(dim=1).log()",
       "log(sum(exp)) overflows for large logits"),
    _m("buffer_never_trimmed", "3.3a", "ex3_main.py",
       "room = max(0, self.max_len - len(self.buffer))", "room = len(fresh)",
       "every fresh chain is appended: the buffer grows without bound"),
    _m("no_fresh_chains", "3.3a", "ex3_main.py",
       "from_buffer = (torch.rand(n, generator=g) >= self.reinit_frac) & (torch.rand(n, generator=g) < fill)",
       "from_buffer = (torch.rand(n, generator=g) >= 0.0) & (torch.rand(n, generator=g) < fill)",
       "reinit_frac ignored: once the buffer is full no chain starts fresh"),
    _m("gradient_ascent_on_energy", "3.3b/c", "ex3_main.py",
       "x = (x.detach() + step_size * grad).clamp(-1.0, 1.0)",
       "x = (x.detach() - step_size * grad).clamp(-1.0, 1.0)",
       "SGLD climbs the energy"),
    _m("noise_missing", "3.3b/c", "ex3_main.py",
       "x = x + noise * self._randn(x.shape, x.device)", "x = x",
       "no Langevin noise"),
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
    _m("contrastive_terms_swapped", "3.4a", "ex3_main.py",
       "cdiv = e_real.mean() - e_fake.mean()", "cdiv = e_fake.mean() - e_real.mean()",
       "E(x_fake) - E(x_real)"),
    _m("regulariser_missing", "3.4a", "ex3_main.py",
       "reg = self.cfg.alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean())",
       "reg = torch.zeros((), device=e_real.device)",
       "no L2 energy regulariser"),
    _m("fake_energy_detached", "3.4a", "ex3_main.py",
       "e_fake = -self.cnn(x_fake, y_fake)", "e_fake = -self.cnn(x_fake, y_fake).detach()",
       "E(x_fake) without gradient: right value, wrong training signal"),
    _m("cross_entropy_on_probabilities", "3.4b", "ex3_main.py",
       "loss = F.cross_entropy(logits, y)", "loss = F.cross_entropy(logits.softmax(dim=1), y)",
       "classification on the wrong output (softmax applied twice)"),
    _m("pyx_term_dropped", "3.4c", "ex3_main.py",
       "loss = loss + self.cfg.pyx_weight * self.pyx_step(batch)", "pass",
       "training_step forgets the classification term"),
    _m("generation_ignores_K", "3.5", "ex3_main.py",
       "samples, chain = sampler.langevin(x0, K, step_size, noise, y=y, keep_steps=keep)",
       "samples, chain = sampler.langevin(x0, 60, step_size, noise, y=y, keep_steps=keep)",
       "run_generation always runs 60 steps"),
    _m("auroc_labels_flipped", "3.6", "ex3_main.py",
       "labels = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])",
       "labels = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])",
       "AUROC with ID = 1 and OOD = 0"),
)


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i:text.index(end, i)]


# A tutorial-style sampler: a deque as the buffer, labels ignored for buffer picks, Python's
# random module, .backward() with the parameters frozen during sampling, gradient step before
# the noise; and a run_generation with its own loop.
_DEQUE_SAMPLER = '''
class MCMCSampler:
    """SGLD with a deque as replay buffer (oldest images drop out first)."""

    def __init__(self, model, img_shape, sample_size, max_len=10000, reinit_frac=0.05,
                 init_std=0.01, grad_clip=None, seed=0, channels_last=False):
        self.model = model
        self.img_shape = tuple(img_shape)
        self.sample_size = sample_size
        self.max_len = max_len
        self.reinit_frac = reinit_frac
        self.init_std = init_std
        self.grad_clip = grad_clip
        self.rng = random.Random(seed)
        self.buffer = collections.deque(maxlen=max_len)

    def reseed(self, seed):
        self.rng.seed(seed)

    def sample(self, steps=20, step_size=1.0, noise=0.01, y=None):
        n = self.sample_size if y is None else len(y)
        starts = []
        for _ in range(n):
            if not self.buffer or self.rng.random() < self.reinit_frac:
                starts.append(torch.randn(self.img_shape) * self.init_std)
            else:
                starts.append(self.rng.choice(self.buffer))
        x = torch.stack(starts).clamp(-1, 1)
        frozen = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)
        training = self.model.training
        self.model.eval()
        x = x.clone().requires_grad_(True)
        with torch.enable_grad():
            for _ in range(steps):
                self.model(x, y).sum().backward()
                g = x.grad if self.grad_clip is None else x.grad.clamp(-self.grad_clip, self.grad_clip)
                x.data.add_(step_size * g)
                x.data.add_(noise * torch.randn_like(x))
                x.data.clamp_(-1, 1)
                x.grad = None
        for p, flag in zip(self.model.parameters(), frozen):
            p.requires_grad_(flag)
        self.model.train(training)
        x = x.detach()
        self.buffer.extend(img.clone() for img in x)
        return x

    def state_dict(self):
        return {"buffer": list(self.buffer), "rng": self.rng.getstate()}

    def load_state_dict(self, state):
        self.buffer = collections.deque(state["buffer"], maxlen=self.max_len)
        self.rng.setstate(state["rng"])


'''

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
    old_sampler = _between(main, "class MCMCSampler:", "class JEM(")
    old_generation = _between(main, "    sampler = MCMCSampler(model, img_shape, n, max_len=1",
                              "    # END SOLUTION\n    paths = []")
    return Case("deque_buffer_and_backward", None, (
        Edit("ex3_main.py", "import sys\n", "import collections\nimport random\nimport sys\n"),
        Edit("ex3_main.py", old_sampler, _DEQUE_SAMPLER.lstrip("\n")),
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


ALTERNATIVES = (_deque_alternative(), _rewritten_alternative())


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
    _m("huge_allocation", "3.3", "ex3_main.py",
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

