"""Exports of the grades (Canvas, Moodle, Gradescope, nbgrader's own): each checked against the
columns and keys that ``docs/grading.md`` ("Exports") documents, read from the docs here, and
against the platforms' schemas written out independently in this file.

Fast: the results are built by hand; only the nbgrader export runs nbgrader (``nbgrader
export`` on a copy of the course's gradebook, a few seconds). The Gradescope runner grading a
submission through nbgrader is the one slow test.
"""
import ast
import csv
import io
import json
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, SOLUTIONS, TEMPLATE
from glyph_course.grading import exports, gradescope_runner, leakguard
from glyph_course.grading import autograde
from glyph_course.grading.autograde import StudentResult, write_grades

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib

DOCS = ROOT / "docs" / "grading.md"
SOURCE_NOTEBOOK = ROOT / "autograde" / "source" / "ex3" / "ex3.ipynb"
# the task table of docs/grading.md, typed here on purpose (the exports must agree with it)
POINTS = {"3.2a": 3, "3.2b": 4, "3.3a": 5, "3.3b/c": 5, "3.4a": 4, "3.4b": 3, "3.4c": 3, "3.5": 3, "3.6": 4}
EXERCISE_FILES = {"ex3_data.py", "ex3_main.py", "ex3_model.py", "ex3_ood.py"}
# Gradescope's autograder specification (gradescope-autograders.readthedocs.io, specs)
GRADESCOPE_VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


# -- what the docs say ----------------------------------------------------------------------------
def _exports_section() -> str:
    text = DOCS.read_text()
    start = text.index("\n## Exports\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def documented(heading: str, table: int = 0) -> list[str]:
    """The first column (the names in backticks) of table number ``table`` under the
    ``### heading`` of the docs' Exports section."""
    section = _exports_section()
    start = section.index(f"\n### {heading}\n")
    end = section.find("\n### ", start + 1)
    body = section[start:] if end < 0 else section[start:end]
    tables, current = [], []
    for line in body.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    rows = tables[table][2:]                     # header and separator rows
    return [re.match(r"\|\s*`([^`]+)`", row).group(1) for row in rows]


# -- hand-made results ----------------------------------------------------------------------------
def _result(student, lost=(), messages=None, notes=()):
    tasks = {t: [float(p), float(p)] for t, p in POINTS.items()}
    for task_id, got in dict(lost).items():
        tasks[task_id][0] = float(got)
    return StudentResult(student, tasks, messages=dict(messages or {}), notes=list(notes))


@pytest.fixture
def results():
    return [
        _result("alice"),
        _result("Bob_Builder", lost={"3.3a": 2, "3.6": 0},
                messages={"3.3a": ["expected 5% fresh chains, found 0%"],
                          "3.6": ["the AUROC labels are flipped", "expected 0.9, found 0.1"]},
                notes=["ex3_ood.py is missing from the submission (graded with the unchanged template)"]),
        _result("carol", lost={t: 0 for t in POINTS},
                messages={"3.5": ["stopped after the time limit of 30 s per test cell: look for an infinite loop"]}),
    ]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def canvas_map(tmp_path):
    return _write(tmp_path / "canvas-map.csv",
                  "submission,Student,ID,SIS User ID,SIS Login ID,Section\n"
                  'alice,"Liddell, Alice",1001,S-1,alice@uni.example,Group A\n'
                  'Bob Builder,"Builder, Bob",1002,,bob@uni.example,Group B\n'
                  'carol,"Carrol, Lewis",1003,S-3,,\n')


@pytest.fixture
def moodle_map(tmp_path):
    return _write(tmp_path / "moodle-map.csv",
                  "submission,email,username\n"
                  "alice,alice+ex3@uni.example,alice\n"
                  "Bob Builder,bob@uni.example,bøb\n"
                  'carol,"carol,c@uni.example",carol\n')


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


# -- Canvas ---------------------------------------------------------------------------------------
def test_the_docs_document_canvas_columns():
    assert documented("Canvas gradebook CSV") == [
        "Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Exercise 3 (<assignment id>)"]


def test_canvas_csv_has_the_documented_columns_and_points_possible_row(tmp_path, results, canvas_map):
    mapping = exports.read_mapping(canvas_map, exports.CANVAS_STUDENT_COLUMNS, exports.CANVAS_MATCH_COLUMNS)
    out = tmp_path / "canvas.csv"
    assert exports.write_canvas(results, mapping, out, assignment_id="4711") == []
    rows = _rows(out)
    expected = [c.replace("<assignment id>", "4711") for c in documented("Canvas gradebook CSV")]
    assert rows[0] == expected
    points_row = rows[1]
    assert points_row[0].strip() == "Points Possible" and points_row[0].startswith(" ")
    assert points_row[1:5] == ["", "", "", ""]
    assert float(points_row[5]) == sum(POINTS.values()) == 34
    assert all(len(r) == len(expected) for r in rows)


def test_canvas_round_trip(tmp_path, results, canvas_map):
    mapping = exports.read_mapping(canvas_map, exports.CANVAS_STUDENT_COLUMNS, exports.CANVAS_MATCH_COLUMNS)
    out = tmp_path / "canvas.csv"
    exports.write_canvas(results, mapping, out, assignment_id="4711")
    with open(out, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    possible, students = table[0], table[1:]
    assert float(possible["Exercise 3 (4711)"]) == 34
    by_id = {row["ID"]: row for row in students}
    assert {i: float(r["Exercise 3 (4711)"]) for i, r in by_id.items()} == {"1001": 34, "1002": 27, "1003": 0}
    assert by_id["1001"]["Student"] == "Liddell, Alice" and by_id["1001"]["SIS Login ID"] == "alice@uni.example"
    assert by_id["1002"]["SIS User ID"] == "" and by_id["1002"]["Section"] == "Group B"


def test_canvas_without_assignment_id_makes_a_new_assignment_column(tmp_path, results, canvas_map):
    mapping = exports.read_mapping(canvas_map, exports.CANVAS_STUDENT_COLUMNS, exports.CANVAS_MATCH_COLUMNS)
    rows, _ = exports.canvas_rows(results, mapping)
    assert rows[0][-1] == "Exercise 3"
    with pytest.raises(exports.ExportError, match="number in the assignment's address"):
        exports.canvas_rows(results, mapping, assignment_id="ex3")


def test_canvas_refuses_students_graded_out_of_different_totals(results, canvas_map):
    mapping = exports.read_mapping(canvas_map, exports.CANVAS_STUDENT_COLUMNS, exports.CANVAS_MATCH_COLUMNS)
    results[1].tasks["3.6"][1] = 10.0
    with pytest.raises(exports.ExportError, match="different totals"):
        exports.canvas_rows(results, mapping)


# -- the mapping ----------------------------------------------------------------------------------
def test_unmapped_submissions_are_named_or_left_out_with_a_warning(tmp_path, results):
    path = _write(tmp_path / "map.csv", "submission,ID\nalice,1001\nzoe,1009\n")
    mapping = exports.read_mapping(path, exports.CANVAS_STUDENT_COLUMNS, exports.CANVAS_MATCH_COLUMNS)
    with pytest.raises(exports.ExportError, match=r"2 graded submission\(s\) have no row .*Bob_Builder, carol"):
        exports.canvas_rows(results, mapping)
    rows, warnings = exports.canvas_rows(results, mapping, allow_unmapped=True)
    assert [r[1] for r in rows[2:]] == ["1001"]
    assert any("left out 2" in w and "Bob_Builder, carol" in w for w in warnings)
    assert any("zoe" in w and "no graded submission" in w for w in warnings)


@pytest.mark.parametrize("text, message", [
    ("student,ID\nalice,1\n", "first column must be `submission`"),
    ("submission\nalice\n", "at least one identifier column"),
    ("submission,ID,ID\nalice,1,2\n", "named twice"),
    ("submission,Login\nalice,a\n", "'Login' is not a column Canvas knows"),
    ("submission,Section\nalice,A\n", "needs one of the columns ID, SIS User ID, SIS Login ID"),
    ("submission,ID,Section\nalice,,A\n", "has no identifier"),
    ("submission,ID\nalice,1\nalice,2\n", "mapped twice"),
    ("submission,ID\nalice,1\nbob,1\n", "map to the same student"),
    ("submission,ID,SIS Login ID\nalice,1,a@x\nbob,2,a@x\n", "map to the same student"),
    ("submission,ID\nalice,1,extra\n", "3 fields, expected 2"),
])
def test_bad_canvas_mappings_are_explained(tmp_path, text, message):
    path = _write(tmp_path / "map.csv", text)
    with pytest.raises(exports.ExportError, match=re.escape(message)):
        exports.read_mapping(path, exports.CANVAS_STUDENT_COLUMNS, exports.CANVAS_MATCH_COLUMNS)


def test_a_missing_mapping_file_is_explained(tmp_path):
    with pytest.raises(exports.ExportError, match="does not exist"):
        exports.read_mapping(tmp_path / "nope.csv")


def test_folder_names_match_as_the_grader_names_students(tmp_path):
    mapping = exports.read_mapping(_write(tmp_path / "m.csv", "submission,email\nAnna Müller,anna@x\n"))
    assert list(mapping.rows) == ["Anna_M_ller"]


# -- Moodle ---------------------------------------------------------------------------------------
def test_the_docs_document_moodle_columns():
    assert documented("Moodle grade-import CSV") == [
        "<identifier columns>", "Exercise 3", "Exercise 3 task <task>", "Feedback"]


def test_moodle_csv_has_the_documented_columns(tmp_path, results, moodle_map):
    identifiers, total, per_task, feedback = documented("Moodle grade-import CSV")
    mapping = exports.read_mapping(moodle_map)
    out = tmp_path / "moodle.csv"
    exports.write_moodle(results, mapping, out)
    assert _rows(out)[0] == ["email", "username", total, feedback]
    exports.write_moodle(results, mapping, out, tasks=True)
    assert _rows(out)[0] == ["email", "username", total, *(per_task.replace("<task>", t) for t in POINTS), feedback]
    exports.write_moodle(results, mapping, out, feedback=False)
    assert _rows(out)[0] == ["email", "username", total]


def test_moodle_round_trip_keeps_identifiers_and_points(tmp_path, results, moodle_map):
    out = tmp_path / "moodle.csv"
    exports.write_moodle(results, exports.read_mapping(moodle_map), out, tasks=True)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["email"], r["username"]) for r in rows] == [
        ("alice+ex3@uni.example", "alice"), ("bob@uni.example", "bøb"), ("carol,c@uni.example", "carol")]
    assert [float(r["Exercise 3"]) for r in rows] == [34, 27, 0]
    assert float(rows[1]["Exercise 3 task 3.3a"]) == 2 and float(rows[1]["Exercise 3 task 3.2a"]) == 3


def test_moodle_feedback_names_what_lost_points(tmp_path, results, moodle_map):
    out = tmp_path / "moodle.csv"
    exports.write_moodle(results, exports.read_mapping(moodle_map), out)
    with open(out, newline="", encoding="utf-8") as fh:
        feedback = {r["username"]: r["Feedback"] for r in csv.DictReader(fh)}
    assert feedback["alice"].startswith("34 / 34 points")
    bob = feedback["bøb"]
    assert "3.3a 2/5: expected 5% fresh chains, found 0%" in bob
    assert "the AUROC labels are flipped; expected 0.9, found 0.1" in bob
    assert "ex3_ood.py is missing" in bob and "3.2a" not in bob
    assert "\n" not in bob


def test_moodle_refuses_an_identifier_named_like_the_grade_column(tmp_path, results):
    mapping = exports.read_mapping(_write(tmp_path / "m.csv", "submission,Exercise 3\nalice,a\n"))
    with pytest.raises(exports.ExportError, match="name of a grade column"):
        exports.moodle_rows(results[:1], mapping)


# -- Gradescope results.json ----------------------------------------------------------------------
def validate_gradescope(doc) -> list[str]:
    """Problems of ``doc`` as a Gradescope ``results.json`` (written from the specification, not
    from the writer): the documented keys only, their types, a score on the top level or on every
    test, and for us: every test with a maximum and an output, the top-level score their sum."""
    top_keys, test_keys = documented("Gradescope results.json", 0), documented("Gradescope results.json", 1)
    problems = []
    number = (int, float)
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    problems += [f"unknown key {k!r}" for k in doc if k not in top_keys]
    for key, kind in (("score", number), ("execution_time", number), ("output", str), ("tests", list)):
        if key in doc and (not isinstance(doc[key], kind) or isinstance(doc[key], bool)):
            problems.append(f"{key} is a {type(doc[key]).__name__}")
    for key in ("visibility", "stdout_visibility"):
        if key in doc and doc[key] not in GRADESCOPE_VISIBILITIES:
            problems.append(f"{key} {doc[key]!r}")
    tests = doc.get("tests", [])
    if "score" not in doc and not (tests and all("score" in t for t in tests)):
        problems.append("no score: neither on the top level nor on every test")
    for i, test in enumerate(tests if isinstance(tests, list) else []):
        if not isinstance(test, dict):
            problems.append(f"tests[{i}] is not an object")
            continue
        problems += [f"tests[{i}]: unknown key {k!r}" for k in test if k not in test_keys]
        problems += [f"tests[{i}]: no {k!r}" for k in test_keys if k not in test]
        for key, kind in (("score", number), ("max_score", number), ("name", str), ("number", str),
                          ("output", str)):
            if key in test and not isinstance(test[key], kind):
                problems.append(f"tests[{i}].{key} is a {type(test[key]).__name__}")
        if test.get("visibility") not in GRADESCOPE_VISIBILITIES:
            problems.append(f"tests[{i}].visibility {test.get('visibility')!r}")
        if isinstance(test.get("score"), number) and isinstance(test.get("max_score"), number) \
                and not 0 <= test["score"] <= test["max_score"]:
            problems.append(f"tests[{i}]: score {test['score']} outside 0..{test['max_score']}")
    if isinstance(doc.get("score"), number) and tests and all(isinstance(t.get("score"), number) for t in tests):
        if abs(doc["score"] - sum(t["score"] for t in tests)) > 1e-9:
            problems.append("the score is not the sum of the tests' scores")
    return problems


def test_the_docs_document_the_gradescope_keys():
    assert documented("Gradescope results.json", 0) == [
        "score", "execution_time", "output", "visibility", "stdout_visibility", "tests"]
    assert documented("Gradescope results.json", 1) == ["score", "max_score", "name", "number", "output", "visibility"]


@pytest.mark.parametrize("breakage, problem", [
    (lambda d: d["tests"][0].pop("max_score"), "no 'max_score'"),
    (lambda d: d.update(visibilty="visible"), "unknown key 'visibilty'"),
    (lambda d: d.update(visibility="students"), "visibility 'students'"),
    (lambda d: d["tests"][1].update(score="3"), "tests[1].score is a str"),
    (lambda d: d["tests"][2].update(number=3), "tests[2].number is a int"),
    (lambda d: d.update(score=d["score"] + 1), "not the sum"),
    (lambda d: d["tests"][0].update(score=99), "outside"),
    (lambda d: d["tests"][0].update(status="passed"), "unknown key 'status'"),
])
def test_the_results_validator_can_fail(results, breakage, problem):
    doc = exports.gradescope_results(results[1])
    assert validate_gradescope(doc) == []
    breakage(doc)
    assert any(problem in p for p in validate_gradescope(doc)), validate_gradescope(doc)


def test_gradescope_results_follow_the_schema_one_test_per_task(tmp_path, results):
    for result in results:
        path = exports.write_gradescope_results(result, tmp_path / result.student / "results.json")
        doc = json.loads(path.read_text())
        assert validate_gradescope(doc) == []
        assert [t["number"] for t in doc["tests"]] == list(POINTS)
        assert [t["max_score"] for t in doc["tests"]] == list(POINTS.values())
        assert doc["score"] == result.total
        assert doc["output"].startswith(f"Exercise 3: {result.total:g} / 34 points")


def test_gradescope_outputs_are_the_failure_messages(results):
    doc = exports.gradescope_results(results[1])
    tests = {t["number"]: t for t in doc["tests"]}
    assert tests["3.6"]["output"] == "the AUROC labels are flipped\nexpected 0.9, found 0.1"
    assert tests["3.3a"]["output"] == "expected 5% fresh chains, found 0%" and tests["3.3a"]["score"] == 2
    assert tests["3.2a"]["output"] == "all checks passed"
    assert "ex3_ood.py is missing" in doc["output"]
    assert tests["3.2a"]["name"] == "__init__, get_logits (ex3_model.py)"
    assert tests["3.3b/c"]["name"] == "langevin (ex3_main.py)"
    assert doc["visibility"] == "visible" and doc["stdout_visibility"] == "hidden"
    assert "execution_time" not in doc


def test_gradescope_visibility_is_checked(results):
    doc = exports.gradescope_results(results[0], visibility="after_published", execution_time=12.6)
    assert {t["visibility"] for t in doc["tests"]} == {"after_published"} and doc["execution_time"] == 13
    with pytest.raises(exports.ExportError, match="visibility must be one of"):
        exports.gradescope_results(results[0], visibility="public")


# -- a graded course folder -----------------------------------------------------------------------
def _graded_notebook(path: Path, failures: dict[str, str]) -> None:
    """A graded notebook with an error output in each test cell ``failures`` names."""
    cells = [{"cell_type": "code", "metadata": {"nbgrader": {"grade": True, "grade_id": gid}}, "source": "",
              "outputs": [{"output_type": "error", "ename": "AssertionError", "evalue": text, "traceback": []}]}
             for gid, text in failures.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture
def course(tmp_path, results):
    folder = tmp_path / "course"
    (folder / "source" / "ex3").mkdir(parents=True)
    shutil.copy2(SOURCE_NOTEBOOK, folder / "source" / "ex3" / "ex3.ipynb")
    write_grades(results, folder / "grades.csv")
    _graded_notebook(folder / "autograded" / "Bob_Builder" / "ex3" / "ex3.ipynb",
                     {"test_3_3a_hidden": "Exercise 3.3a: expected 5% fresh chains, found 0%",
                      "test_3_6_sanity": "Exercise 3.6: the AUROC labels are flipped"})
    return folder


def test_read_course_rebuilds_the_results(course, results):
    read = exports.read_course(course)
    assert [r.student for r in read] == ["alice", "Bob_Builder", "carol"]
    assert [r.tasks for r in read] == [r.tasks for r in results]
    assert read[1].messages == {"3.3a": ["expected 5% fresh chains, found 0%"],
                                "3.6": ["the AUROC labels are flipped"]}
    assert read[1].notes == results[1].notes and read[0].messages == {}


def test_read_course_explains_what_is_wrong(tmp_path, course):
    with pytest.raises(exports.ExportError, match="no grade table"):
        exports.read_course(tmp_path / "elsewhere")
    table = course / "grades.csv"
    table.write_text(table.read_text().replace("3.6,notes", "3.7,notes"))
    with pytest.raises(exports.ExportError, match="are not those of"):
        exports.read_course(course)
    table.write_text("name,points\nalice,3\n")
    with pytest.raises(exports.ExportError, match="not the course's grade table"):
        exports.read_course(course)


# -- the commands ---------------------------------------------------------------------------------
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_commands_write_their_files(tmp_path, course, canvas_map, moodle_map, capsys):
    assert exports.main(["canvas", "--course", str(course), "--map", str(canvas_map), "--assignment-id", "77"]) == 0
    assert _rows(course / "exports" / "canvas-grades.csv")[0][-1] == "Exercise 3 (77)"
    out = tmp_path / "m.csv"
    argv = ["moodle", "--course", str(course), "--map", str(moodle_map), "--tasks", "--out", str(out)]
    assert exports.main(argv) == 0
    assert "Exercise 3 task 3.6" in _rows(out)[0]
    assert "expected 5% fresh chains" in _rows(out)[2][-1]      # from the graded notebook
    assert exports.main(["gradescope-results", "--course", str(course), "--student", "Bob Builder"]) == 0
    doc = json.loads((course / "exports" / "gradescope" / "Bob_Builder" / "results.json").read_text())
    assert validate_gradescope(doc) == [] and doc["score"] == 27
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["canvas"], "the following arguments are required: --map"),
    (["canvas", "--map", "m.csv", "--course", "{tmp}/none"], "no grade table"),
    (["canvas", "--map", "{tmp}/none.csv", "--course", "{course}"], "does not exist"),
    (["canvas", "--map", "{canvas}", "--course", "{course}", "--assignment-id", "x1"], "not 'x1'"),
    (["moodle", "--map", "{canvas}", "--course", "{course}", "--tasks", "--nonsense"], "unrecognized arguments"),
    (["gradescope-results", "--course", "{course}"], "pick one with --student (alice, Bob_Builder, carol)"),
    (["gradescope-results", "--course", "{course}", "--student", "dave"], "no graded student 'dave'"),
    (["gradescope-results", "--course", "{course}", "--student", "alice", "--visibility", "all"], "invalid choice"),
    (["gradescope-bundle", "--course", "{tmp}"], "is not the course folder"),
    (["gradescope-bundle", "--wheel", "{canvas}"], "is not a wheel"),
    (["nbgrader", "--course", "{tmp}"], "has no nbgrader_config.py"),
])
def test_bad_input_is_one_error_line_with_status_2(tmp_path, course, canvas_map, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, course=course, canvas=canvas_map) for a in argv]
    assert exports.main(argv) == 2
    assert message in _one_error_line(capsys)


def test_unknown_or_missing_command(capsys):
    assert exports.main([]) == 2
    assert "gradescope-bundle" in capsys.readouterr().err
    assert exports.main(["blackboard"]) == 2
    assert "unknown export 'blackboard'" in _one_error_line(capsys)


@pytest.mark.parametrize("command", sorted(exports.COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        exports.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"glyph-course export {command}" in capsys.readouterr().out


def test_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "glyph_course.grading.exports", "--help"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "moodle" in proc.stdout


# -- the Gradescope bundle ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    exports.build_gradescope_bundle(out)
    return out


def _members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_bundle_holds_the_documented_files(bundle):
    names = set(_members(bundle))
    documented_files = documented("Gradescope autograder bundle")
    patterns = [re.escape(f).replace(re.escape("<version>"), r"[0-9][^/-]*").replace(r"\*", r"[^/]+")
                for f in documented_files]
    assert all(any(re.fullmatch(p, n) for n in names) for p in patterns), (documented_files, names)
    assert all(any(re.fullmatch(p, n) for p in patterns) for n in names), names
    assert {n.split("/")[-1] for n in names if n.startswith("templates/")} == EXERCISE_FILES


def test_bundle_scripts_are_executable_at_the_root(bundle):
    with zipfile.ZipFile(bundle) as archive:
        modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
    for script in ("setup.sh", "run_autograder"):
        assert modes[script] & stat.S_IXUSR, script
    members = _members(bundle)
    assert members["setup.sh"].startswith(b"#!/usr/bin/env bash\n")
    assert members["run_autograder"].startswith(b"#!")
    assert b"glyph_grader.py" in members["run_autograder"]


def _solution_lines() -> set[str]:
    """Lines of the reference's solution blocks that no template shows (the leak guard's own list,
    without the idioms any network has, such as ``nn.Flatten(),`` in the student library's judge)."""
    return leakguard.secret_lines() - leakguard.hidden_lines()


def _texts(members: dict[str, bytes]) -> dict[str, str]:
    texts = {}
    for name, data in members.items():
        if name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                texts.update({f"{name}!{m}": inner.read(m).decode(errors="replace") for m in inner.namelist()})
        else:
            texts[name] = data.decode(errors="replace")
    return texts


def test_bundle_holds_no_solutions_and_no_course_tooling(bundle):
    members = _members(bundle)
    texts = _texts(members)
    assert not [n for n in texts if "solutions" in n.split("/") or "glyph_course" in n]
    assert not [n for n, t in texts.items() if n.endswith(".py")
                and re.search(r"^\s*(from|import)\s+glyph_course\b", t, re.M)]
    python = sorted(n for n in texts if n.endswith(".py") and "!" not in n)
    assert python == ["course/nbgrader_config.py", "glyph_grader.py", *sorted(f"templates/{f}" for f in EXERCISE_FILES)]
    assert members["course/nbgrader_config.py"] == (ROOT / "autograde" / "nbgrader_config.py").read_bytes()
    wheel_packages = {n.split("!")[1].split("/")[0] for n in texts if ".whl!" in n}
    assert {p for p in wheel_packages if not p.endswith(".dist-info")} == {"glyph_ebm"}
    # the graded notebook is the course's own, unchanged (its hidden tests belong on Gradescope) ...
    assert members["course/source/ex3/ex3.ipynb"] == SOURCE_NOTEBOOK.read_bytes()
    # ... and no other file holds a line of the reference's solution blocks
    secrets = _solution_lines()
    assert len(secrets) > 30
    leaks = [(n, s) for n, t in texts.items() if n != "course/source/ex3/ex3.ipynb" for s in secrets if s in t]
    assert leaks == []
    for name in EXERCISE_FILES:
        assert members[f"templates/{name}"] == (TEMPLATE / name).read_bytes()


def test_bundle_runner_is_the_course_module_and_needs_no_tooling(bundle):
    members = _members(bundle)
    assert members["glyph_grader.py"] == Path(gradescope_runner.__file__).read_bytes()
    tree = ast.parse(members["glyph_grader.py"].decode())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    allowed = {"__future__", "argparse", "json", "os", "re", "shutil", "subprocess", "sys", "tempfile", "time",
               "pathlib", "warnings", "nbformat", "nbgrader.api", "nbgrader.utils", "glyph_ebm.files"}
    assert imported <= allowed, imported - allowed


def test_bundle_texts_come_from_the_repository(bundle):
    members = _members(bundle)
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    course = tomllib.loads((ROOT / "course" / "pyproject.toml").read_text())["project"]
    lines = [ln for ln in members["requirements.txt"].decode().splitlines() if ln and not ln.startswith("#")]
    wheel = [n for n in members if n.endswith(".whl")]
    assert len(wheel) == 1 and lines[0] == f"./{wheel[0]}"
    nbgrader = [d for d in course["dependencies"] if d.startswith("nbgrader")]
    assert lines[1:1 + len(root["dependencies"]) + 1] == [*root["dependencies"], *nbgrader]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", ln) for ln in lines[1:])
    assert any(ln.startswith("ipykernel==") for ln in lines)
    setup = members["setup.sh"].decode()
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", root["requires-python"]).groups()
    assert f"sys.version_info >= ({minimum[0]}, {minimum[1]})" in setup
    assert "-r requirements.txt" in setup and "download.pytorch.org/whl/cpu" in setup and "--prepare" in setup
    config = json.loads(members["grader.json"])
    notebook = json.loads(SOURCE_NOTEBOOK.read_text())["metadata"]["glyph_ebm"]
    assert config["points"] == notebook["tasks"] == {t: float(p) for t, p in POINTS.items()}
    assert set(config["files"]) == EXERCISE_FILES and config["timeout"] == 30
    assert set(config["names"]) == set(POINTS)
    readme = members["README.md"].decode()
    assert "34 points" in readme and "| 3.3b/c | 5 |" in readme


def _fake_wheel(path: Path, member: str, text: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("glyph_ebm/__init__.py", "")
        archive.writestr(member, text)
    return path


def test_bundle_with_a_solution_line_or_course_tooling_is_not_written(tmp_path):
    line = sorted(_solution_lines())[0]
    out = tmp_path / "autograder.zip"
    leaky = _fake_wheel(tmp_path / "glyph_ebm-0.1.0-py3-none-any.whl", "glyph_ebm/extra.py", f"{line}\n")
    with pytest.raises(exports.ExportError, match=re.escape(f"contains secret line {line!r}")):
        exports.build_gradescope_bundle(out, wheel=leaky)
    tooling = _fake_wheel(tmp_path / "glyph_ebm-0.1.1-py3-none-any.whl", "glyph_ebm/helper.py",
                          "from glyph_course.reference import load_reference\n")
    with pytest.raises(exports.ExportError, match="imports the course tooling"):
        exports.build_gradescope_bundle(out, wheel=tooling)
    packaged = _fake_wheel(tmp_path / "glyph_ebm-0.1.2-py3-none-any.whl", "glyph_course/__init__.py", "")
    with pytest.raises(exports.ExportError, match=r"is part of the course tooling \(glyph_course\)"):
        exports.build_gradescope_bundle(out, wheel=packaged)
    assert not out.exists()


def test_bundle_options_are_checked(tmp_path):
    with pytest.raises(exports.ExportError, match="at least 1 s"):
        exports.build_gradescope_bundle(tmp_path / "a.zip", timeout=0)
    with pytest.raises(exports.ExportError, match="visibility must be one of"):
        exports.build_gradescope_bundle(tmp_path / "a.zip", visibility="everyone")


def test_runner_stages_a_submission_as_the_grader_does(tmp_path):
    released = tmp_path / "release"
    released.mkdir()
    for name in EXERCISE_FILES:
        (released / name).write_text(f"# template {name}\n")
    (released / "ex3.ipynb").write_text("{}")
    submission = tmp_path / "submission" / "handin" / "deeper"
    submission.mkdir(parents=True)
    (submission / "ex3_model.py").write_text("# mine\n")
    (submission / "helper.py").write_text("# my helper\n")
    target = tmp_path / "submitted" / "student" / "ex3"
    notes = gradescope_runner.stage(tmp_path / "submission", target, released, sorted(EXERCISE_FILES))
    assert (target / "ex3_model.py").read_text() == "# mine\n" and (target / "helper.py").exists()
    assert (target / "ex3_main.py").read_text() == "# template ex3_main.py\n"
    assert (target / "ex3.ipynb").read_text() == "{}"
    assert sorted(notes) == [f"{n} is missing from the submission (graded with the unchanged template)"
                             for n in sorted(EXERCISE_FILES - {"ex3_model.py"})]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gradescope_runner.stage(empty, target, released, sorted(EXERCISE_FILES)) == [
        "no ex3_*.py files were found in the submission"]


# -- nbgrader's own export ------------------------------------------------------------------------
def test_the_docs_document_nbgraders_columns():
    assert documented("nbgrader export") == list(exports.NBGRADER_COLUMNS)


def test_nbgrader_export_writes_nbgraders_documented_columns(tmp_path):
    from nbgrader.api import Gradebook

    course = autograde.make_course(tmp_path / "course")
    autograde.release(course, with_kit=False)        # the gradebook learns ex3 and its 34 points
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.add_student("alice", first_name="Alice", last_name="Liddell", email="alice@uni.example")
        gb.add_submission("ex3", "alice")
    out = exports.nbgrader_export(course, tmp_path / "exports" / "nbgrader.csv")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == documented("nbgrader export")
    assert [(r["assignment"], r["student_id"], r["email"], float(r["max_score"])) for r in rows] == [
        ("ex3", "alice", "alice@uni.example", 34.0)]
    assert not (course / "grades.csv").exists()


# -- the bundle on a submission, through nbgrader (slow) -------------------------------------------
@pytest.mark.slow
def test_bundle_grades_a_submission_like_glyph_course_grade(tmp_path, bundle):
    source = tmp_path / "source"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(source)
    submission = tmp_path / "submission" / "ex3"
    submission.mkdir(parents=True)
    shutil.copy2(SOLUTIONS / "ex3_model.py", submission / "ex3_model.py")    # 3.2a and 3.2b only
    results = tmp_path / "results" / "results.json"
    proc = subprocess.run([sys.executable, str(source / "glyph_grader.py"), "--source", str(source),
                           "--submission", str(submission.parent), "--results", str(results), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(results.read_text())
    assert validate_gradescope(doc) == []
    scores = {t["number"]: t["score"] for t in doc["tests"]}
    assert scores == {t: (p if t in ("3.2a", "3.2b") else 0) for t, p in POINTS.items()}
    assert all("not implemented yet" in t["output"] for t in doc["tests"] if t["score"] == 0)
    assert "ex3_main.py is missing from the submission" in doc["output"]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["total"] == doc["score"] == 7 and last["max"] == 34
