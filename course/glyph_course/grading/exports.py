"""Exports of the grades of exercise 3 for learning platforms (instructors only).

One command each (``glyph-course export COMMAND``, or ``python -m glyph_course.grading.exports
COMMAND``); the columns of every format are documented in ``docs/grading.md`` ("Exports"):

* ``canvas`` - a Canvas gradebook import CSV: ``Student, ID, SIS User ID, SIS Login ID,
  Section, Exercise 3 (<assignment id>)``, a ``Points Possible`` row, one row per student;
* ``moodle`` - a Moodle grade-import CSV: the identifier columns of the mapping file, one grade
  column (``Exercise 3``; ``--tasks``: one more per task) and a feedback column;
* ``gradescope-results`` - Gradescope's ``results.json`` of one graded submission, one test
  per task;
* ``gradescope-bundle`` - a Gradescope autograder zip (``setup.sh``, ``run_autograder``) that
  runs the same checks on Gradescope (:mod:`.gradescope_runner`);
* ``nbgrader`` - nbgrader's own ``nbgrader export`` of the course's gradebook.

Everything is read from a graded course folder (``autograde/`` by default): ``grades.csv``
(:func:`.autograde.write_grades`), the graded source notebook (points per task) and the graded
notebooks (failure messages); the writers also take a list of
:class:`~.autograde.StudentResult` directly. Canvas and Moodle know students by their own
identifiers: a mapping file ``submission,<identifier columns>`` maps the submission folder
names to them, and a graded submission without a row in it is an error (``--allow-unmapped``
leaves it out with a warning). Every file is written atomically.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from glyph_ebm.errors import GlyphEBMError, run_command
from glyph_ebm.files import atomic_write, write_json, write_text

from ..paths import COURSE, ROOT, SOLUTIONS, TEMPLATE
from . import gradescope_runner as runner
from .autograde import ASSIGNMENT, NOTEBOOK, StudentResult, student_id

TITLE = "Exercise 3"                     # the assignment's name on the platforms (changeable)
EXPORTS = "exports"                      # default output folder, inside the course folder
GRADES_CSV = "grades.csv"                # the course's grade table (autograde.write_grades)

# Canvas: the student columns of Canvas's own gradebook export, which its import reads back,
# then one column per assignment "Name (assignment id)" and, as the export's second row,
# "Points Possible". Followed: Canvas's gradebook export/import guides ("How do I export/import
# grades in the Gradebook?", as summarised e.g. by VCU, ts.vcu.edu/askit/.../gradebook-action-menu-faculty/,
# and Ohio State, teaching.resources.osu.edu/.../import-csv-file-carmen-grades: the columns Student,
# ID, SIS User ID, SIS Login ID, Section, then the assignment columns; a column without an
# assignment id becomes a new assignment; an imported score overwrites the gradebook's).
CANVAS_STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_MATCH_COLUMNS = ("ID", "SIS User ID", "SIS Login ID")   # one of them identifies the student
CANVAS_POINTS_POSSIBLE = "    Points Possible"                  # as Canvas's export writes it

# Moodle: "Import grades: CSV file" (docs.moodle.org/en/Grade_import): any columns; at import
# the teacher maps one column to a user field ("Identify user by": user id, username, ID
# number or email address) and each other column to a grade item, to "feedback for" an item, or
# to nothing. A grade above the item's maximum is refused, so the item's maximum must be 34.
MOODLE_FEEDBACK = "Feedback"

# nbgrader's CsvExportPlugin (nbgrader/plugins/export.py, 0.9.6): its columns, in order
NBGRADER_COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score")

# Gradescope: the bundle's files (Gradescope's "Autograder Specifications", see .gradescope_runner)
BUNDLE_RUNNER = "glyph_grader.py"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"   # CPU builds: Gradescope's machines have no GPU
COURSE_PYPROJECT = ROOT / "course" / "pyproject.toml"


class ExportError(GlyphEBMError):
    """An export cannot be written (the message says which input is wrong and how to fix it)."""


def _fmt(x) -> str:
    return str(runner.num(x))


# -- reading a graded course folder ------------------------------------------------------------
def read_course(course: Path = COURSE, messages: bool = True) -> list[StudentResult]:
    """The students of the course folder's ``grades.csv`` as :class:`StudentResult`: points per
    task from the table, maximum per task from the graded source notebook, failure messages from
    the graded notebooks (``autograded/<student>/ex3/ex3.ipynb``, when ``messages``)."""
    course = Path(course)
    table, notebook = course / GRADES_CSV, course / "source" / ASSIGNMENT / NOTEBOOK
    if not table.exists():
        raise ExportError(f"no grade table at {table}: grade the submissions first "
                          "(make autograde SUBMISSIONS=DIR) or pass --course with a graded course folder")
    if not notebook.exists():
        raise ExportError(f"{course} has no graded notebook source/{ASSIGNMENT}/{NOTEBOOK}; "
                          "pass --course with the nbgrader course folder that graded the submissions")
    cell_tasks, points = runner.task_table(notebook)
    with open(table, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0] if rows else []
    if header[:3] != ["student", "total", "max"] or header[-1:] != ["notes"]:
        raise ExportError(f"{table} is not the course's grade table (expected the columns student, total, max, "
                          f"<tasks>, notes; found {', '.join(header) or 'nothing'})")
    tasks = header[3:-1]
    if tasks != list(points):
        raise ExportError(f"the tasks of {table} ({', '.join(tasks)}) are not those of {notebook} "
                          f"({', '.join(points)}): grade again with the current notebook")
    timeout = int(os.environ.get("GLYPH_EBM_CELL_TIMEOUT", 30))
    results = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ExportError(f"{table}:{lineno}: {len(row)} fields, expected {len(header)}")
        try:
            got = [float(v) for v in row[3:-1]]
        except ValueError:
            raise ExportError(f"{table}:{lineno}: a task's points are not a number: {row[3:-1]}") from None
        result = StudentResult(row[0], {t: [g, points[t]] for t, g in zip(tasks, got)},
                               notes=[n for n in row[-1].split(" | ") if n])
        graded = course / "autograded" / row[0] / ASSIGNMENT / NOTEBOOK
        if messages and graded.exists():
            result.messages = runner.failure_messages(graded, cell_tasks, timeout)
        html = course / "feedback" / row[0] / ASSIGNMENT / "ex3.html"
        result.feedback = html if html.exists() else None
        results.append(result)
    if not results:
        raise ExportError(f"{table} has no students; grade some submissions first")
    return results


def _common_max(results: list[StudentResult]) -> float:
    maxima = {r.max for r in results}
    if len(maxima) != 1:
        raise ExportError(f"the students were graded out of different totals ({', '.join(map(_fmt, sorted(maxima)))}): "
                          "grade them all with the same notebook")
    return maxima.pop()


# -- the mapping from submission folders to platform identities ---------------------------------
@dataclass
class Mapping:
    """A mapping file ``submission,<identifier columns>``: ``rows[student id] = {column: value}``."""

    path: Path
    columns: list[str]
    rows: dict[str, dict[str, str]] = field(default_factory=dict)


def read_mapping(path: Path, allowed: tuple[str, ...] | None = None,
                 identifying: tuple[str, ...] | None = None) -> Mapping:
    """Read a mapping file. ``allowed``: the only identifier columns it may have (Canvas's);
    ``identifying``: at least one of these must be filled in every row, and a value filled in
    may appear in one row only (Canvas's ids); by default any column identifies, and only two
    rows with the same values in all of them are an error (Moodle: the teacher picks the column
    at import, and names may repeat).
    Submission names are matched as the grader names students (:func:`.autograde.student_id`:
    the folder name with odd characters replaced)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"mapping file {path} does not exist; write a CSV with the header "
                          f"`submission,{','.join(allowed or ('email',))}` and one row per student")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise ExportError(f"{path} is not UTF-8 text; save the mapping as CSV (UTF-8)") from None
    if not rows or not rows[0] or rows[0][0].strip() != "submission":
        raise ExportError(f"{path}: the first column must be `submission` (the submission folder names), "
                          "followed by the identifier columns; found "
                          f"{', '.join(rows[0]) if rows else 'an empty file'}")
    columns = [c.strip() for c in rows[0][1:]]
    if not columns or not all(columns):
        raise ExportError(f"{path}: name at least one identifier column after `submission` (e.g. "
                          f"{', '.join(allowed) if allowed else 'email, username or idnumber'}); "
                          "empty names are not allowed")
    if len(set(columns)) != len(columns):
        raise ExportError(f"{path}: a column is named twice: {', '.join(columns)}")
    if allowed is not None:
        unknown = [c for c in columns if c not in allowed]
        if unknown:
            raise ExportError(f"{path}: {', '.join(map(repr, unknown))} is not a column Canvas knows; "
                              f"use {', '.join(allowed)}")
    unique = tuple(c for c in (identifying or ()) if c in columns)
    identifying = tuple(c for c in (identifying or columns) if c in columns)
    if not identifying:
        raise ExportError(f"{path}: the mapping needs one of the columns {', '.join(CANVAS_MATCH_COLUMNS)} "
                          "(Canvas identifies students by them)")
    mapping, seen = Mapping(path, columns), {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(columns) + 1:
            raise ExportError(f"{path}:{lineno}: {len(row)} fields, expected {len(columns) + 1} "
                              f"(submission,{','.join(columns)})")
        name, values = row[0].strip(), {c: v.strip() for c, v in zip(columns, row[1:])}
        if not name:
            raise ExportError(f"{path}:{lineno}: the submission name is empty")
        sid = student_id(name)
        if sid in mapping.rows:
            raise ExportError(f"{path}:{lineno}: submission {name!r} is mapped twice")
        if not any(values[c] for c in identifying):
            raise ExportError(f"{path}:{lineno}: submission {name!r} has no identifier; fill in "
                              f"{' or '.join(identifying)}")
        # one student must not get two grades
        keys = [(c, values[c]) for c in unique if values[c]] + [("", tuple(values[c] for c in identifying))]
        for key in keys:
            if key in seen:
                raise ExportError(f"{path}:{lineno}: submissions {seen[key]!r} and {name!r} map to the same "
                                  f"student ({key[0] + ' ' if key[0] else ''}{key[1]!r})")
            seen[key] = name
        mapping.rows[sid] = values
    return mapping


def match(results: list[StudentResult], mapping: Mapping,
          allow_unmapped: bool = False) -> tuple[list[tuple[StudentResult, dict[str, str]]], list[str]]:
    """``([(result, identity)], warnings)``: every graded submission with its row of the mapping.
    A submission without a row is an error, or left out with a warning (``allow_unmapped``)."""
    unmapped = [r.student for r in results if r.student not in mapping.rows]
    if unmapped and not allow_unmapped:
        raise ExportError(f"{len(unmapped)} graded submission(s) have no row in {mapping.path}: "
                          f"{', '.join(unmapped)}; add a row for each (or pass --allow-unmapped to leave them out)")
    warnings = []
    if unmapped:
        warnings.append(f"left out {len(unmapped)} graded submission(s) without a row in {mapping.path}: "
                        f"{', '.join(unmapped)}")
    graded = {r.student for r in results}
    ungraded = [s for s in mapping.rows if s not in graded]
    if ungraded:
        warnings.append(f"{len(ungraded)} student(s) of {mapping.path} have no graded submission and are not in "
                        f"the export (their grade stays as it is): {', '.join(ungraded)}")
    return [(r, mapping.rows[r.student]) for r in results if r.student in mapping.rows], warnings


# -- Canvas -------------------------------------------------------------------------------------
def canvas_column(name: str = TITLE, assignment_id: str | None = None) -> str:
    """The assignment's column: ``Name (id)``; without an id Canvas makes a new assignment."""
    if assignment_id is None:
        return name
    if not re.fullmatch(r"\d+", str(assignment_id)):
        raise ExportError(f"the Canvas assignment id is the number in the assignment's address "
                          f"(.../assignments/12345), not {assignment_id!r}")
    return f"{name} ({assignment_id})"


def canvas_rows(results: list[StudentResult], mapping: Mapping, name: str = TITLE,
                assignment_id: str | None = None, allow_unmapped: bool = False) -> tuple[list[list[str]], list[str]]:
    """The rows of the Canvas CSV (header, Points Possible, students) and the warnings."""
    column = canvas_column(name, assignment_id)
    top = _common_max(results)
    pairs, warnings = match(results, mapping, allow_unmapped)
    rows = [[*CANVAS_STUDENT_COLUMNS, column],
            [CANVAS_POINTS_POSSIBLE, *[""] * (len(CANVAS_STUDENT_COLUMNS) - 1), _fmt(top)]]
    for result, who in pairs:
        rows.append([who.get(c, "") for c in CANVAS_STUDENT_COLUMNS] + [_fmt(result.total)])
    return rows, warnings


def write_canvas(results: list[StudentResult], mapping: Mapping, path: Path, name: str = TITLE,
                 assignment_id: str | None = None, allow_unmapped: bool = False) -> list[str]:
    """Write the Canvas gradebook import CSV to ``path``; returns the warnings."""
    rows, warnings = canvas_rows(results, mapping, name, assignment_id, allow_unmapped)
    _write_csv(path, rows)
    return warnings


# -- Moodle -------------------------------------------------------------------------------------
def feedback_text(result: StudentResult) -> str:
    """One line for the student: the total, each task that lost points with its messages, the notes."""
    parts = [f"{_fmt(result.total)} / {_fmt(result.max)} points."]
    for task_id, (got, top) in result.tasks.items():
        if got < top:
            why = "; ".join(result.messages.get(task_id, []))
            parts.append(f"{task_id} {_fmt(got)}/{_fmt(top)}" + (f": {why}." if why else "."))
    parts += [f"Note: {note}." if not note.endswith(".") else f"Note: {note}" for note in result.notes]
    return " ".join(parts)


def moodle_task_column(item: str, task_id: str) -> str:
    return f"{item} task {task_id}"


def moodle_rows(results: list[StudentResult], mapping: Mapping, item: str = TITLE, tasks: bool = False,
                feedback: bool = True, allow_unmapped: bool = False) -> tuple[list[list[str]], list[str]]:
    """The rows of the Moodle CSV (header, students) and the warnings."""
    pairs, warnings = match(results, mapping, allow_unmapped)
    task_ids = list(results[0].tasks) if results else []
    header = [*mapping.columns, item, *([moodle_task_column(item, t) for t in task_ids] if tasks else []),
              *([MOODLE_FEEDBACK] if feedback else [])]
    if len(set(header)) != len(header):
        raise ExportError(f"{mapping.path}: an identifier column has the name of a grade column ({item!r}); rename it")
    rows = [header]
    for result, who in pairs:
        rows.append([*(who[c] for c in mapping.columns), _fmt(result.total),
                     *([_fmt(result.tasks[t][0]) for t in task_ids] if tasks else []),
                     *([feedback_text(result)] if feedback else [])])
    return rows, warnings


def write_moodle(results: list[StudentResult], mapping: Mapping, path: Path, item: str = TITLE,
                 tasks: bool = False, feedback: bool = True, allow_unmapped: bool = False) -> list[str]:
    """Write the Moodle grade-import CSV to ``path``; returns the warnings."""
    rows, warnings = moodle_rows(results, mapping, item, tasks, feedback, allow_unmapped)
    _write_csv(path, rows)
    return warnings


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with atomic_write(path) as fh:
        csv.writer(fh).writerows(rows)


# -- Gradescope results.json --------------------------------------------------------------------
def task_names(template: Path = TEMPLATE) -> dict[str, str]:
    """``{task: "functions (file)"}`` from the templates' ``NotImplementedError`` hints (the
    test names on Gradescope); empty when the templates are not there."""
    from .kit import exercise_raises

    try:
        raises = exercise_raises(Path(template))
    except (OSError, SyntaxError):
        return {}
    names: dict[str, dict[str, list[str]]] = {}
    for file, func, _, task, _ in raises:
        funcs = names.setdefault(task, {}).setdefault(file, [])
        if func not in funcs:
            funcs.append(func)
    return {task: "; ".join(f"{', '.join(funcs)} ({file})" for file, funcs in files.items())
            for task, files in names.items()}


def gradescope_results(result: StudentResult, names: dict[str, str] | None = None,
                       visibility: str = "visible", stdout_visibility: str = "hidden",
                       execution_time: float | None = None) -> dict:
    """Gradescope's ``results.json`` of one student (:func:`.gradescope_runner.results_json`)."""
    try:
        return runner.results_json(result.tasks, result.messages, result.notes,
                                   names=task_names() if names is None else names, title=TITLE,
                                   visibility=visibility, stdout_visibility=stdout_visibility,
                                   execution_time=execution_time)
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def write_gradescope_results(result: StudentResult, path: Path, **options) -> Path:
    return write_json(path, gradescope_results(result, **options))


# -- Gradescope autograder bundle ---------------------------------------------------------------
SETUP_SH = Template("""\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
# Written by `glyph-course export gradescope-bundle` from the course's repository (the pins are
# its pyproject.toml files'); do not edit, build the bundle again.
set -euo pipefail
cd /autograder/source
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -c 'import sys; sys.exit(0 if sys.version_info >= ($python_min) else
    "error: exercise 3 needs Python >= $python_text; choose a newer base image")'
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --no-cache-dir --upgrade pip
# the student library (the wheel in this bundle), its pinned dependencies ($torch_note CPU builds
# from PyTorch's index) and nbgrader with its kernel, pinned as the course tooling has them
/autograder/venv/bin/pip install --no-cache-dir --extra-index-url $torch_index -r requirements.txt
# nbgrader learns the test cells of the graded notebook once, here
/autograder/venv/bin/python $runner --prepare
""")

RUN_AUTOGRADER = Template("""\
#!/usr/bin/env bash
# Gradescope runs this for every submission: grades /autograder/submission (the student's
# ex3_*.py files) with nbgrader, as `glyph-course grade` does, and writes
# /autograder/results/results.json (one test per task). Written by `glyph-course export gradescope-bundle`.
exec /autograder/venv/bin/python /autograder/source/$runner "$$@"
""")

BUNDLE_README = Template("""\
# Gradescope autograder: $title ($total points)

Built by `glyph-course export gradescope-bundle` from the course's repository. Instructors
only: it holds the graded notebook with its hidden tests (never give it to students). It does
not hold the reference solutions.

* Gradescope: a Programming Assignment worth $total points; Configure Autograder: upload this zip
  (base image: Ubuntu with Python >= $python_text, e.g. 22.04). `setup.sh` installs Python
  packages (pinned: `requirements.txt`) and releases the assignment with nbgrader once.
* Students upload their files (or a zip or folder with them): $files.
  A missing file is graded as the unchanged template; the notebook is always this bundle's copy.
* Each submission: `run_autograder` runs `$runner`, which grades with nbgrader (time limit
  $timeout s per test cell) and writes one Gradescope test per task with its failure messages.

| task | points | what |
|---|---|---|
$tasks
""")


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:          # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def bundle_requirements(pyproject: Path | None = None, course_pyproject: Path = COURSE_PYPROJECT) -> list[str]:
    """The packages Gradescope installs, pinned: the student library's dependencies (root
    ``pyproject.toml``), nbgrader as ``course/pyproject.toml`` pins it, and the notebook's
    kernel packages at the versions installed beside the course tooling (as the student kit)."""
    from .kit import PYPROJECT, library_pins, notebook_pins

    pins = library_pins(pyproject or PYPROJECT)
    course = _load_toml(course_pyproject)["project"].get("dependencies", [])
    nbgrader = [d.strip() for d in course if re.match(r"nbgrader\s*==", d.strip())]
    if not nbgrader:
        raise ExportError(f"{course_pyproject} does not pin nbgrader (nbgrader==VERSION); "
                          "the bundle installs that version")
    return [*pins, *nbgrader, *(p for p in notebook_pins() if p.split("==")[0] not in {q.split("==")[0] for q in pins})]


def _python_min(pyproject: Path) -> tuple[int, int]:
    spec = _load_toml(pyproject)["project"].get("requires-python", "")
    m = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)\s*", spec)
    if not m:
        raise ExportError(f"{pyproject}: requires-python must read '>=X.Y' for the bundle's Python check, not {spec!r}")
    return int(m.group(1)), int(m.group(2))


def bundle_findings(folder: Path) -> list[str]:
    """What in the staged bundle must not be there: reference-solution lines and markers (the
    leak guard; hidden tests belong in the bundle) and course tooling (a ``glyph_course`` or
    ``solutions`` path, a Python file importing ``glyph_course``)."""
    from .leakguard import hidden_lines, scan, secret_lines, tooling_findings

    solution_only = secret_lines() - hidden_lines()
    findings = scan(folder, solution_only, markers=("BEGIN SOLUTION", "END SOLUTION"), tooling=False)
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        findings += [f"{rel}: {what}" for what in tooling_findings(rel, path.read_bytes(), set())]
        if path.suffix in (".zip", ".whl"):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    data = archive.read(member) if member.endswith(".py") else b""
                    findings += [f"{rel}!{member}: {what}" for what in tooling_findings(member, data, set())]
    return findings


def build_gradescope_bundle(out: Path, course: Path = COURSE, wheel: Path | None = None, timeout: int = 30,
                            visibility: str = "visible", stdout_visibility: str = "hidden",
                            pyproject: Path | None = None) -> Path:
    """Write the Gradescope autograder zip to ``out``: ``setup.sh``, ``run_autograder``, the
    runner (:mod:`.gradescope_runner`), its facts ``grader.json``, the course folder (nbgrader's
    config and the graded notebook with hidden tests), the student templates, the student
    library's wheel (built here unless ``wheel`` is given) and ``requirements.txt``. The staged
    files are checked for solution lines and course tooling before the zip is written."""
    from . import notebook as nbsource
    from .kit import PYPROJECT, build_wheel
    from ..template import EXERCISE_FILES, strip_solutions

    course, pyproject = Path(course), Path(pyproject or PYPROJECT)
    source = course / "source" / ASSIGNMENT / NOTEBOOK
    for need in (course / "nbgrader_config.py", source):
        if not need.exists():
            raise ExportError(f"{course} is not the course folder: {need.relative_to(course)} is missing")
    if course.resolve() == COURSE.resolve() and nbsource.notebook_is_stale():
        raise ExportError(f"{source} is out of date with autograde/ex3_source.py; run `make template`")
    if timeout < 1:
        raise ExportError(f"the time limit per test cell must be at least 1 s, not {timeout}")
    for what, value in (("visibility", visibility), ("stdout visibility", stdout_visibility)):
        if value not in runner.VISIBILITIES:
            raise ExportError(f"the {what} must be one of {', '.join(runner.VISIBILITIES)}, not {value!r}")
    if wheel is not None and not (Path(wheel).is_file() and Path(wheel).name.endswith(".whl")):
        raise ExportError(f"{wheel} is not a wheel of the student library (a .whl file)")
    python_min = _python_min(pyproject)
    requirements = bundle_requirements(pyproject)
    _, points = runner.task_table(source)
    with tempfile.TemporaryDirectory(prefix="glyph-gradescope-") as tmp:
        stage = Path(tmp) / "bundle"
        (stage / "course" / "source" / ASSIGNMENT).mkdir(parents=True)
        (stage / "templates").mkdir()
        shutil.copy2(course / "nbgrader_config.py", stage / "course" / "nbgrader_config.py")
        shutil.copy2(source, stage / "course" / "source" / ASSIGNMENT / NOTEBOOK)
        for name in EXERCISE_FILES:
            (stage / "templates" / name).write_text(strip_solutions((SOLUTIONS / name).read_text(), name))
        names = task_names(stage / "templates")
        wheel_name = (Path(shutil.copy2(wheel, stage / Path(wheel).name)) if wheel is not None
                      else build_wheel(stage, pyproject=pyproject)).name
        shutil.copy2(Path(runner.__file__), stage / BUNDLE_RUNNER)
        (stage / runner.CONFIG).write_text(json.dumps({
            "title": TITLE, "assignment": ASSIGNMENT, "notebook": NOTEBOOK, "files": list(EXERCISE_FILES),
            "points": points, "names": names, "timeout": timeout,
            "visibility": visibility, "stdout_visibility": stdout_visibility}, indent=2) + "\n")
        (stage / "requirements.txt").write_text("\n".join([
            "# Installed by setup.sh on Gradescope (written by `glyph-course export gradescope-bundle`).",
            f"./{wheel_name}", *requirements, ""]))
        torch = [p.split("==")[0] for p in requirements if p.startswith("torch")]
        (stage / "setup.sh").write_text(SETUP_SH.substitute(
            python_min=", ".join(map(str, python_min)), python_text=".".join(map(str, python_min)),
            torch_index=TORCH_INDEX, torch_note=" and ".join(torch) or "PyTorch", runner=BUNDLE_RUNNER))
        (stage / "run_autograder").write_text(RUN_AUTOGRADER.substitute(runner=BUNDLE_RUNNER))
        (stage / "README.md").write_text(BUNDLE_README.substitute(
            title=TITLE, total=_fmt(sum(points.values())), python_text=".".join(map(str, python_min)),
            files=", ".join(f"`{n}`" for n in sorted(EXERCISE_FILES)), runner=BUNDLE_RUNNER, timeout=timeout,
            tasks="\n".join(f"| {t} | {_fmt(p)} | `{names.get(t, '')}` |" for t, p in points.items())))
        findings = bundle_findings(stage)
        if findings:
            shown = "\n  ".join(findings[:20])
            raise ExportError(f"the Gradescope bundle (not written) would contain what must stay with the "
                              f"instructor:\n  {shown}")
        with atomic_write(out, binary=True) as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(p for p in stage.rglob("*") if p.is_file()):
                    rel = path.relative_to(stage).as_posix()
                    info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    executable = rel in ("setup.sh", "run_autograder")
                    info.external_attr = ((0o100755 if executable else 0o100644) << 16)
                    archive.writestr(info, path.read_bytes())
    return Path(out)


# -- nbgrader's own export ----------------------------------------------------------------------
def nbgrader_export(course: Path, out: Path) -> Path:
    """Run ``nbgrader export`` in ``course`` (nbgrader's CSV: :data:`NBGRADER_COLUMNS`, one row
    per student and assignment of the gradebook) and write its table to ``out`` atomically."""
    course = Path(course)
    for need in ("nbgrader_config.py", "gradebook.db"):
        if not (course / need).exists():
            raise ExportError(f"{course} has no {need}: pass --course with the nbgrader course folder that graded "
                              "the submissions")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    with tempfile.TemporaryDirectory(prefix="glyph-nbgrader-export-") as tmp:
        target = Path(tmp) / "grades.csv"
        proc = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(target)], cwd=course,
                              capture_output=True, text=True,
                              env={**os.environ, "PATH": path, "PYTHONWARNINGS": "ignore"})
        if proc.returncode != 0 or not target.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
            raise ExportError(f"nbgrader export failed in {course} (exit {proc.returncode}):\n{tail}")
        return write_text(out, target.read_text())


# -- the commands -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options as one ``error:`` line (exit status 2), as every
    command of the course does."""

    def error(self, message):
        raise ExportError(f"{self.prog}: {message} (see --help)")


def _parser(command: str, description: str) -> _Parser:
    p = _Parser(prog=f"glyph-course export {command}", description=description)
    p.add_argument("--course", type=Path, default=COURSE,
                   help="the graded nbgrader course folder (default: autograde/)")
    return p


def _out(args, default: str) -> Path:
    return args.out if args.out is not None else args.course / EXPORTS / default


def _report(path: Path, warnings: list[str], what: str) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {path} ({what})")


def _canvas(argv) -> int:
    p = _parser("canvas", "write a Canvas gradebook import CSV of the graded course: the columns Student, ID, "
                          "SIS User ID, SIS Login ID, Section (from the mapping file), then 'Exercise 3 (<id>)' "
                          "with the total points, and a 'Points Possible' row")
    p.add_argument("--map", type=Path, required=True, dest="mapping",
                   help=f"CSV `submission,<columns>`: submission folder name -> Canvas's student columns "
                        f"({', '.join(CANVAS_STUDENT_COLUMNS)}; one of {', '.join(CANVAS_MATCH_COLUMNS)} filled in)")
    p.add_argument("--assignment-id", default=None,
                   help="the Canvas assignment's id (the number in its address); "
                        "without it Canvas makes a new assignment")
    p.add_argument("--name", default=TITLE, help=f"the assignment's name in Canvas (default {TITLE!r})")
    p.add_argument("--allow-unmapped", action="store_true",
                   help="leave out graded submissions without a row in the mapping (default: an error)")
    p.add_argument("--out", type=Path, default=None, help="output file (default COURSE/exports/canvas-grades.csv)")
    args = p.parse_args(argv)
    results = read_course(args.course, messages=False)
    mapping = read_mapping(args.mapping, allowed=CANVAS_STUDENT_COLUMNS, identifying=CANVAS_MATCH_COLUMNS)
    out = _out(args, "canvas-grades.csv")
    warnings = write_canvas(results, mapping, out, args.name, args.assignment_id, args.allow_unmapped)
    if args.assignment_id is None:
        warnings.append("no --assignment-id: Canvas will create a new assignment from this column")
    _report(out, warnings, "Canvas: Grades > Import")
    return 0


def _moodle(argv) -> int:
    p = _parser("moodle", "write a Moodle grade-import CSV of the graded course: the identifier columns of the "
                          "mapping file, the total points as one grade column, optionally one column per task, "
                          "and a feedback column")
    p.add_argument("--map", type=Path, required=True, dest="mapping",
                   help="CSV `submission,<identifier columns>` (e.g. submission,email): submission folder name -> "
                        "the Moodle user fields you map at import (email address, username, ID number)")
    p.add_argument("--item", default=TITLE, help=f"the grade column's name (default {TITLE!r})")
    p.add_argument("--tasks", action="store_true", help="also one grade column per task ('<item> task 3.2a', ...)")
    p.add_argument("--no-feedback", action="store_true", help=f"leave out the {MOODLE_FEEDBACK!r} column")
    p.add_argument("--allow-unmapped", action="store_true",
                   help="leave out graded submissions without a row in the mapping (default: an error)")
    p.add_argument("--out", type=Path, default=None, help="output file (default COURSE/exports/moodle-grades.csv)")
    args = p.parse_args(argv)
    results = read_course(args.course, messages=not args.no_feedback)
    mapping = read_mapping(args.mapping)
    out = _out(args, "moodle-grades.csv")
    warnings = write_moodle(results, mapping, out, args.item, args.tasks, not args.no_feedback, args.allow_unmapped)
    _report(out, warnings, "Moodle: Grades > Import > CSV file")
    return 0


def _gradescope_results(argv) -> int:
    p = _parser("gradescope-results", "write Gradescope's results.json of one graded student: the total as "
                                      "'score', one test per task (score, max_score, name, number, output = the "
                                      "task's failure messages, visibility)")
    p.add_argument("--student", default=None, help="the student (as in grades.csv); needed when there are several")
    p.add_argument("--visibility", default="visible", choices=runner.VISIBILITIES, help="of the results and each test")
    p.add_argument("--stdout-visibility", default="hidden", choices=runner.VISIBILITIES)
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default COURSE/exports/gradescope/<student>/results.json)")
    args = p.parse_args(argv)
    results = read_course(args.course)
    students = [r.student for r in results]
    if args.student is None and len(results) > 1:
        raise ExportError(f"{len(results)} students are graded; pick one with --student ({', '.join(students)})")
    wanted = students[0] if args.student is None else student_id(args.student)
    if wanted not in students:
        raise ExportError(f"no graded student {args.student!r} in {args.course / GRADES_CSV}; "
                          f"graded: {', '.join(students)}")
    result = results[students.index(wanted)]
    out = args.out if args.out is not None else args.course / EXPORTS / "gradescope" / wanted / "results.json"
    write_gradescope_results(result, out, visibility=args.visibility, stdout_visibility=args.stdout_visibility)
    _report(out, [], f"{wanted}: {_fmt(result.total)} / {_fmt(result.max)} points")
    return 0


def _gradescope_bundle(argv) -> int:
    p = _parser("gradescope-bundle", "write a Gradescope autograder zip (setup.sh, run_autograder) that grades "
                                     "a submission with the course's nbgrader checks on Gradescope; it holds the "
                                     "graded notebook with hidden tests, never the reference solutions")
    p.add_argument("--wheel", type=Path, default=None,
                   help="the student library's wheel to ship (default: built now from the repository)")
    p.add_argument("--timeout", type=int, default=30, help="time limit per test cell in seconds (default 30)")
    p.add_argument("--visibility", default="visible", choices=runner.VISIBILITIES, help="of the results and each test")
    p.add_argument("--stdout-visibility", default="hidden", choices=runner.VISIBILITIES,
                   help="of the autograder's log (default hidden: it is for instructors)")
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default COURSE/exports/gradescope-autograder.zip)")
    args = p.parse_args(argv)
    out = _out(args, "gradescope-autograder.zip")
    build_gradescope_bundle(out, args.course, wheel=args.wheel, timeout=args.timeout, visibility=args.visibility,
                            stdout_visibility=args.stdout_visibility)
    with zipfile.ZipFile(out) as archive:
        members = archive.namelist()
    _report(out, [], f"Gradescope autograder, {len(members)} files; upload it under Configure Autograder")
    return 0


def _nbgrader_cmd(argv) -> int:
    p = _parser("nbgrader", "run nbgrader's own `nbgrader export` in the course folder: one row per student "
                            f"and assignment with the columns {', '.join(NBGRADER_COLUMNS)}")
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default COURSE/exports/nbgrader-grades.csv; the course's own grades.csv "
                        "is the grader's table and stays as it is)")
    args = p.parse_args(argv)
    out = nbgrader_export(args.course, _out(args, "nbgrader-grades.csv"))
    _report(out, [], "nbgrader export")
    return 0


COMMANDS = {"canvas": _canvas, "moodle": _moodle, "gradescope-results": _gradescope_results,
            "gradescope-bundle": _gradescope_bundle, "nbgrader": _nbgrader_cmd}
USAGE = """usage: glyph-course export {canvas,moodle,gradescope-results,gradescope-bundle,nbgrader} [options]
  canvas              Canvas gradebook import CSV (needs --map: submission -> Canvas student columns)
  moodle              Moodle grade-import CSV (needs --map: submission -> email/username/ID number)
  gradescope-results  Gradescope's results.json of one graded student
  gradescope-bundle   Gradescope autograder zip that runs the same checks on Gradescope
  nbgrader            nbgrader's own `nbgrader export` of the course's gradebook
Each reads the graded course folder (--course, default autograde/) and writes to COURSE/exports/
unless --out says otherwise; COMMAND --help lists its options."""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"error: unknown export {argv[0]!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return run_command(lambda: COMMANDS[argv[0]](argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
