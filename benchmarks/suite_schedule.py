"""How long ``make test`` takes on two workers, with and without xdist reordering the test files.

``make test`` runs pytest on two pytest-xdist workers with ``--dist loadfile`` (a test file per
worker at a time). ``tests/conftest.py`` sorts the files that take minutes first
(``LONG_FILES``); by default xdist then sorts the files again, by their number of tests, most
first, which starts the one-test files (the demo run, the book build) last. This script replays
xdist's hand-out rule on the per-test times of one real run and prints, for both orders, when
each worker would end and the ratio of the two suite times.

The times come from a JUnit XML file of a run of the suite::

    PYTEST_ADDOPTS=--junitxml=/tmp/suite.xml make test
    .venv/bin/python benchmarks/suite_schedule.py /tmp/suite.xml

The replay follows ``xdist.scheduler.loadscope`` (pytest-xdist 3.8): every worker is given one
file, then another one whenever two or fewer of its tests are still pending. Test times are taken
as they were measured (each beside whatever the other worker ran then), and the time outside
tests (start-up, collection) is left out, so the figures are a model of the schedule; compare
them with the suite time pytest prints.
"""
from __future__ import annotations

import argparse
import ast
import collections
import xml.etree.ElementTree as ET
from pathlib import Path

CONFTEST = Path(__file__).resolve().parent.parent / "tests" / "conftest.py"


def long_files(conftest: Path = CONFTEST) -> list[str]:
    """``LONG_FILES`` of ``tests/conftest.py``, read without importing it."""
    for node in ast.parse(conftest.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "LONG_FILES" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise SystemExit(f"{conftest} defines no LONG_FILES")


def test_times(junit: Path) -> dict[str, list[float]]:
    """Seconds of every test (set-up, call and tear-down), grouped by test file."""
    files: dict[str, list[float]] = collections.defaultdict(list)
    for case in ET.parse(junit).iter("testcase"):
        files[case.get("classname").split(".")[-1] + ".py"].append(float(case.get("time") or 0.0))
    if not files:
        raise SystemExit(f"{junit} holds no test case")
    return dict(files)


def replay(files: dict[str, list[float]], first: list[str], reorder: bool, workers: int = 2):
    """End time of every worker and the files it ran, in order, under xdist's loadfile rule."""
    rank = {name: i for i, name in enumerate(first)}
    order = sorted(sorted(files), key=lambda f: rank.get(f, len(first)))   # as conftest sorts them
    if reorder:
        order = sorted(order, key=lambda f: -len(files[f]))               # xdist's default on top
    queue = collections.deque(order)
    pending = [collections.deque() for _ in range(workers)]
    clock, ran = [0.0] * workers, [[] for _ in range(workers)]

    def hand_out(w):
        name = queue.popleft()
        pending[w].extend(files[name])
        ran[w].append(name)

    for w in range(workers):
        hand_out(w)
    for w in range(workers):
        if queue and len(pending[w]) <= 2:
            hand_out(w)
    while any(pending):          # the next test to end, on whichever worker
        w = min((k for k in range(workers) if pending[k]), key=lambda k: clock[k] + pending[k][0])
        clock[w] += pending[w].popleft()
        if queue and len(pending[w]) <= 2:
            hand_out(w)
    return clock, ran


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", type=Path, help="JUnit XML of a run of the suite (pytest --junitxml)")
    args = parser.parse_args(argv)
    files = test_times(args.junit)
    total = sum(map(sum, files.values()))
    print(f"{sum(map(len, files.values()))} tests in {len(files)} files, {total:.0f} s of test time "
          f"({total / 2:.0f} s per worker if perfectly shared)")
    ends = {}
    for reorder in (True, False):
        clock, ran = replay(files, long_files(), reorder)
        label = "xdist reorders (its default)" if reorder else "conftest's order (--no-loadscope-reorder)"
        ends[reorder] = max(clock)
        print(f"{label}: suite {max(clock):.0f} s; workers end at "
              + ", ".join(f"{c:.0f} s" for c in clock))
        for w, names in enumerate(ran):
            print(f"  worker {w}: first {', '.join(names[:4])}; last {', '.join(names[-2:])}")
    print(f"ratio conftest's order / xdist's: {ends[False] / ends[True]:.2f}")


if __name__ == "__main__":
    main()
