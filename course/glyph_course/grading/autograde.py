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
from glyph_ebm.files import atomic_write, write_json
from . import kit
from . import gradescope_runner as runner
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
        return {"total": runner.num(self.total), "max": runner.num(self.max),
                "tasks": {t: [runner.num(g), runner.num(m)] for t, (g, m) in self.tasks.items()}}

    def report(self) -> str:
        """A few lines a student (or instructor) can read."""
        lines = [f"{self.student}: {runner.num(self.total)} / {runner.num(self.max)} points"]
        for task_id, (got, top) in self.tasks.items():
            lines.append(f"  {task_id:<7} {runner.num(got):>4} / {runner.num(top)}")
            for message in self.messages.get(task_id, []):
                lines.append(f"          - {message}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


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
def student_id(name: str) -> str:
    """A gradebook-safe id for a submission folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "student"


def stage_submission(student_dir: Path, target: Path, released: Path) -> list[str]:
    """Copy one student's files to ``target`` (nbgrader's submitted folder); returns notes
    (:func:`.gradescope_runner.stage`, which the Gradescope bundle runs too)."""
    return runner.stage(student_dir, target, released, list(EXERCISE_FILES))


# -- grading ----------------------------------------------------------------------------------
def _record_in_gradebook(course: Path, sid: str, scores: dict[str, float]) -> None:
    """Write one student's points into the course's gradebook (the instructor's process only),
    replacing an earlier submission of the same student, so that ``nbgrader export`` and
    formgrader see them."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_student(sid)
        try:
            gb.remove_submission(ASSIGNMENT, sid)
        except MissingEntry:
            pass
        gb.add_submission(ASSIGNMENT, sid)
        for cell, points in scores.items():
            try:
                grade = gb.find_grade(cell, NOTEBOOK[:-6], ASSIGNMENT, sid)
            except MissingEntry:
                continue
            grade.auto_score = points
        gb.db.commit()


def _task_points(scores: dict[str, float], cell_tasks: dict[str, str]) -> dict[str, float]:
    got: dict[str, float] = {}
    for cell, points in scores.items():
        if cell in cell_tasks:
            got[cell_tasks[cell]] = got.get(cell_tasks[cell], 0.0) + points
    return got


def _assignment_gradebook(course: Path) -> bytes:
    """A gradebook that knows the assignment and no student (what every grading job starts
    from): a copy of the course's gradebook, just released, without its students."""
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory(prefix="glyph-ebm-seed-") as tmp:
        seed = Path(tmp) / "gradebook.db"
        shutil.copy2(course / "gradebook.db", seed)
        with Gradebook(f"sqlite:///{seed}") as gb:
            for student in [s.id for s in gb.students]:
                gb.remove_student(student)
        return seed.read_bytes()


def autograde(submissions: Path, course: Path = COURSE, timeout: int | None = None,
              feedback: bool = True, progress=print, jobs: int = 1, executor=None,
              contained: bool | None = None, progress_bar: bool = False) -> list[StudentResult]:
    """Grade every ``submissions/<student>/``; writes ``course/grades.csv``, the graded notebooks,
    the feedback and the gradebook.

    Each submission is graded in its own folder and kernel (:mod:`.batch`), ``jobs`` at a time
    (or by ``executor``, e.g. a ``dask.distributed`` client's), with the kernel in the grading
    sandbox when ``contained`` (default: where the machine allows full containment,
    :func:`.sandbox.level`). Finished submissions are recorded one by one in
    ``course/results/<student>.json``; a rerun grades only the submissions that are new or
    changed (or whose notebook, configuration or time limit changed). The grades do not depend
    on ``jobs``.
    """
    from . import batch, sandbox

    submissions = Path(submissions)
    if not submissions.is_dir():
        raise GlyphEBMError(f"submissions folder {submissions} does not exist; pass SUBMISSIONS=DIR "
                            "with one sub-folder per student")
    student_dirs = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not student_dirs:
        raise GlyphEBMError(f"{submissions} has no student folders; expected {submissions}/<student>/ex3/ex3_*.py")
    if int(jobs) < 1:
        raise GlyphEBMError(f"--jobs must be at least 1, got {jobs}")
    ids = [student_id(p.name) for p in student_dirs]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise GlyphEBMError(f"student folders map to the same id {clashes}; rename them")
    course = Path(course)
    timeout = int(timeout or os.environ.get("GLYPH_EBM_CELL_TIMEOUT", 30))
    contained = sandbox.level() == "namespaces" if contained is None else bool(contained)
    progress(f"releasing {ASSIGNMENT} in {course} ...")
    released = release(course, with_kit=False)
    cell_tasks, points = runner.task_table(course / "source" / ASSIGNMENT / NOTEBOOK)
    source_notebook = (course / "source" / ASSIGNMENT / NOTEBOOK).read_bytes()
    config = (course / "nbgrader_config.py").read_text()
    notes, todo, record = {}, [], course / "results"
    record.mkdir(exist_ok=True)
    seed = None
    for sid, folder in zip(ids, student_dirs):
        staged = course / "submitted" / sid / ASSIGNMENT
        notes[sid] = stage_submission(folder, staged, released)
        files = {p.name: p.read_bytes() for p in sorted(staged.iterdir()) if p.is_file()}
        job = batch.GradingJob(sid, files, source_notebook, config, b"", timeout, feedback, contained,
                               hide=[str(course.resolve()), str(submissions.resolve())])
        kept = record / f"{sid}.json"
        if kept.exists() and (course / "autograded" / sid / ASSIGNMENT / NOTEBOOK).exists():
            if json.loads(kept.read_text()).get("digest") == job.digest():
                continue                            # graded before, nothing changed
        for sub in ("autograded", "feedback"):
            shutil.rmtree(course / sub / sid, ignore_errors=True)
        kept.unlink(missing_ok=True)
        if seed is None:
            seed = _assignment_gradebook(course)
        job.gradebook = seed
        todo.append(job)
    again = len(ids) - len(todo)
    progress(f"autograding {len(todo)} submission(s) with nbgrader, {jobs if executor is None else 'scheduler'} "
             f"at a time (time limit {timeout} s per test cell; kernels {'contained' if contained else 'not contained'})"
             + (f"; {again} unchanged, kept from before" if again else "") + " ...")

    def done(result: dict) -> None:
        sid = result["student"]
        with open(course / "nbgrader.log", "a") as log:
            log.write(f"== {sid} ({result['seconds']:.1f} s)\n{result['log']}\n")
        if result["graded"] is not None:
            graded = course / "autograded" / sid / ASSIGNMENT / NOTEBOOK
            graded.parent.mkdir(parents=True, exist_ok=True)
            graded.write_bytes(result["graded"])
        if result["feedback"] is not None:
            page = course / "feedback" / sid / ASSIGNMENT / "ex3.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_bytes(result["feedback"])
        if result["scores"] is not None and result["graded"] is not None:
            _record_in_gradebook(course, sid, result["scores"])
        write_json(record / f"{sid}.json", {"digest": result["digest"], "scores": result["scores"],
                                            "seconds": round(result["seconds"], 2)})

    batch.run_jobs(todo, done, workers=jobs, executor=executor, progress=progress_bar)
    results = []
    for sid in ids:
        kept = json.loads((record / f"{sid}.json").read_text())
        graded = course / "autograded" / sid / ASSIGNMENT / NOTEBOOK
        result = StudentResult(sid, {t: [0.0, float(p)] for t, p in points.items()}, notes=notes[sid])
        if kept["scores"] is None or not graded.exists():
            result.notes.append(f"nbgrader could not grade this submission (see {course / 'nbgrader.log'})")
        else:
            for task_id, got in _task_points(kept["scores"], cell_tasks).items():
                result.tasks[task_id][0] = got
            result.messages = runner.failure_messages(graded, cell_tasks, timeout)
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
            writer.writerow([r.student, runner.num(r.total), runner.num(r.max), *(runner.num(r.tasks[t][0]) for t in tasks),
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
        cells = "  ".join(f"{runner.num(r.tasks[t][0]):>6}" for t in tasks)
        flag = "  (see notes)" if r.notes else ""
        rows.append(f"{r.student:<{width}}  {runner.num(r.total):>4}/{runner.num(r.max):<4}  {cells}{flag}")
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
