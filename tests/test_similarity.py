"""The similarity report flags copied code however it is disguised (renamed variables,
reordered functions, reformatting, other comments), does not flag independent solutions, never
counts template code, and shows the matching lines of both students side by side."""
from __future__ import annotations

import ast
import builtins
import csv
import html
import io
import random
import re
import shutil
import subprocess
import tokenize
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT, SOLUTIONS, TEMPLATE
from glyph_course.grading import similarity
from glyph_course.template import _blocks

FILES = ("ex3_data.py", "ex3_model.py", "ex3_main.py", "ex3_ood.py")


# -- submissions built from the reference --------------------------------------------------------
def fill(blocks: dict[str, list[str]] | None = None) -> dict[str, str]:
    """The template with every solution block filled in: with the reference's code (markers
    dropped) or, for ``blocks[task]``, with the given code (one entry per block of that task,
    in file order)."""
    out = {}
    for name in FILES:
        text = (SOLUTIONS / name).read_text()
        lines = text.splitlines(keepends=True)
        parts, pos, used = [], 0, {}
        for start, end, m in _blocks(text, name):
            parts += lines[pos:start]
            task = m.group("task")
            if blocks and task in blocks:
                i = used[task] = used.get(task, -1) + 1
                parts.append(blocks[task][i])
            else:
                parts += lines[start + 1:end]
            pos = end + 1
        out[name] = "".join(parts + lines[pos:])
    if blocks:
        for task, codes in blocks.items():
            found = sum(1 for name in FILES for *_, m in _blocks((SOLUTIONS / name).read_text(), name)
                        if m.group("task") == task)
            assert found == len(codes), f"the reference has {found} blocks of {task}, the test {len(codes)}"
    return out


def write(folder: Path, texts: dict[str, str], nested: bool = True) -> Path:
    target = folder / "ex3" if nested else folder
    target.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (target / name).write_text(text)
    return folder


def disguise(texts: dict[str, str]) -> dict[str, str]:
    """A copy made to look different: every local name of the solution code renamed, the
    functions and methods of every file in reverse order, the code reformatted (``ast.unparse``:
    other quotes, spacing, parentheses and line breaks, comments gone) and comments of its own."""
    template_names = {t.string for name in FILES for t in _tokens((TEMPLATE / name).read_text())}
    out = {}
    for name, text in texts.items():
        tree = ast.parse(text)
        local = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        rename = {v: f"tmp_{i}_{v[::-1]}" for i, v in enumerate(sorted(local - template_names - set(dir(builtins))))}

        class Rename(ast.NodeTransformer):
            def visit_Name(self, node):
                node.id = rename.get(node.id, node.id)
                return node

        tree = Rename().visit(tree)
        for node in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]:
            defs = [i for i, n in enumerate(node.body) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
            reordered = [node.body[i] for i in reversed(defs)]
            for i, n in zip(defs, reordered):
                node.body[i] = n
        code = ast.unparse(tree)
        ends = {t.start[0] for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type == tokenize.NEWLINE}
        lines = ["# my solution"]
        for row, line in enumerate(code.splitlines(), start=1):
            if line.lstrip().startswith("def "):
                lines.append(line[:len(line) - len(line.lstrip())] + "# a helper I wrote")
            lines.append(line + ("  # works now" if row in ends and row % 3 == 0 else ""))
        out[name] = "\n".join(lines) + "\n"
    return out


def _tokens(text):
    return [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.NAME]


# A second, independent solution of every task (different structure, calls and formulas), as a
# student who never saw the reference might write it. It meets the template's contract: the
# autograder gives it 34 / 34 (checked with `glyph-course grade`, too slow for this file).
INDEPENDENT = {
    "3.2a": [
        "        self.grid = pool\n"
        "        self.hidden_layer = nn.Linear(c3 * pool ** 2, c3)\n"
        "        self.output_layer = nn.Linear(c3, num_classes)\n",
        "        h = nn.functional.adaptive_avg_pool2d(self.features(x), self.grid)\n"
        "        h = nn.functional.silu(self.hidden_layer(h.flatten(start_dim=1)))\n"
        "        return self.output_layer(h)\n",
    ],
    "3.2b": [
        "        scores = self.get_logits(x)\n"
        "        if y is not None:\n"
        "            return scores[torch.arange(scores.shape[0], device=scores.device), y.long()]\n"
        "        top = scores.max(dim=1).values\n"
        "        return top + torch.log(torch.exp(scores - top[:, None]).sum(dim=1))\n",
    ],
    "3.3a": [
        "        count = len(self.buffer)\n"
        "        coin = torch.rand(n, generator=self.generator)\n"
        "        use_buffer = coin < (1.0 - self.reinit_frac) * count / self.max_len\n"
        "        origin = torch.where(use_buffer, torch.randint(max(count, 1), (n,), generator=self.generator),\n"
        "                             torch.tensor(-1))\n"
        "        starts = torch.randn((n, *self.img_shape), generator=self.generator).mul(self.init_std)\n"
        "        starts = starts.clamp(min=-1, max=1)\n"
        "        for i in torch.nonzero(use_buffer).flatten().tolist():\n"
        "            starts[i] = self.buffer[origin[i]]\n"
        "        return starts.to(self._device()), origin\n",
        "        ends = x.detach().to('cpu')\n"
        "        if y is None:\n"
        "            tags = torch.full((ends.shape[0],), -1, dtype=torch.long)\n"
        "        else:\n"
        "            tags = y.detach().to('cpu').long()\n"
        "        for i in range(ends.shape[0]):\n"
        "            slot = int(slots[i])\n"
        "            if slot >= 0:\n"
        "                self.buffer[slot], self.buffer_labels[slot] = ends[i], tags[i]\n"
        "                continue\n"
        "            self.n_seen += 1\n"
        "            if self.buffer.shape[0] < self.max_len:\n"
        "                self.buffer = torch.cat((self.buffer, ends[i:i + 1]), dim=0)\n"
        "                self.buffer_labels = torch.cat((self.buffer_labels, tags[i:i + 1]), dim=0)\n"
        "            else:\n"
        "                r = int(torch.randint(0, self.n_seen, (1,), generator=self.generator))\n"
        "                if r < self.max_len:\n"
        "                    self.buffer[r], self.buffer_labels[r] = ends[i], tags[i]\n",
    ],
    "3.3b/c": [
        "                x = x.detach().requires_grad_()\n"
        "                g = torch.autograd.grad(self.model(x, y).sum(), [x])[0]\n"
        "                if self.grad_clip:\n"
        "                    g = torch.clamp(g, -self.grad_clip, self.grad_clip)\n"
        "                with torch.no_grad():\n"
        "                    x = torch.clamp(x + step_size * g, -1, 1)\n"
        "                    x = torch.clamp(x + noise * torch.randn(x.shape, generator=self.generator).to(x.device), -1, 1)\n",
    ],
    "3.4a": [
        "        labels = None\n"
        "        if self.cfg.mode == 'jem_cond':\n"
        "            labels = y_real[torch.randint(0, y_real.shape[0], (self.sampler.sample_size,), device=y_real.device)]\n"
        "        samples = self.sampler.sample(steps=self.cfg.sgld_steps, step_size=self.step_size, noise=self.cfg.noise,\n"
        "                                      y=labels)\n"
        "        f_data = self.cnn(x_real) if labels is None else self.cnn(x_real, y_real)\n"
        "        e_real, e_fake = -f_data, -self.cnn(samples, labels)\n"
        "        cdiv = torch.mean(e_real) - torch.mean(e_fake)\n"
        "        reg = self.cfg.alpha * (torch.mean(e_real ** 2) + torch.mean(e_fake ** 2))\n"
        "        loss = reg + cdiv\n",
    ],
    "3.4b": [
        "        logits = self.cnn.get_logits(x)\n"
        "        loss = -torch.log_softmax(logits, dim=-1).gather(1, y[:, None]).mean()\n",
    ],
    "3.4c": [
        "        parts = []\n"
        "        weight = self.px_weight_now()\n"
        "        if weight:\n"
        "            parts.append(weight * self.px_step(batch))\n"
        "        if self.cfg.mode in ('jem', 'jem_cond'):\n"
        "            parts.append(self.cfg.pyx_weight * self.pyx_step(batch))\n"
        "        loss = torch.stack(parts).sum() if parts else torch.tensor(0.0, device=self.device)\n",
    ],
    "3.5": [
        "    count = len(y) if y is not None else n\n"
        "    torch.manual_seed(seed)\n"
        "    start = (torch.randn(count, *img_shape) * init_std).clamp(-1, 1)\n"
        "    runner = MCMCSampler(model, img_shape, count, init_std=init_std, grad_clip=grad_clip, seed=seed)\n"
        "    device = next(model.parameters()).device\n"
        "    samples, chain = runner.langevin(start.to(device), K, step_size, noise, y=y, keep_steps=keep)\n",
    ],
    "3.6": [
        "        ood_scores = energy_scores(model, images)\n"
        "        all_scores = np.hstack((id_scores, ood_scores))\n"
        "        labels = np.hstack((np.zeros_like(id_scores), np.ones_like(ood_scores)))\n"
        "        aurocs[name] = 1.0 * roc_auc_score(y_true=labels, y_score=all_scores)\n",
    ],
}


def padding(statements: int = 100, seed: int = 0) -> str:
    """A file of code of one's own (found in nobody else's): helper functions of random
    statements of the kind the exercise has."""
    rng = random.Random(seed)
    calls = ("torch.randn", "torch.clamp", "torch.cat", "torch.where", "np.concatenate", "torch.stack", "len")
    methods = ("mean", "sum", "detach", "flatten", "exp", "log", "pow", "max", "cpu")
    lines = ["import numpy as np", "import torch"]
    for i in range(statements):
        if i % 10 == 0:
            lines += ["", "", f"def helper_{i}(a, b, c):"]
        call = f"{rng.choice(calls)}({rng.choice('abc')}, {rng.choice(('dim', 'min', 'out'))}={rng.randrange(5)})"
        call += "".join(f".{rng.choice(methods)}()" for _ in range(rng.randrange(3)))
        lines.append(f"    {rng.choice('abc')} = {call} {rng.choice('+-*')} {rng.choice('abc')}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """original (the reference's blocks), copier (a disguised copy of it), padder (a copy with
    as much code of their own added in a helper file), independent (the other solution), two
    students who handed in the template unchanged (one reformatted)."""
    root = tmp_path_factory.mktemp("subs")
    original = fill()
    write(root / "original", original)
    write(root / "copier", disguise(original), nested=False)
    write(root / "padder", {**original, "helpers.py": padding()})
    write(root / "independent", fill(INDEPENDENT))
    write(root / "template_a", {n: (TEMPLATE / n).read_text() for n in FILES})
    write(root / "template_b", {n: ast.unparse(ast.parse((TEMPLATE / n).read_text())) + "\n" for n in FILES})
    return root


@pytest.fixture(scope="module")
def report(batch, tmp_path_factory):
    return similarity.similarity_report(batch, tmp_path_factory.mktemp("out"))


def _pair(report, a, b):
    for p in report.pairs:
        if set(report.names(p)) == {a, b}:
            return p
    raise AssertionError(f"no pair {a}, {b}")


COPIES = {("copier", "original"), ("copier", "padder"), ("original", "padder")}


def test_disguised_copy_is_flagged(report, batch):
    p = _pair(report, "original", "copier")
    assert p.flagged and p.similarity >= 0.9, p
    # the disguise is real: most of the original's own lines do not appear in the copy as they
    # are; and it is still working Python
    subs = {s.student: s for s in report.submissions}
    for path in (batch / "copier").glob("*.py"):
        compile(path.read_text(), str(path), "exec")
    mine = [text.strip() for _, _, text in subs["original"].lines]
    theirs = {text.strip() for _, _, text in subs["copier"].lines}
    assert sum(line in theirs for line in mine) < 0.5 * len(mine)


def test_copy_with_code_added_is_flagged(report):
    """The score is the share of the *smaller* submission found in the other: padding a copy
    with code of one's own does not dilute it."""
    subs = {s.student: s for s in report.submissions}
    assert len(subs["padder"].fingerprints) > 1.7 * len(subs["original"].fingerprints)
    p = _pair(report, "original", "padder")
    assert p.flagged and p.similarity >= 0.95, p


def test_independent_solutions_are_not_flagged(report):
    for other in ("original", "copier"):
        p = _pair(report, "independent", other)
        assert not p.flagged and p.similarity < 0.2, p
    assert {report.names(p) for p in report.flagged} == COPIES


def test_template_code_never_counts(report):
    subs = {s.student: s for s in report.submissions}
    for name in ("template_a", "template_b"):     # unchanged, and reformatted with comments gone
        assert subs[name].tokens == [] and len(subs[name].fingerprints) == 0, subs[name].lines[:5]
        assert any("template unchanged" in n for n in subs[name].notes)
        for other in subs:
            if other != name:
                assert _pair(report, name, other).shared == 0
    # the own code of a filled-in template is exactly what replaced the raise lines
    own = {text.strip() for _, _, text in subs["original"].lines}
    blocks = {line.strip() for name in FILES for start, end, _ in _blocks((SOLUTIONS / name).read_text(), name)
              for line in (SOLUTIONS / name).read_text().splitlines()[start + 1:end]}
    assert own and own <= blocks, own - blocks
    assert not any("NotImplementedError" in text for _, _, text in subs["template_a"].lines)


def test_files_that_do_not_tokenise_are_compared_line_by_line(tmp_path):
    """A file Python cannot tokenise (an unclosed bracket) is cut into lines, and so is the
    template for it: two such templates still share nothing, a copy is still found."""
    def broken(texts):
        text = texts["ex3_main.py"]
        return {**texts, "ex3_main.py": text.replace("def chain_steps(", "oops = (\ndef chain_steps(")}

    tmpl = similarity.load_template()
    subs = [similarity.fingerprint(similarity.own_code(texts, tmpl, name)) for name, texts in [
        ("t1", broken({n: (TEMPLATE / n).read_text() for n in FILES})),
        ("t2", broken({n: (TEMPLATE / n).read_text() for n in FILES})),
        ("original", fill()), ("copy", broken(fill()))]]
    assert any("cannot be tokenised" in n for n in subs[0].notes)
    assert len(subs[0].tokens) <= 4 and len(subs[0].fingerprints) == 0, subs[0].lines
    cmp = similarity.compare(subs)
    assert cmp.shared[0, 1] == 0
    assert cmp.similarity[2, 3] >= 0.9


def test_normalisation_hides_names_formatting_and_comments():
    tmpl = similarity.Template.from_texts({"ex3_main.py": "import torch\nimport numpy as np\n"})
    a = similarity.own_code({"f.py": "import torch\nimport numpy as np\n"
                                     "def f(images, steps=3):\n"
                                     "    total = torch.zeros(3)  # start\n"
                                     "    for i in range(steps):\n"
                                     "        total = total + np.sum(images[i], axis=0,)\n"
                                     "    return total\n"}, tmpl)
    b = similarity.own_code({"g.py": "import numpy as np\nimport torch\n\n"
                                     "def helper(xs, n=3):\n"
                                     "    # accumulate\n"
                                     "    acc = torch.zeros(\n        3.\n    )\n"
                                     "    for k in range(n): acc = acc + np.sum(xs[k], axis=0)\n"
                                     "    return acc\n"}, tmpl)
    c = similarity.own_code({"h.py": "import torch as T\n"
                                     "def helper(xs, n=3):\n"
                                     "    acc = T.zeros(3)\n"
                                     "    for k in range(n):\n"
                                     "        acc = acc + np.sum(xs[k], axis=0)\n"
                                     "    return acc\n"}, tmpl)
    assert a.tokens == b.tokens
    assert c.tokens[:4] == ["import", "torch", "as", "torch"] and c.tokens[4:] == a.tokens   # an alias is its module
    assert a.tokens.count("V") >= 8 and {"torch", "numpy", "sum", "axis", "range", "3.0"} <= set(a.tokens)


def test_report_shows_matching_lines_of_both_sides(report):
    page = report.html.read_text()
    assert "<script" not in page and "<link" not in page and "url(" not in page   # self-contained
    sections = page.split('<div class="pair" ')[1:]
    assert len(sections) == len(COPIES)
    (section,) = [s for s in sections if "<h2>copier &harr; original:" in s]
    left, right = section.split('<div class="side">')[1:3]
    assert left.startswith("<h3>copier</h3>") and right.startswith("<h3>original</h3>")

    def hits(side):
        rows = re.findall(r'<tr class="hit m\d" data-match="(\d+)">.*?<td class="src">(.*?)</td></tr>', side)
        return {(int(n), html.unescape(text).strip()) for n, text in rows}

    left_hits, right_hits = hits(left), hits(right)
    # the reference's logsumexp line is highlighted on the original's side, and so is the
    # copier's version of it, both with the number of the same matching region
    ours = {n for n, text in right_hits if text == "return torch.logsumexp(logits, dim=1)"}
    theirs = {n for n, text in left_hits if "torch.logsumexp(" in text and "return" in text}
    assert ours and ours & theirs, (ours, theirs)
    assert len(left_hits) > 50 and len(right_hits) > 50
    # lines that are not own code (template lines) are not shown
    assert "raise NotImplementedError" not in section and "def chain_steps" not in section
    rows = list(csv.DictReader(report.csv.open()))
    assert len(rows) == 15 and {(r["student_a"], r["student_b"]) for r in rows if r["flagged"] == "1"} == COPIES


def test_similarity_grows_with_the_share_copied():
    """Copying one small task raises the score by about that task's share of the code, not to
    a flag; copying the sampler (3.3a, half of the code) is flagged; a student who solved one
    small task only, as the reference does, is not flagged for it alone (too few fingerprints)."""
    tmpl = similarity.load_template()

    def own(texts, name):
        return similarity.fingerprint(similarity.own_code(texts, tmpl, name))

    ref, independent = own(fill(), "ref"), own(fill(INDEPENDENT), "independent")
    base = similarity.compare([ref, independent]).similarity[0, 1]
    small = similarity.compare([ref, own(fill({k: v for k, v in INDEPENDENT.items() if k != "3.4a"}), "one")])
    assert base + 0.05 < small.similarity[0, 1] < similarity.THRESHOLD
    (p,) = similarity.pairs(small)
    assert not p.flagged
    big = similarity.compare([ref, own(fill({k: v for k, v in INDEPENDENT.items() if k != "3.3a"}), "sampler")])
    (p,) = similarity.pairs(big)
    assert p.flagged
    template = {n: (TEMPLATE / n).read_text() for n in FILES}
    (raise_line,) = [line for line in template["ex3_model.py"].splitlines(keepends=True) if '"Exercise 3.2b:' in line]
    text = (SOLUTIONS / "ex3_model.py").read_text()
    (block,) = ["".join(text.splitlines(keepends=True)[start + 1:end])
                for start, end, m in _blocks(text, "ex3_model.py") if m.group("task") == "3.2b"]
    one_task = {**template, "ex3_model.py": template["ex3_model.py"].replace(raise_line, block)}
    little = own(one_task, "little")
    assert "logsumexp" in little.tokens and 0 < len(little.fingerprints) < similarity.MIN_SHARED
    (p,) = similarity.pairs(similarity.compare([ref, little]))
    assert p.similarity == 1.0 and not p.flagged


def test_winnowing_guarantee_and_order_independence():
    tokens = [f"t{i % 37}_{i % 11}" for i in range(400)]
    h = similarity.kgram_hashes(tokens)
    assert len(h) == len(tokens) - similarity.K + 1
    fp = similarity.winnow(h)
    # every window of WINDOW k-grams holds a fingerprint
    fps = set(fp.tolist())
    assert all(fps & set(h[i:i + similarity.WINDOW].tolist()) for i in range(len(h) - similarity.WINDOW + 1))
    swapped = tokens[200:] + tokens[:200]
    common = len(fps & set(similarity.winnow(similarity.kgram_hashes(swapped)).tolist()))
    assert common >= len(fps) - 6


def test_submissions_are_found_as_the_autograder_finds_them(tmp_path):
    texts = fill()
    write(tmp_path / "nested", texts)
    write(tmp_path / "flat", texts, nested=False)
    write(tmp_path / "deeper" / "Downloads" / "handin", texts)
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden").mkdir()
    rep = similarity.similarity_report(tmp_path)
    assert sorted(s.student for s in rep.submissions) == ["deeper", "empty", "flat", "nested"]
    assert _pair(rep, "nested", "flat").similarity == 1.0 and _pair(rep, "nested", "deeper").similarity == 1.0
    assert any("no ex3_*.py" in n for s in rep.submissions if s.student == "empty" for n in s.notes)


def test_reference_takes_part_on_request(batch):
    rep = similarity.similarity_report(batch, reference=True)
    p = _pair(rep, "original", similarity.REFERENCE)
    assert p.flagged and p.similarity == 1.0
    assert not _pair(rep, "independent", similarity.REFERENCE).flagged


def test_command_line(tmp_path, batch):
    env_run = lambda *args: subprocess.run([PYTHON, "-m", "glyph_course.grading.similarity", *map(str, args)],
                                           capture_output=True, text=True, cwd=tmp_path)
    done = env_run("--help")
    assert done.returncode == 0 and "--threshold" in done.stdout
    out = tmp_path / "report"
    done = env_run(batch, "--out", out, "--threshold", "0.6")
    assert done.returncode == 0, done.stderr
    assert "flagged: 3 (" in done.stdout and (out / "similarity.html").exists() and (out / "similarity.csv").exists()
    assert not list(out.glob(".*tmp*"))
    for args, words in [((tmp_path / "missing",), "does not exist"), ((batch, "--threshold", "1.5"), "--threshold"),
                        ((batch, "--threshold", "x"), "invalid float"), ((batch, "--bogus"), "unrecognized")]:
        done = env_run(*args)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and words in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    one = tmp_path / "one"
    write(one / "alice", fill())
    done = env_run(one)
    assert done.returncode == 2 and "at least two" in done.stderr


def test_default_out_is_next_to_the_submissions(batch, tmp_path):
    subs = tmp_path / "subs"
    shutil.copytree(batch, subs)
    assert similarity.main([str(subs)]) == 0
    assert (tmp_path / "subs-similarity" / "similarity.html").exists()
    # an --out inside the submissions folder is not taken for a student the next time
    for _ in range(2):
        rep = similarity.similarity_report(subs, subs / "report")
        assert len(rep.submissions) == 6


def test_benchmark_script_runs():
    done = subprocess.run([PYTHON, str(ROOT / "benchmarks" / "similarity.py"), "--students", "12"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"ratio"' in done.stdout.splitlines()[-1]
