"""The graded notebook's source and the harness it runs on (fast, no nbgrader)."""
import json
import re
import sys

import pytest
import torch

from conftest import ROOT
from glyph_course.grading import notebook
from glyph_ebm.checks import harness
from glyph_ebm.checks.toys import FixedSampler, QuadraticEnergy, constant_images

TASKS = ["3.2a", "3.2b", "3.3a", "3.3b/c", "3.4a", "3.4b", "3.4c", "3.5", "3.6"]


def test_committed_notebook_is_built_from_its_source():
    assert not notebook.notebook_is_stale(), "run `make template`: ex3.ipynb differs from autograde/ex3_source.py"


def test_every_task_has_a_visible_and_a_hidden_test_cell_and_points_add_up():
    nb = json.loads(notebook.NOTEBOOK.read_text())
    meta = nb["metadata"]["glyph_ebm"]
    assert list(meta["tasks"]) == TASKS
    grade_cells = [c for c in nb["cells"] if c["metadata"]["nbgrader"]["grade"]]
    assert meta["total"] == sum(c["metadata"]["nbgrader"]["points"] for c in grade_cells) == 34
    for task in TASKS:
        cells = [c for c in grade_cells if c["metadata"]["glyph_ebm_task"] == task]
        hidden = [c for c in cells if notebook.HIDDEN_BEGIN in c["source"]]
        assert len(cells) == 2 and len(hidden) == 1, task
    assert all(c["metadata"]["nbgrader"]["locked"] for c in nb["cells"])


def test_points_table_for_students_matches_the_metadata():
    intro = json.loads(notebook.NOTEBOOK.read_text())["cells"][0]["source"]
    rows = dict(re.findall(r"^\| (\S+) \|.*\| (\d+) \|$", intro, re.M))
    meta = json.loads(notebook.NOTEBOOK.read_text())["metadata"]["glyph_ebm"]
    assert {t: float(p) for t, p in rows.items()} == meta["tasks"]
    assert f"**{meta['total']:g}**" in intro


def test_visible_release_text_is_valid_python():
    nb = json.loads(notebook.NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            compile(notebook.strip_hidden(cell["source"]), cell["id"], "exec")
            compile(cell["source"], cell["id"], "exec")


@pytest.mark.parametrize("text, problem", [
    ("# %% code\nx = 1\n", "without id="),
    ("# %% grade id=a points=1\nx = 1\n", "needs task= and points="),
    ("# %% code id=a\n### BEGIN HIDDEN TESTS\nx = 1\n", "without"),
    ("# %% code id=a\n# %% code id=a\n", "duplicate"),
    ("x = 1\n# %% code id=a\n", "before the first cell"),
])
def test_malformed_source_is_reported_with_its_line(text, problem):
    with pytest.raises(notebook.NotebookSourceError, match=problem):
        notebook.parse_source(text)


# -- harness -----------------------------------------------------------------------------------
def _failure(fn):
    with pytest.raises(harness.GradingFailure) as info:
        with harness.task("9.9"):
            fn()
    return info.value


def _raise(exc):
    def fn():
        raise exc
    return fn


def test_task_turns_every_kind_of_failure_into_one_readable_message():
    assert "not implemented yet" in _failure(_raise(NotImplementedError("Exercise 9.9: do it"))).message
    assert "sys.exit()" in _failure(_raise(SystemExit(1))).message
    assert "time limit" in _failure(_raise(KeyboardInterrupt())).message
    assert "out of memory" in _failure(_raise(MemoryError())).message
    assert "out of memory" in _failure(_raise(RuntimeError("DefaultCPUAllocator: can't allocate memory"))).message
    assert _failure(lambda: harness.check(False, "expected 1, found 2")).message == "expected 1, found 2"
    assert "raised ValueError: bad" in _failure(_raise(ValueError("bad"))).message


def test_failure_renders_without_grader_source_lines():
    failure = _failure(lambda: harness.check(1 + 1 == 3, "arithmetic"))
    rendered = "\n".join(failure._render_traceback_())
    assert "Exercise 9.9: arithmetic" in rendered
    assert "1 + 1 == 3" not in rendered and "lambda" not in rendered


def test_check_close_states_expected_and_found():
    with pytest.raises(harness.Mismatch, match=r"expected \[1, 2\], found \[1, 3\]"):
        harness.check_close(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0]), "values")
    with pytest.raises(harness.Mismatch, match=r"expected shape \(2,\), found \(3,\)"):
        harness.check_close(torch.zeros(3), torch.zeros(2), "values")
    with pytest.raises(harness.Mismatch, match="non-finite"):
        harness.check_close(torch.tensor([float("inf"), 0.0]), torch.zeros(2), "values")
    harness.check_close(torch.tensor([1.0, 2.0 + 1e-7]), torch.tensor([1.0, 2.0]), "values")


@pytest.fixture
def student_folder(tmp_path):
    yield tmp_path
    for name in harness.MODULES:
        sys.modules.pop(name, None)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_broken_dependency_is_replaced_so_the_other_tasks_still_load(student_folder):
    (student_folder / "ex3_model.py").write_text("def broken(:\n")
    (student_folder / "ex3_ood.py").write_text("def score(model, x, y=None):\n    return -model(x, y)\n")
    (student_folder / "ex3_data.py").write_text("")
    (student_folder / "ex3_main.py").write_text(
        "from ex3_model import CNNModel\nfrom ex3_ood import score\n\ndef build():\n    return CNNModel(3)\n")
    student = harness.setup(student_folder, memory_gib=None)
    with pytest.raises(harness.StudentImportError, match="ex3_model.py has a syntax error in line 1"):
        student.model
    placeholder = student.main.build()          # ex3_main imports; the placeholder can be built
    with pytest.raises(harness.StudentImportError, match="syntax error"):
        placeholder(torch.zeros(1, 1, 8, 8))
    assert student.notes() == [student.failures["ex3_model"]]


def test_missing_and_crashing_files_are_named(student_folder):
    (student_folder / "ex3_ood.py").write_text("import sys\nsys.exit(3)\n")
    (student_folder / "ex3_data.py").write_text("raise RuntimeError('not finished')\n")
    student = harness.setup(student_folder, memory_gib=None)
    with pytest.raises(harness.StudentImportError, match="ex3_model.py is missing"):
        student.model
    with pytest.raises(harness.StudentImportError, match="calls sys.exit"):
        student.ood
    with pytest.raises(harness.StudentImportError, match=r"raised RuntimeError: not finished \(File ex3_data.py, line 1"):
        student.data


def test_buffer_images_reads_tensors_lists_and_deques_as_copies():
    import collections

    class Holder:
        pass

    imgs = torch.arange(12.0).reshape(3, 1, 2, 2)
    for buffer in (imgs, list(imgs), collections.deque(imgs.split(1))):
        holder = Holder()
        holder.buffer = buffer
        got = harness.buffer_images(holder, (1, 2, 2))
        assert torch.equal(got, imgs)
    holder.buffer = imgs
    harness.buffer_images(holder, (1, 2, 2)).zero_()
    assert imgs.sum() > 0, "the snapshot must not share memory with the sampler's buffer"


# -- toy models ----------------------------------------------------------------------------------
def test_quadratic_energy_follows_the_sign_convention_and_counts_calls():
    centers = constant_images([0.5, -0.5], (1, 2, 2))
    toy = QuadraticEnergy(centers, precision=2.0)
    x = torch.zeros(3, 1, 2, 2, requires_grad=True)
    f = toy(x)                                   # f = -E = -(2/2) * 4 * 0.25
    assert torch.allclose(f, torch.full((3,), -1.0))
    (grad,) = torch.autograd.grad(f.sum(), x)
    assert torch.allclose(grad, torch.full_like(x, 1.0)), "grad f points towards the centre 0.5"
    assert torch.allclose(toy(x.detach(), torch.tensor([1, 0, 1])), torch.full((3,), -1.0))
    assert torch.allclose(toy.get_logits(x.detach()), torch.full((3, 2), -1.0))
    assert toy.grad_calls == 1 and toy.calls == 2   # get_logits is not a forward call


def test_fixed_sampler_returns_its_images_and_records_labels():
    fakes = torch.arange(4.0).reshape(4, 1, 1, 1)
    sampler = FixedSampler(fakes)
    assert torch.equal(sampler.sample(20, 1.0, 0.01), fakes)
    assert len(sampler.sample(20, 1.0, 0.01, torch.tensor([0, 1, 2, 0, 1, 2]))) == 6
    assert sampler.labels[0] is None and sampler.labels[1].tolist() == [0, 1, 2, 0, 1, 2]


def test_memory_limit_turns_a_huge_allocation_into_an_error():
    import subprocess

    code = ("import torch\nfrom glyph_ebm.checks.harness import _limit_memory\n_limit_memory(1)\n"
            "try:\n    torch.ones(2 * 10**9)\nexcept RuntimeError as e:\n    print('refused' if \"can't allocate\" in str(e) else e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "refused", out.stderr[-2000:]


def test_nbgrader_config_sets_the_option_nbgrader_reads(monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    monkeypatch.setenv("GLYPH_EBM_CELL_TIMEOUT", "7")
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT / "autograde")).load_config()
    assert cfg.Execute.timeout == 7 and cfg.Execute.interrupt_on_timeout is True
    assert "timeout" not in cfg.ExecutePreprocessor
    names = [p.__name__ for p in cfg.GenerateFeedback.preprocessors]
    assert "ClearHiddenTests" in names
