"""The instructor's side of grading: release, autograde a folder of submissions, report.

Everything runs through the real nbgrader command line in a course folder (``autograde/`` by
default; a temporary copy for ``glyph-course grade`` and the tests):

1. :func:`release` - ``nbgrader generate_assignment ex3`` (hidden tests removed from the
   notebook, the gradebook learns the test cells and their checksums), then the student
   templates ``ex3_*.py`` generated from ``solutions/`` are added (nbgrader copies ``.py``
   files verbatim, it cannot strip them), then the leak guard checks the release; ``make
   release`` also builds the student kit from it (:mod:`.kit`: templates, notebook, the
   student library's wheel, pinned requirements, README; a folder and a zip), leak-checked
   file by file, inside the wheel and the zip too.
2. :func:`autograde` - each ``SUBMISSIONS/<student>/`` (their ``ex3/`` folder, or the files
   directly, with or without the notebook) is staged into ``submitted/<student>/ex3/``: the
   student's ``.py`` files, the template for a missing file, and always the released notebook
   (students write no answers in it; edits or deletions of its cells are detected with
   nbgrader's checksums and reported). Then ``nbgrader autograde`` and
   ``nbgrader generate_feedback`` run once for the whole batch; a student whose kernel dies
   costs nobody else anything. Scores come from the gradebook, messages from the graded
   notebooks; ``grades.csv`` and one feedback HTML per student are written, and the leak guard
   checks the feedback.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import COURSE, SOLUTIONS
from ..template import EXERCISE_FILES, strip_solutions
from glyph_ebm.errors import GlyphEBMError
from glyph_ebm.files import atomic_write
from . import kit
from . import notebook as nbsource
from .leakguard import HIDDEN_MARKERS, assert_clean, secret_lines

ASSIGNMENT = "ex3"
NOTEBOOK = "ex3.ipynb"


class GradingError(GlyphEBMError):
    """nbgrader could not do its part (message names the step and the log)."""


@dataclass
class StudentResult:
    """Scores and messages of one student: ``tasks[task] = [points, max_points]``."""

    student: str
    tasks: dict[str, list[float]]
    messages: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    feedback: Path | None = None

    @property
    def total(self) -> float:
        return sum(got for got, _ in self.tasks.values())

    @property
    def max(self) -> float:
        return sum(top for _, top in self.tasks.values())

    def to_json(self) -> dict:
        return {"total": _num(self.total), "max": _num(self.max),
                "tasks": {t: [_num(g), _num(m)] for t, (g, m) in self.tasks.items()}}

    def report(self) -> str:
        """A few lines a student (or instructor) can read."""
        lines = [f"{self.student}: {_num(self.total)} / {_num(self.max)} points"]
        for task_id, (got, top) in self.tasks.items():
            lines.append(f"  {task_id:<7} {_num(got):>4} / {_num(top)}")
            for message in self.messages.get(task_id, []):
                lines.append(f"          - {message}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _num(x: float):
    return int(x) if float(x).is_integer() else round(float(x), 3)


# -- course folders ---------------------------------------------------------------------------
def make_course(folder: Path) -> Path:
    """A fresh course folder at ``folder`` with our nbgrader config and source notebook."""
    folder = Path(folder)
    if not (COURSE / "source" / ASSIGNMENT / NOTEBOOK).exists():
        raise GradingError(f"the course folder {COURSE} (graded notebook with hidden tests) is not here: "
                           "grading needs the instructor's copy of the glyph-ebm repository")
    (folder / "source" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    shutil.copy2(COURSE / "nbgrader_config.py", folder / "nbgrader_config.py")
    shutil.copy2(COURSE / "source" / ASSIGNMENT / NOTEBOOK, folder / "source" / ASSIGNMENT / NOTEBOOK)
    return folder


def _nbgrader(course: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` in ``course``; its output is appended to ``course/nbgrader.log``."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    # nbgrader starts helpers (alembic, the kernel) by name: find them next to this Python first
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(cmd, cwd=course, capture_output=True, text=True,
                          env={**os.environ, "PATH": path, "PYTHONWARNINGS": "ignore", **(env or {})})
    with open(course / "nbgrader.log", "a") as log:
        log.write(f"$ nbgrader {' '.join(args)}  (exit {proc.returncode})\n{proc.stdout}{proc.stderr}\n")
    return proc


def _tail(text: str, n: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def release(course: Path = COURSE, library: Path = kit.LIBRARY, with_kit: bool = True) -> Path:
    """Build ``course/release/ex3`` for students and check it for leaks; returns its path.

    ``with_kit``: also build the student kit from it and the student library's package folder
    ``library`` (:func:`.kit.build_kit`): ``course/kit/ex3/`` and ``course/kit/ex3-kit.zip``,
    leak-checked as a whole (a :class:`~.leakguard.LeakError` lists what leaks; nothing is
    written then). Grading needs only the release, not the kit."""
    course = Path(course)
    if not (course / "nbgrader_config.py").exists():
        make_course(course)
    if course.resolve() == COURSE.resolve() and nbsource.notebook_is_stale():
        raise GradingError("autograde/source/ex3/ex3.ipynb is out of date with autograde/ex3_source.py; "
                           "run `make template`")
    proc = _nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    target = course / "release" / ASSIGNMENT
    if proc.returncode != 0 or not (target / NOTEBOOK).exists():
        raise GradingError(f"nbgrader generate_assignment failed (see {course / 'nbgrader.log'}):\n"
                           f"{_tail(proc.stdout + proc.stderr)}")
    for name in EXERCISE_FILES:
        (target / name).write_text(strip_solutions((SOLUTIONS / name).read_text(), name))
    assert_clean(target, "the student release")
    if with_kit:
        kit.build_kit(target, course / "kit", library=library)
    return target


# -- staging submissions ----------------------------------------------------------------------
def _code_folder(student_dir: Path) -> Path | None:
    """Where the student's exercise files are: ``ex3/``, the folder itself, or deeper."""
    for candidate in (student_dir / "ex3", student_dir):
        if any((candidate / name).exists() for name in EXERCISE_FILES):
            return candidate
    deeper = sorted({p.parent for p in student_dir.rglob("ex3_*.py")}, key=lambda p: (len(p.parts), str(p)))
    return deeper[0] if deeper else None


def notebook_changes(submitted: Path, released: Path) -> list[str]:
    """Cells of the handed-in notebook that differ from the released one (nbgrader checksums)."""
    import nbformat
    from nbgrader.utils import compute_checksum

    try:
        handed_in = nbformat.read(str(submitted), as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is reported the same way
        return [f"{NOTEBOOK} could not be read ({type(exc).__name__}); graded with the course's copy"]
    original = nbformat.read(str(released), as_version=4)
    theirs = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in handed_in.cells}
    changes = []
    for cell in original.cells:
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


def stage_submission(student_dir: Path, target: Path, released: Path) -> list[str]:
    """Copy one student's files to ``target`` (nbgrader's submitted folder); returns notes."""
    notes = []
    folder = _code_folder(student_dir)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if folder is None:
        notes.append("no ex3_*.py files were found in the submission")
    else:
        for path in folder.glob("*.py"):
            shutil.copy2(path, target / path.name)
    for name in EXERCISE_FILES:
        if not (target / name).exists():
            shutil.copy2(released / name, target / name)
            if folder is not None:
                notes.append(f"{name} is missing from the submission (graded with the unchanged template)")
    handed_in = [p for p in ((folder or student_dir) / NOTEBOOK, student_dir / NOTEBOOK) if p.exists()]
    if handed_in:
        notes += notebook_changes(handed_in[0], released / NOTEBOOK)
    shutil.copy2(released / NOTEBOOK, target / NOTEBOOK)
    return notes


def student_id(name: str) -> str:
    """A gradebook-safe id for a submission folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "student"


# -- grading ----------------------------------------------------------------------------------
def _task_table(notebook: Path) -> tuple[dict[str, str], dict[str, float]]:
    """``({grade cell id: task}, {task: points})`` of the source notebook."""
    nb = json.loads(notebook.read_text())
    cell_tasks = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["glyph_ebm_task"]
                  for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")}
    return cell_tasks, nb["metadata"]["glyph_ebm"]["tasks"]


def _messages(graded: Path, cell_tasks: dict[str, str], timeout: int) -> dict[str, list[str]]:
    """Failure message of every failed test cell of a graded notebook, per task."""
    nb = json.loads(graded.read_text())
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


def _read_scores(course: Path, sid: str, cell_tasks: dict[str, str]) -> dict[str, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            notebook = gb.find_submission_notebook(NOTEBOOK[:-6], ASSIGNMENT, sid)
        except MissingEntry:
            return None
        got: dict[str, float] = {}
        for grade in notebook.grades:
            task_id = cell_tasks.get(grade.name)
            if task_id is not None:
                got[task_id] = got.get(task_id, 0.0) + float(grade.score or 0.0)
        return got


def autograde(submissions: Path, course: Path = COURSE, timeout: int | None = None,
              feedback: bool = True, progress=print) -> list[StudentResult]:
    """Grade every ``submissions/<student>/``; writes ``course/grades.csv`` and feedback."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise GlyphEBMError(f"submissions folder {submissions} does not exist; pass SUBMISSIONS=DIR "
                            "with one sub-folder per student")
    student_dirs = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not student_dirs:
        raise GlyphEBMError(f"{submissions} has no student folders; expected {submissions}/<student>/ex3/ex3_*.py")
    ids = [student_id(p.name) for p in student_dirs]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise GlyphEBMError(f"student folders map to the same id {clashes}; rename them")
    course = Path(course)
    timeout = int(timeout or os.environ.get("GLYPH_EBM_CELL_TIMEOUT", 30))
    progress(f"releasing {ASSIGNMENT} in {course} ...")
    released = release(course, with_kit=False)
    notes = {}
    for sid, folder in zip(ids, student_dirs):
        for sub in ("submitted", "autograded", "feedback"):
            shutil.rmtree(course / sub / sid, ignore_errors=True)
        notes[sid] = stage_submission(folder, course / "submitted" / sid / ASSIGNMENT, released)
    progress(f"autograding {len(ids)} submission(s) with nbgrader (time limit {timeout} s per test cell) ...")
    env = {"GLYPH_EBM_CELL_TIMEOUT": str(timeout)}
    # students of earlier batches stay in the course folder; grade only this batch
    earlier = sorted(p.name for p in (course / "submitted").iterdir() if p.is_dir() and p.name not in ids)
    only_batch = [f"--CourseDirectory.student_id_exclude={','.join(earlier)}"] if earlier else []
    proc = _nbgrader(course, "autograde", ASSIGNMENT, "--force", *only_batch, env=env)
    if proc.returncode != 0:
        progress(f"nbgrader reported problems for some submissions (details in {course / 'nbgrader.log'})")
    if feedback:
        _nbgrader(course, "generate_feedback", ASSIGNMENT, "--force", *only_batch, env=env)
    cell_tasks, points = _task_table(course / "source" / ASSIGNMENT / NOTEBOOK)
    results = []
    for sid in ids:
        scores = _read_scores(course, sid, cell_tasks)
        graded = course / "autograded" / sid / ASSIGNMENT / NOTEBOOK
        result = StudentResult(sid, {t: [0.0, float(p)] for t, p in points.items()}, notes=notes[sid])
        if scores is None or not graded.exists():
            result.notes.append(f"nbgrader could not grade this submission (see {course / 'nbgrader.log'})")
        else:
            for task_id, got in scores.items():
                result.tasks[task_id][0] = got
            result.messages = _messages(graded, cell_tasks, timeout)
        html = course / "feedback" / sid / ASSIGNMENT / "ex3.html"
        result.feedback = html if html.exists() else None
        results.append(result)
    write_grades(results, course / "grades.csv")
    if feedback and (course / "feedback").exists():
        assert_clean(course / "feedback", "the feedback for students", secret_lines(hidden_only=True),
                     suffixes=(".html",), markers=HIDDEN_MARKERS)
    return results


def write_grades(results: list[StudentResult], path: Path) -> Path:
    """``student, total, max, <task>...`` and notes, one row per student (written atomically)."""
    tasks = list(results[0].tasks) if results else []
    with atomic_write(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "total", "max", *tasks, "notes"])
        for r in results:
            writer.writerow([r.student, _num(r.total), _num(r.max), *(_num(r.tasks[t][0]) for t in tasks),
                             " | ".join(r.notes)])
    return path


def summary(results: list[StudentResult]) -> str:
    """A table of all students, one line each."""
    if not results:
        return "no submissions"
    tasks = list(results[0].tasks)
    width = max(len("student"), *(len(r.student) for r in results))
    head = f"{'student':<{width}}  {'total':>9}  " + "  ".join(f"{t:>6}" for t in tasks)
    rows = [head, "-" * len(head)]
    for r in results:
        cells = "  ".join(f"{_num(r.tasks[t][0]):>6}" for t in tasks)
        flag = "  (see notes)" if r.notes else ""
        rows.append(f"{r.student:<{width}}  {_num(r.total):>4}/{_num(r.max):<4}  {cells}{flag}")
    return "\n".join(rows)


def grade_folder(path: Path, timeout: int | None = None, feedback_to: Path | None = None) -> StudentResult:
    """Grade one student folder in a temporary course (same pipeline as :func:`autograde`)."""
    path = Path(path)
    if not path.is_dir():
        raise GlyphEBMError(f"{path} is not a folder; pass the folder with your ex3_*.py files")
    with tempfile.TemporaryDirectory(prefix="glyph-ebm-grade-") as tmp:
        tmp = Path(tmp)
        course = make_course(tmp / "course")
        shutil.copytree(path, tmp / "submissions" / student_id(path.resolve().name),
                        ignore=shutil.ignore_patterns("__pycache__", "*.ckpt", "runs", ".ipynb_checkpoints"))
        result = autograde(tmp / "submissions", course, timeout=timeout, progress=lambda *_: None)[0]
        if feedback_to is not None and result.feedback is not None:
            Path(feedback_to).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(result.feedback, feedback_to)
            result.feedback = Path(feedback_to)
        else:
            result.feedback = None
        return result
