"""Grading a batch: each submission in its own folder and kernel, in parallel, resumable.

:func:`grade_job` grades one submission from plain data (its files as bytes, the course's graded
notebook, the nbgrader configuration and a gradebook that knows the assignment) in a private
nbgrader course folder of its own, with the kernel in the grading sandbox
(:mod:`.sandbox`), and returns plain data: the points of every test cell, the graded notebook
and the feedback page. Nothing it does touches the course folder, so any number of jobs can run
at once, on this machine or another.

:func:`run_jobs` hands the jobs to a ``concurrent.futures`` executor (a thread pool of ``jobs``
workers by default; a ``dask.distributed`` client's executor spreads them over machines), shows
a progress bar with the time left, and calls ``done`` for every finished job in the
instructor's process, which alone writes the course folder and its gradebook.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import sandbox, zygote

ASSIGNMENT = "ex3"
NOTEBOOK = "ex3.ipynb"


@dataclass
class GradingJob:
    """Everything needed to grade one submission, as plain (picklable) data."""

    student: str
    files: dict[str, bytes]                # the staged submission: ex3_*.py and the released notebook
    source_notebook: bytes                 # the course's notebook with hidden tests
    config: str                            # nbgrader_config.py
    gradebook: bytes                       # a gradebook that knows the assignment (after the release)
    timeout: int = 30                      # seconds per test cell
    feedback: bool = True
    contained: bool = True                 # run the kernel in the grading sandbox
    limits: dict = field(default_factory=dict)
    hide: list = field(default_factory=list)   # more folders the kernel must not see (the course, the batch)

    def digest(self) -> str:
        """Changes whenever anything that decides the grade changes (the submission, the course's
        notebook or configuration, the time limit)."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name] + b"\0")
        for part in (self.source_notebook, self.config.encode(), str(self.timeout).encode(),
                     str(self.contained).encode()):
            h.update(part + b"\0")
        return h.hexdigest()


def _drive(course: Path, student: str, options: dict, feedback: bool) -> int:
    """In a fresh process: ``nbgrader autograde`` (and ``generate_feedback``) of one student in
    ``course``, through nbgrader's Python API (one start-up for both)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.merge(Config(options))
    config.CourseDirectory.root = str(course)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    status = 0
    for step in ("autograde", "generate_feedback") if feedback else ("autograde",):
        result = getattr(api, step)(ASSIGNMENT, student)
        print(f"$ nbgrader {step} ({'ok' if result['success'] else 'failed'})\n{result.get('log', '')}"
              f"{result.get('error', '')}")
        if not result["success"]:
            status = 1
            break
    return status


def _hidden_roots(course: Path, extra=()) -> list[str]:
    """Folders whose contents the kernel must not see: the course tooling's checkout, the
    instructor's home, the job's own course folder (gradebook, hidden tests), /tmp, and
    ``extra`` (the course folder and the batch of submissions it was sent from)."""
    from ..paths import ROOT

    roots = {str(ROOT), str(Path.home()), str(course), "/tmp", "/mnt", "/media", "/srv", "/opt",
             *(str(p) for p in extra if Path(p).is_dir())}
    cwd = Path.cwd()
    if cwd != Path("/"):
        roots.add(str(cwd))
    return sorted(roots)


def _visible(runtime: Path) -> tuple[list[str], list[str]]:
    """(read-only, writable) paths the kernel needs: Python, the environment, the student library."""
    import glyph_ebm

    read_only = {sys.base_prefix, sys.prefix, str(Path(glyph_ebm.__file__).resolve().parent)}
    return sorted(read_only), [str(runtime)]


def grade_job(job: GradingJob, work_root: str | None = None) -> dict:
    """Grade one submission in a private course folder; returns
    ``{"student", "digest", "scores": {grade cell: points} or None, "graded": notebook bytes or
    None, "feedback": HTML bytes or None, "log": nbgrader's output, "seconds"}``."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix=f"grade-{job.student}-", dir=work_root) as tmp:
        course = Path(tmp) / "course"
        (course / "source" / ASSIGNMENT).mkdir(parents=True)
        (course / "source" / ASSIGNMENT / NOTEBOOK).write_bytes(job.source_notebook)
        (course / "nbgrader_config.py").write_text(job.config)
        (course / "gradebook.db").write_bytes(job.gradebook)
        target = course / "submitted" / job.student / ASSIGNMENT
        target.mkdir(parents=True)
        for name, data in job.files.items():
            (target / name).write_bytes(data)
        env = {"GLYPH_EBM_CELL_TIMEOUT": str(job.timeout)}
        options: dict = {}
        if job.contained:
            runtime = Path(tmp) / "runtime"
            runtime.mkdir(mode=0o1777)
            runtime.chmod(0o1777)
            read_only, writable = _visible(runtime)
            config = sandbox.SandboxConfig(hide=_hidden_roots(course, job.hide), read_only=read_only, writable=writable,
                                           limits=sandbox.Limits(**job.limits))
            config.to_file(Path(tmp) / "sandbox.json")
            if zygote.available():        # a warm kernel forked from a process that has imported torch
                zygote.write_kernel_spec(Path(tmp) / "jupyter", Path(tmp) / "sandbox.json", zygote.socket_path())
            else:
                sandbox.write_kernel_spec(Path(tmp) / "jupyter", Path(tmp) / "sandbox.json")
            env.update(JUPYTER_PATH=str(Path(tmp) / "jupyter"), JUPYTER_RUNTIME_DIR=str(runtime))
            options = {"Execute": {"kernel_name": sandbox.KERNEL_NAME},
                       "KernelManager": {"transport": "ipc", "ip": str(runtime / "kernel")}}
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        proc = subprocess.run([sys.executable, "-m", "glyph_course.grading.batch", str(course), job.student,
                               json.dumps(options), "feedback" if job.feedback else "no-feedback"],
                              capture_output=True, text=True,
                              env={**os.environ, "PATH": path, "PYTHONWARNINGS": "ignore", **env})
        graded = course / "autograded" / job.student / ASSIGNMENT / NOTEBOOK
        page = course / "feedback" / job.student / ASSIGNMENT / "ex3.html"
        html = page.read_bytes() if job.feedback and page.exists() else None
        return {"student": job.student, "digest": job.digest(), "scores": _scores(course, job.student),
                "graded": graded.read_bytes() if graded.exists() else None, "feedback": html,
                "log": f"(exit {proc.returncode})\n{proc.stdout}{proc.stderr}",
                "seconds": time.time() - start}


def _scores(course: Path, student: str) -> dict[str, float] | None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            notebook = gb.find_submission_notebook(NOTEBOOK[:-6], ASSIGNMENT, student)
        except MissingEntry:
            return None
        return {grade.name: float(grade.score or 0.0) for grade in notebook.grades}


def run_jobs(jobs: list[GradingJob], done: Callable[[dict], None], workers: int = 1,
             executor: Executor | None = None, progress: bool = True) -> None:
    """Grade ``jobs`` with ``executor`` (default: ``workers`` threads) and call ``done(result)`` in
    this process for each as it finishes; a progress bar shows how many are left and the time
    left. When interrupted, the finished ones have been handed to ``done`` already."""
    from tqdm import tqdm

    if not jobs:
        return
    own = executor is None
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers))) if own else executor
    try:
        futures = [pool.submit(grade_job, job) for job in jobs]
        with tqdm(total=len(jobs), desc="grading", unit="submission", file=sys.stderr, disable=not progress,
                  bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed} elapsed, {remaining} left]") as bar:
            for future in as_completed(futures):
                done(future.result())
                bar.update(1)
    except BaseException:
        for future in futures if "futures" in locals() else ():
            future.cancel()
        raise
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


def scheduler_executor(address: str) -> Executor:
    """A ``dask.distributed`` client's executor for the scheduler at ``address`` (needs the
    optional extra ``glyph-course[dask]``; every worker needs the course tooling installed).
    Its ``shutdown()`` (or the end of a ``with`` block) closes the client."""
    from glyph_ebm.errors import GlyphEBMError

    try:
        from distributed import Client
    except ImportError:
        raise GlyphEBMError("--scheduler needs dask.distributed: pip install 'glyph-course[dask]'") from None
    try:
        client = Client(address, timeout=3)
    except (OSError, TimeoutError) as exc:
        raise GlyphEBMError(f"no dask scheduler answers at {address} ({type(exc).__name__}); start one with "
                            "`dask scheduler` and workers with `dask worker ADDRESS`") from None
    executor = client.get_executor()
    stop = executor.shutdown

    def shutdown(wait: bool = True, **kwargs) -> None:     # shutting the executor down ends the client too
        stop(wait=wait, **kwargs)
        client.close()

    executor.shutdown = shutdown
    return executor


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_drive(Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "feedback"))
