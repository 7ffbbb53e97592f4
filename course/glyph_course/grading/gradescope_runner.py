"""The Gradescope side of grading: what ``run_autograder`` runs in Gradescope's container.

This file travels verbatim into the Gradescope autograder bundle as ``glyph_grader.py``
(:func:`glyph_course.grading.exports.build_gradescope_bundle`). It therefore imports nothing
of the course tooling: only the standard library, the student library ``glyph_ebm`` (installed
from its wheel in the bundle) and, while grading, nbgrader. The course tooling imports from it
what both sides share, so that it is written once: the ``results.json`` document
(:func:`results_json`), the task table of the graded notebook (:func:`task_table`), the
failure messages of a graded notebook (:func:`failure_messages`) and the scores in a gradebook
(:func:`read_scores`).

It does what ``glyph-course grade FOLDER --json`` does, on one submission:

1. ``--prepare`` (``setup.sh``, once per image): ``nbgrader generate_assignment ex3`` in the
   bundle's course folder (the graded notebook with its hidden tests; the gradebook learns the
   test cells and their checksums), then the student templates join the release;
2. per submission: a fresh copy of that course folder; the student's ``ex3_*.py`` files from
   ``/autograder/submission`` (an ``ex3/`` folder, the files directly, or deeper), the template
   for a missing file, and always the course's notebook (edits of a handed-in notebook are
   reported, as the course's grader does); ``nbgrader autograde``; the scores from the
   gradebook and the failure messages from the graded notebook;
3. ``/autograder/results/results.json`` in Gradescope's format, one test per task.

Format followed: Gradescope's "Autograder Specifications"
(https://gradescope-autograders.readthedocs.io/en/latest/specs/): the zip holds ``setup.sh``
and ``run_autograder`` at its root and is unpacked to ``/autograder/source``; the submission
is in ``/autograder/submission``; the results go to ``/autograder/results/results.json`` with
the top-level keys ``score``, ``execution_time`` (seconds), ``output``, ``visibility``,
``stdout_visibility`` and ``tests``, each test ``{score, max_score, name, number, output,
visibility}``; visibility is one of ``hidden``, ``after_due_date``, ``after_published``,
``visible``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ASSIGNMENT = "ex3"
NOTEBOOK = "ex3.ipynb"
STUDENT = "student"                     # the gradebook id of the one submission graded here
CONFIG = "grader.json"                  # the bundle's facts (written by the course tooling)
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
TOP_LEVEL_KEYS = ("score", "execution_time", "output", "visibility", "stdout_visibility", "tests")
TEST_KEYS = ("score", "max_score", "name", "number", "output", "visibility")
AUTOGRADER = Path("/autograder")


def num(x):
    """``3`` for 3.0, else the value rounded to 3 decimals (as the course's grade table has it)."""
    return int(x) if float(x).is_integer() else round(float(x), 3)


# -- what both sides share --------------------------------------------------------------------
def task_table(notebook: Path) -> tuple[dict[str, str], dict[str, float]]:
    """``({grade cell id: task}, {task: points})`` of the graded source notebook."""
    nb = json.loads(Path(notebook).read_text())
    cell_tasks = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["glyph_ebm_task"]
                  for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")}
    return cell_tasks, {t: float(p) for t, p in nb["metadata"]["glyph_ebm"]["tasks"].items()}


def failure_messages(graded: Path, cell_tasks: dict[str, str], timeout: int) -> dict[str, list[str]]:
    """The failure message of every failed test cell of a graded notebook, per task."""
    nb = json.loads(Path(graded).read_text())
    out: dict[str, list[str]] = {}
    for cell in nb["cells"]:
        task_id = cell_tasks.get(cell["metadata"].get("nbgrader", {}).get("grade_id"))
        if task_id is None:
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            if output.get("ename") in ("CellTimeoutError", "KeyboardInterrupt"):
                text = (f"stopped after the time limit of {timeout} s per test cell: "
                        "look for an infinite loop or a very long computation")
            else:
                text = re.sub(r"^Exercise \S+: ", "", output.get("evalue", "")) or output.get("ename", "error")
            if text not in out.setdefault(task_id, []):
                out[task_id].append(text)
            break
    return out


def read_scores(gradebook: Path, student: str, cell_tasks: dict[str, str]) -> dict[str, float] | None:
    """``{task: points}`` of ``student`` in an nbgrader gradebook (``None``: not graded)."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{Path(gradebook).resolve()}") as gb:
        warnings.simplefilter("ignore")      # SQLAlchemy's notes on nbgrader's lazy loading
        try:
            notebook = gb.find_submission_notebook(NOTEBOOK[:-6], ASSIGNMENT, student)
        except MissingEntry:
            return None
        got: dict[str, float] = {}
        for grade in notebook.grades:
            task_id = cell_tasks.get(grade.name)
            if task_id is not None:
                got[task_id] = got.get(task_id, 0.0) + float(grade.score or 0.0)
        return got


def results_json(tasks: dict[str, list[float]], messages: dict[str, list[str]] | None = None,
                 notes=(), names: dict[str, str] | None = None, title: str = "Exercise 3",
                 visibility: str = "visible", stdout_visibility: str = "hidden",
                 execution_time: float | None = None) -> dict:
    """Gradescope's ``results.json`` of one submission: one test per task (``tasks[task] =
    [points, max_points]``), its failure messages as the test's output; the total as the
    top-level score, the notes in the top-level output."""
    for what, value in (("visibility", visibility), ("stdout_visibility", stdout_visibility)):
        if value not in VISIBILITIES:
            raise ValueError(f"{what} must be one of {', '.join(VISIBILITIES)}, not {value!r}")
    messages, names = messages or {}, names or {}
    tests = []
    for task_id, (got, top) in tasks.items():
        lines = list(messages.get(task_id, []))
        if not lines:
            lines = ["all checks passed"] if got >= top else [f"{num(got)} of {num(top)} points"]
        tests.append({"score": num(got), "max_score": num(top), "name": names.get(task_id, f"task {task_id}"),
                      "number": task_id, "output": "\n".join(lines), "visibility": visibility})
    total, top = sum(g for g, _ in tasks.values()), sum(m for _, m in tasks.values())
    doc = {"score": num(total)}
    if execution_time is not None:
        doc["execution_time"] = int(round(execution_time))
    doc.update({"output": "\n".join([f"{title}: {num(total)} / {num(top)} points", *notes]),
                "visibility": visibility, "stdout_visibility": stdout_visibility, "tests": tests})
    return doc


# -- grading one submission -------------------------------------------------------------------
def _nbgrader(course: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``nbgrader ARGS`` in ``course``; its output goes to our stdout (Gradescope keeps it for
    the instructor)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                          env={**os.environ, "PATH": path, "PYTHONWARNINGS": "ignore", **(env or {})})
    print(f"$ nbgrader {' '.join(args)}  (exit {proc.returncode})\n{proc.stdout}{proc.stderr}", flush=True)
    return proc


def prepare(course: Path, templates: Path, files: list[str]) -> Path:
    """Release the assignment in ``course`` (once) and add the templates; returns the release."""
    released = course / "release" / ASSIGNMENT
    if not ((course / "gradebook.db").exists() and (released / NOTEBOOK).exists()):
        proc = _nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
        if proc.returncode != 0 or not (released / NOTEBOOK).exists():
            raise RuntimeError(f"nbgrader generate_assignment failed in {course} (its output is above)")
    for name in files:
        shutil.copy2(templates / name, released / name)
    return released


def code_folder(student_dir: Path, files: list[str]) -> Path | None:
    """Where the exercise files are: ``ex3/``, the folder itself, or the shallowest deeper one."""
    for candidate in (student_dir / ASSIGNMENT, student_dir):
        if any((candidate / name).exists() for name in files):
            return candidate
    deeper = sorted({p.parent for p in student_dir.rglob("ex3_*.py")}, key=lambda p: (len(p.parts), str(p)))
    return deeper[0] if deeper else None


def notebook_changes(submitted: Path, released: Path) -> list[str]:
    """Cells of a handed-in notebook that differ from the released one (nbgrader checksums)."""
    import nbformat
    from nbgrader.utils import compute_checksum

    try:
        handed_in = nbformat.read(str(submitted), as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is reported the same way
        return [f"{NOTEBOOK} could not be read ({type(exc).__name__}); graded with the course's copy"]
    theirs = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in handed_in.cells}
    changes = []
    for cell in nbformat.read(str(released), as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        kind = "test cell" if meta.get("grade") else "cell"
        mine = theirs.get(meta.get("grade_id"))
        if mine is None:
            changes.append(f"{kind} {meta.get('grade_id')} was deleted from {NOTEBOOK} (the original was used)")
            continue
        try:
            edited = compute_checksum(mine) != meta.get("checksum")
        except (KeyError, AttributeError):
            edited = True
        if edited:
            changes.append(f"{kind} {meta.get('grade_id')} was edited in {NOTEBOOK} (the original was used)")
    return changes


def stage(student_dir: Path, target: Path, released: Path, files: list[str]) -> list[str]:
    """Copy the submission to nbgrader's ``submitted`` folder ``target``; returns notes."""
    notes = []
    folder = code_folder(student_dir, files)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if folder is None:
        notes.append("no ex3_*.py files were found in the submission")
    else:
        for path in folder.glob("*.py"):
            shutil.copy2(path, target / path.name)
    for name in files:
        if not (target / name).exists():
            shutil.copy2(released / name, target / name)
            if folder is not None:
                notes.append(f"{name} is missing from the submission (graded with the unchanged template)")
    handed_in = [p for p in ((folder or student_dir) / NOTEBOOK, student_dir / NOTEBOOK) if p.exists()]
    if handed_in:
        notes += notebook_changes(handed_in[0], released / NOTEBOOK)
    shutil.copy2(released / NOTEBOOK, target / NOTEBOOK)
    return notes


def grade(submission: Path, source: Path, work: Path, timeout: int, config: dict) -> dict:
    """Grade ``submission`` with the bundle in ``source`` (course folder copied to ``work``);
    returns ``{"tasks", "messages", "notes"}`` as :class:`~.autograde.StudentResult` has them."""
    course = work / "course"
    shutil.copytree(source / "course", course)
    released = prepare(course, source / "templates", config["files"])
    notes = stage(Path(submission), course / "submitted" / STUDENT / ASSIGNMENT, released, config["files"])
    env = {"GLYPH_EBM_CELL_TIMEOUT": str(timeout)}
    _nbgrader(course, "autograde", ASSIGNMENT, "--force", env=env)
    cell_tasks, points = task_table(course / "source" / ASSIGNMENT / NOTEBOOK)
    tasks = {t: [0.0, p] for t, p in points.items()}
    messages: dict[str, list[str]] = {}
    scores = read_scores(course / "gradebook.db", STUDENT, cell_tasks)
    graded = course / "autograded" / STUDENT / ASSIGNMENT / NOTEBOOK
    if scores is None or not graded.exists():
        notes.append("nbgrader could not grade this submission (the autograder's log has the details)")
    else:
        for task_id, got in scores.items():
            tasks[task_id][0] = got
        messages = failure_messages(graded, cell_tasks, timeout)
    return {"tasks": tasks, "messages": messages, "notes": notes}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="run_autograder",
                                description="grade one exercise-3 submission with nbgrader and write Gradescope's "
                                            "results.json (the course's glyph-course grade, on Gradescope)")
    p.add_argument("--source", type=Path, default=Path(__file__).resolve().parent,
                   help="the unpacked autograder bundle (default: this file's folder, /autograder/source)")
    p.add_argument("--submission", type=Path, default=AUTOGRADER / "submission", help="the student's files")
    p.add_argument("--results", type=Path, default=AUTOGRADER / "results" / "results.json",
                   help="where results.json goes")
    p.add_argument("--timeout", type=int, default=None, help="time limit per test cell in seconds")
    p.add_argument("--prepare", action="store_true", help="only release the assignment in the bundle's course "
                                                          "folder (setup.sh runs this once)")
    p.add_argument("--json", action="store_true", help="also print the scores as JSON on the last line, "
                                                       "as `glyph-course grade --json` does")
    args = p.parse_args(argv)
    config = json.loads((args.source / CONFIG).read_text())
    if args.prepare:
        prepare(args.source / "course", args.source / "templates", config["files"])
        print(f"released {ASSIGNMENT} in {args.source / 'course'}")
        return 0
    if not args.submission.is_dir():
        print(f"error: the submission folder {args.submission} does not exist", file=sys.stderr)
        return 2
    timeout = int(args.timeout or os.environ.get("GLYPH_EBM_CELL_TIMEOUT") or config.get("timeout", 30))
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="glyph-grader-") as work:
        result = grade(args.submission, args.source, Path(work), timeout, config)
    doc = results_json(result["tasks"], result["messages"], result["notes"], names=config.get("names"),
                       title=config.get("title", "Exercise 3"), visibility=config.get("visibility", "visible"),
                       stdout_visibility=config.get("stdout_visibility", "hidden"),
                       execution_time=time.monotonic() - start)
    from glyph_ebm.files import write_json

    write_json(args.results, doc)
    print(doc["output"])
    for test in doc["tests"]:
        print(f"  {test['number']:<7} {test['score']:>4} / {test['max_score']}  {test['output']}")
    if args.json:
        top = sum(m for _, m in result["tasks"].values())
        print(json.dumps({"total": doc["score"], "max": num(top),
                          "tasks": {t: [num(g), num(m)] for t, (g, m) in result["tasks"].items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
