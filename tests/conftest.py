"""Shared fixtures. The reference exercise modules are imported from ``solutions/`` (flat,
script-style imports, as students use them); tests that need the student template run it in a
subprocess so the two sets of same-named modules never meet in one interpreter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
TEMPLATE = ROOT / "ex3"
PYTHON = sys.executable

if str(SOLUTIONS) not in sys.path:
    sys.path.insert(0, str(SOLUTIONS))


#: the glyph sets and classifiers the tests generate: in the checkout (ignored by git), never in the
#: user's own cache; kept between runs (the full set takes a few minutes to generate)
TEST_CACHE = Path(os.environ.get("GLYPH_EBM_TEST_CACHE") or ROOT / ".cache" / "glyph-ebm-tests")
os.environ["GLYPH_EBM_CACHE"] = str(TEST_CACHE)       # also for every subprocess the tests start


def run_cli(args, cwd=SOLUTIONS, timeout=600, env=None):
    """Run ``python ex3_main.py ARGS`` in ``cwd``; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([PYTHON, "ex3_main.py", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-tensor tests: as fast alone, and far faster when
    another job keeps the two cores busy (two threads then slow down 10x or more)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def environment_put_back():
    """Every test leaves ``os.environ`` as it found it. A dask ``LocalCluster`` sets
    ``OMP_NUM_THREADS=1`` (and more) in the process that starts it, which made every training
    subprocess of the later tests run on one core."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


#: ``make test`` runs the suite on two pytest-xdist workers, a test file per worker at a time
#: (``--dist loadfile``: a module's fixture is built once). Each worker and every process it
#: starts computes on one thread: a small model trains faster on one thread than on two, and two
#: workers with two threads each on two cores slow each other down many times over.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    import torch

    torch.set_num_threads(1)

#: the files that take minutes (``--durations``), longest first: started first, so that the two
#: workers end together instead of one of them finishing the book build alone. xdist keeps this
#: order only with ``--no-loadscope-reorder`` (``make test`` passes it); by default it hands out
#: the files with the most tests first, which left the demo test and the book for the end (the
#: suite took a quarter longer)
LONG_FILES = ["test_book.py", "test_demo_quality.py", "test_grading_e2e.py", "test_student_kit.py",
              "test_real_folder.py", "test_compress_study.py", "test_ood_study.py", "test_grading_containment.py",
              "test_grading_batch.py"]


def pytest_collection_modifyitems(config, items):
    """The long files first, in the order of :data:`LONG_FILES`, then the rest as collected. (A
    notebook of the book that finds no glyph set or judge classifier in the test cache makes it,
    as a reader's first build does; the cache's files are written atomically.)"""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))
