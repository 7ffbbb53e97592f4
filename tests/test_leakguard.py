"""The leak guard finds solution code and hidden tests wherever students could read them."""
import json

from conftest import SOLUTIONS, TEMPLATE
from glyph_course.template import solution_blocks
from glyph_course.grading import leakguard, notebook


def _release_like(tmp_path):
    """A folder shaped like a release: the templates and the notebook without hidden tests."""
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
