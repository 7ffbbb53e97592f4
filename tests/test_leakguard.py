"""The leak guard finds solution code, hidden tests, hints that give the answer away and the
course tooling wherever students could read them (inside archives too)."""
import json
import re
import shutil
import zipfile
from pathlib import Path

from conftest import SOLUTIONS, TEMPLATE
from glyph_course.template import solution_blocks
from glyph_course.grading import leakguard, notebook


def _release_like(tmp_path):
    """A folder shaped like a release: the templates and the notebook without hidden tests."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("ex3_data.py", "ex3_main.py", "ex3_model.py", "ex3_ood.py"):
        (tmp_path / name).write_text((TEMPLATE / name).read_text())
    nb = json.loads(notebook.NOTEBOOK.read_text())
    for cell in nb["cells"]:
        cell["source"] = notebook.strip_hidden(cell["source"])
    (tmp_path / "ex3.ipynb").write_text(json.dumps(nb))
    return tmp_path


def test_templates_and_stripped_notebook_are_clean(tmp_path):
    assert leakguard.scan(_release_like(tmp_path)) == []


def test_a_solution_line_in_a_template_is_found(tmp_path):
    folder = _release_like(tmp_path)
    secret = "cdiv = e_real.mean() - e_fake.mean()"
    assert any(secret in b for b in solution_blocks((SOLUTIONS / "ex3_main.py").read_text()))
    (folder / "ex3_main.py").write_text((folder / "ex3_main.py").read_text() + f"\n        {secret}\n")
    assert leakguard.scan(folder) == [f"ex3_main.py: contains secret line {secret!r}"]


def test_hidden_tests_in_a_notebook_or_highlighted_html_are_found(tmp_path):
    folder = _release_like(tmp_path)
    hidden = sorted(leakguard.hidden_lines())[0]
    nb = json.loads((folder / "ex3.ipynb").read_text())
    nb["cells"][-1]["outputs"] = [{"output_type": "error", "ename": "X", "evalue": "",
                                   "traceback": [f"---> 3 {hidden}"]}]
    (folder / "ex3.ipynb").write_text(json.dumps(nb))
    spans = "".join(f'<span class="n">{ch}</span>' for ch in hidden.replace("<", "&lt;").replace(">", "&gt;"))
    (folder / "feedback.html").write_text(f"<pre>{spans}</pre>")
    found = leakguard.scan(folder)
    assert f"ex3.ipynb: contains secret line {hidden!r}" in found
    assert f"feedback.html: contains secret line {hidden!r}" in found


def test_markers_are_leaks_and_shared_lines_are_not(tmp_path):
    folder = _release_like(tmp_path)
    (folder / "notes.txt").write_text("### BEGIN HIDDEN TESTS\nx, y = batch\n")
    assert leakguard.scan(folder) == ["notes.txt: contains the marker '### BEGIN HIDDEN TESTS'"]
    assert "x, y = batch" not in leakguard.secret_lines()


# -- hints and docstrings must say what, not how -------------------------------------------------
OLD_HINT_3_2A = "features -> adaptive average pooling -> head, return (B, C) logits"


def _with_hint(folder, task, hint):
    model = folder / "ex3_model.py"
    text = model.read_text()
    current = next(h for t, h in _hints(text) if t == task)
    model.write_text(text.replace(f"Exercise {task}: {current}", f"Exercise {task}: {hint}"))
    return model


def _hints(text):
    return re.findall(r'NotImplementedError\("Exercise (\S+): ([^"]*)"\)', text)


def test_every_hint_of_the_reference_says_what_not_how():
    answers = leakguard.answer_blocks()
    for name in ("ex3_model.py", "ex3_main.py"):
        for task, hint in _hints((TEMPLATE / name).read_text()):
            for code in answers[task]:
                assert leakguard.spelled_answer(hint, code) is None, (task, hint)


def test_a_hint_naming_every_identifier_of_its_answer_is_found(tmp_path):
    """The old hint of 3.2a spelled out `return self.head(self.pool(self.features(x)))`."""
    folder = _release_like(tmp_path)
    _with_hint(folder, "3.2a", OLD_HINT_3_2A)
    assert leakguard.scan(folder) == [
        "ex3_model.py: the hint of 3.2a spells out its answer "
        "(it names every identifier of the answer: features, head, pool)"]


def test_a_hint_quoting_its_answer_is_found_and_does_not_make_the_line_public(tmp_path):
    folder = _release_like(tmp_path)
    answer = "return self.head(self.pool(self.features(x)))"
    _with_hint(folder, "3.2a", f"write {answer}")
    found = leakguard.scan(folder)
    assert f"ex3_model.py: contains secret line {answer!r}" in found
    assert any(f.startswith("ex3_model.py: the hint of 3.2a spells out its answer") for f in found), found
    # part of a line of a longer answer
    folder = _release_like(tmp_path / "part")
    _with_hint(folder, "3.2b", "the logit of class y, logits.gather(1, y.view(-1, 1))")
    assert leakguard.scan(folder) == [
        "ex3_model.py: the hint of 3.2b spells out its answer "
        "(it quotes code of the answer: 'return logits.gather(1, y.view(-1, 1).long()).squeeze(1)')"]


def test_a_hint_of_the_reference_does_not_make_its_answer_public(tmp_path):
    """The hints are template lines, but quoting a solution line in one leaves it secret."""
    answer = "return self.head(self.pool(self.features(x)))"
    assert answer in leakguard.secret_lines()
    shutil.copytree(SOLUTIONS, tmp_path / "solutions")
    model = tmp_path / "solutions" / "ex3_model.py"
    text = model.read_text()
    marker = next(ln for ln in text.splitlines() if "BEGIN SOLUTION 3.2a:" in ln)
    model.write_text(text.replace(marker, f"        # BEGIN SOLUTION 3.2a: write {answer}"))
    assert answer in leakguard.secret_lines(tmp_path / "solutions")


def test_a_docstring_spelling_out_its_answer_is_found(tmp_path):
    folder = _release_like(tmp_path)
    model = folder / "ex3_model.py"
    text = model.read_text()
    start = text.index('"""', text.index("def get_logits"))
    doc = text[start:text.index('"""', start + 3) + 3]
    model.write_text(text.replace(doc, '"""Class logits: apply the features, the pool, then the head."""'))
    assert leakguard.scan(folder) == [
        "ex3_model.py: the docstring of get_logits() spells out the answer of 3.2a "
        "(it names every identifier of the answer: features, head, pool)"]


def test_what_a_hint_may_say():
    code = "        return self.head(self.pool(self.features(x)))"
    assert leakguard.answer_identifiers(code) == {"features", "head", "pool"}
    assert leakguard.spelled_answer("return the class logits of the images x, shape (B, C)", code) is None
    assert leakguard.spelled_answer("use the head on the pooled features", code) is not None    # inflected names
    # names the block assigns itself, builtins and short names are no answer
    block = "        logits = self.cnn.get_logits(x)\n        loss = F.cross_entropy(logits, y)"
    assert leakguard.answer_identifiers(block) == {"cnn", "get_logits", "cross_entropy"}
    assert leakguard.spelled_answer("cross-entropy of get_logits(x) against y", block) is None
    assert leakguard.spelled_answer("cross-entropy of self.cnn.get_logits(x) against y", block) is not None
    # a shape written like a tuple is no quote
    assert leakguard.spelled_answer("slots: ((n,) long)", "        slots = torch.full((n,), -1)") is None


# -- everything a student receives: archives and the course tooling ---------------------------------
def test_leaks_inside_a_wheel_inside_a_zip_are_found(tmp_path):
    secret = "cdiv = e_real.mean() - e_fake.mean()"
    inner = tmp_path / "lib-0.1-py3-none-any.whl"
    with zipfile.ZipFile(inner, "w") as whl:
        whl.writestr("lib/__init__.py", "")
        whl.writestr("lib/losses.py", f"def loss(e_real, e_fake):\n    {secret}\n    return cdiv\n")
    kit = tmp_path / "kit"
    kit.mkdir()
    with zipfile.ZipFile(kit / "kit.zip", "w") as outer:
        outer.write(inner, f"ex3/{inner.name}")
    assert leakguard.scan(kit) == [f"kit.zip!ex3/{inner.name}!lib/losses.py: contains secret line {secret!r}"]


def test_the_course_tooling_is_a_leak_wherever_it_is(tmp_path):
    from glyph_course.grading import kit as kit_module

    (tmp_path / "glyph_course-0.1.0.dist-info").mkdir()
    (tmp_path / "glyph_course-0.1.0.dist-info" / "METADATA").write_text("Name: glyph-course\n")
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "README.txt").write_text("the reference\n")
    (tmp_path / "helper.py").write_text("import os, glyph_course.template\n")
    (tmp_path / "renamed.py").write_bytes(Path(kit_module.__file__).read_bytes())
    assert leakguard.scan(tmp_path) == [
        "glyph_course-0.1.0.dist-info/METADATA: is part of the course tooling (glyph_course-0.1.0.dist-info)",
        "helper.py: imports the course tooling (glyph_course)",
        "renamed.py: is a copy of a module of the course tooling",
        "solutions/README.txt: lies in a solutions folder"]
    # feedback is scanned for hidden tests only (students' folder names may be anything)
    assert leakguard.scan(tmp_path, suffixes=(".html",)) == []
