"""Autograding end to end through the real nbgrader command line.

Two batches are graded once per test session (the grader's own batch mode, as ``make
autograde`` runs it, two submissions at a time, each kernel in the grading sandbox where the
machine allows it):

* ``graded``: the reference, the unmodified template, every wrong implementation of
  ``grading_cases.MUTANTS`` and the correct alternatives;
* ``misbehaving``: the submissions of ``grading_cases.ROBUSTNESS`` (infinite loop, crash at
  import, syntax error, huge allocation, ``sys.exit()``), an edited notebook, a missing file
  and an empty folder, with a short per-cell time limit.
"""
import csv
import json
import shutil
import subprocess
import sys

import pytest

import grading_cases as cases
from conftest import ROOT, TEMPLATE
from glyph_course.grading import autograde, leakguard

pytestmark = pytest.mark.slow
TASKS = ["3.2a", "3.2b", "3.3a", "3.3b/c", "3.4a", "3.4b", "3.4c", "3.5", "3.6"]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    course = autograde.make_course(tmp_path_factory.mktemp("course"))
    return course, autograde.release(course)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released):
    course, _ = released
    subs = tmp_path_factory.mktemp("submissions")
    cases.build([], subs / "reference" / "ex3")
    shutil.copytree(TEMPLATE, subs / "template" / "ex3", ignore=shutil.ignore_patterns("__pycache__"))
    for case in (*cases.MUTANTS, *cases.ALTERNATIVES):
        cases.build(case, subs / case.name / "ex3")
    results = autograde.autograde(subs, course, jobs=2, feedback=False, progress=lambda *_: None)
    return course, {r.student: r for r in results}


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory, released):
    course, release_dir = released
    subs = tmp_path_factory.mktemp("misbehaving")
    for case in cases.ROBUSTNESS:
        cases.build(case, subs / case.name / "ex3")
    folder = cases.build([], subs / "edited_notebook" / "ex3")
    cases.write_notebook_variant(release_dir / "ex3.ipynb", folder / "ex3.ipynb",
                                 edit_cell="test_3_2a_hidden", delete_cell="test_3_6_sanity")
    folder = cases.build([], subs / "missing_file")          # files directly, no ex3/ folder
    (folder / "ex3_ood.py").unlink()
    (subs / "empty").mkdir()
    results = autograde.autograde(subs, course, timeout=10, feedback=False, jobs=2, progress=lambda *_: None)
    return {r.student: r for r in results}


def _full(result, task):
    got, top = result.tasks[task]
    return got == top


def test_release_has_the_templates_and_no_solution_or_hidden_test(released):
    course, release_dir = released
    assert sorted(p.name for p in release_dir.iterdir()) == ["ex3.ipynb", "ex3_data.py", "ex3_main.py",
                                                            "ex3_model.py", "ex3_ood.py"]
    for name in ("ex3_data.py", "ex3_main.py", "ex3_model.py", "ex3_ood.py"):
        assert (release_dir / name).read_text() == (TEMPLATE / name).read_text()
    assert leakguard.scan(release_dir) == []
    text = leakguard.readable_text(release_dir / "ex3.ipynb")
    assert "3.3b/c sanity checks passed" in text and "QuadraticEnergy(mu, precision=100.0)" not in text
    # the student kit beside it (its contents: tests/test_student_kit.py), clean inside the wheel and zip too
    assert sorted(p.name for p in (course / "kit").iterdir()) == ["ex3", "ex3-kit.zip"]
    assert (course / "kit" / "ex3" / "ex3.ipynb").read_bytes() == (release_dir / "ex3.ipynb").read_bytes()
    assert leakguard.scan(course / "kit") == []


def test_reference_gets_full_marks(graded):
    course, results = graded
    ref = results["reference"]
    assert list(ref.tasks) == TASKS
    assert ref.total == ref.max == 34, ref.report()
    assert ref.messages == {} and ref.notes == []


def test_template_gets_zero_with_a_clean_report(graded):
    _, results = graded
    tpl = results["template"]
    assert tpl.total == 0, tpl.report()
    for task in TASKS:
        assert tpl.messages[task], task
        assert all(m.startswith("not implemented yet (Exercise 3.") for m in tpl.messages[task]), tpl.messages[task]
    assert "Traceback" not in tpl.report()


def test_the_cases_cover_every_reading_and_every_known_gap():
    """At least 30 wrong and 6 correct implementations; the gaps of the old grader are among them."""
    assert len(cases.MUTANTS) >= 30 and len(cases.ALTERNATIVES) >= 6
    names = {c.name for c in (*cases.MUTANTS, *cases.ALTERNATIVES)}
    assert {"grad_clip_ignored", "warmup_ignored", "chains_not_written_back", "graph_kept_across_steps",
            "pool_fixed_size", "fresh_scale_ignored", "jem_code_buffer", "tutorial_list_buffer",
            "deque_buffer_and_backward", "backward_sampler", "functional_style", "conditional_px_marginal"} <= names
    assert {c.task for c in cases.MUTANTS} == set(TASKS)


@pytest.mark.parametrize("case", cases.MUTANTS, ids=lambda c: c.name)
def test_wrong_implementation_loses_points_on_its_task_only(graded, case):
    _, results = graded
    result = results[case.name]
    assert not _full(result, case.task), f"{case.what}: not caught\n{result.report()}"
    others = [t for t in TASKS if t != case.task and not _full(result, t)]
    assert others == [], f"{case.what}: also cost points on {others}\n{result.report()}"
    assert result.messages[case.task], "a failed task must say why"


@pytest.mark.parametrize("case", cases.ALTERNATIVES, ids=lambda c: c.name)
def test_correct_alternative_gets_full_marks(graded, case):
    _, results = graded
    result = results[case.name]
    assert result.total == result.max, f"{case.what}\n{result.report()}"


def test_grade_table(graded):
    course, results = graded
    with open(course / "grades.csv") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert set(rows) == set(results)
    assert rows["reference"]["total"] == "34" and rows["template"]["total"] == "0"
    assert rows["auroc_labels_flipped"]["3.6"] != "4" and rows["auroc_labels_flipped"]["3.2a"] == "3"


@pytest.mark.parametrize("case", cases.ROBUSTNESS, ids=lambda c: c.name)
def test_misbehaving_code_costs_the_affected_tasks_only(misbehaving, case):
    result = misbehaving[case.name]
    hit = cases.tasks_of(case.task, TASKS)
    assert hit and all(result.tasks[t][0] == 0 for t in hit), f"{case.what}\n{result.report()}"
    assert all(_full(result, t) for t in TASKS if t not in hit), f"{case.what}\n{result.report()}"


def test_failure_messages_say_what_happened(misbehaving, released):
    assert "time limit" in misbehaving["infinite_loop"].messages["3.6"][0]
    # the limit that fired is the configured c.Execute.timeout (10 s here), read by nbgrader itself
    assert "Timeout waiting for execute reply (10s)" in (released[0] / "nbgrader.log").read_text()
    assert "half-finished edit" in misbehaving["crash_at_import"].messages["3.6"][0]
    assert "syntax error in line" in misbehaving["syntax_error"].messages["3.2a"][0]
    assert "ran out of memory" in misbehaving["huge_allocation"].messages["3.3a"][0]
    assert "sys.exit()" in misbehaving["sys_exit"].messages["3.4b"][0]


def test_edited_and_deleted_test_cells_are_reported_and_graded_with_the_originals(misbehaving):
    result = misbehaving["edited_notebook"]
    assert result.total == result.max
    assert any("test_3_2a_hidden was edited" in n for n in result.notes), result.notes
    assert any("test_3_6_sanity was deleted" in n for n in result.notes), result.notes


def test_missing_files_are_reported(misbehaving):
    assert any("ex3_ood.py is missing" in n for n in misbehaving["missing_file"].notes)
    empty = misbehaving["empty"]
    assert empty.total == 0 and any("no ex3_*.py files" in n for n in empty.notes)


def test_feedback_without_clear_hidden_tests_would_leak_and_the_guard_stops_it(tmp_path):
    """nbgrader's default feedback keeps hidden tests; our config removes them, and the leak
    guard catches a course folder where that setting is missing."""
    course = autograde.make_course(tmp_path / "course")
    config = (course / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text(config.replace("c.GenerateFeedback.preprocessors", "# removed:"))
    cases.build([], tmp_path / "subs" / "reference" / "ex3")
    with pytest.raises(leakguard.LeakError, match="feedback"):
        autograde.autograde(tmp_path / "subs", course, progress=lambda *_: None)


def test_glyph_course_grade_prints_json_and_writes_feedback_without_hidden_tests(tmp_path):
    folder = cases.build(next(c for c in cases.MUTANTS if c.name == "noise_missing"), tmp_path / "ex3")
    page = tmp_path / "feedback.html"
    out = subprocess.run([sys.executable, "-m", "glyph_course", "grade", str(folder), "--json", "--feedback", str(page)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    scores = json.loads(out.stdout.strip().splitlines()[-1])
    assert scores["max"] == 34 and scores["total"] == 34 - 4
    assert scores["tasks"]["3.3b/c"] == [1, 5] and scores["tasks"]["3.2a"] == [3, 3]
    assert "should have std 0.1" in out.stdout
    html = leakguard.readable_text(page)
    assert "should have std 0.1" in html, "the feedback shows the failure message"
    hidden = leakguard.secret_lines(hidden_only=True)
    assert not [line for line in hidden if line in html]


def test_grade_rejects_a_missing_folder(tmp_path):
    out = subprocess.run([sys.executable, "-m", "glyph_course", "grade", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "Traceback" not in out.stderr
