"""How long autograding takes, against the course's limits (issue: one submission < 60 s,
a batch of 20 < 15 min), measured in one run on this machine.

    .venv/bin/python benchmarks/grading.py [--batch 20]

Grades (1) one submission with ``glyph-course grade`` (a fresh course: release + autograde +
feedback), and (2) a batch of N submissions with the batch pipeline of ``make autograde``:
the reference, the unmodified template and wrong implementations from the test suite, in
turn. Prints the times and their ratio to the limits; the last line is JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import grading_cases as cases  # noqa: E402
from glyph_course.grading import autograde  # noqa: E402

ONE_LIMIT_S = 60.0
BATCH_LIMIT_S = 15 * 60.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=20, help="submissions in the batch (default 20)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        tmp = Path(tmp)
        one = cases.build([], tmp / "one" / "ex3")
        start = time.perf_counter()
        result = autograde.grade_folder(one)
        one_s = time.perf_counter() - start
        print(f"one submission (reference, {result.total:g}/{result.max:g} points): {one_s:.1f} s "
              f"-> ratio to the {ONE_LIMIT_S:.0f} s limit {one_s / ONE_LIMIT_S:.2f}")

        subs = tmp / "batch"
        kinds = itertools.cycle([None, "template", *cases.MUTANTS])
        for i in range(args.batch):
            kind = next(kinds)
            target = subs / f"student{i:02d}" / "ex3"
            if kind == "template":
                shutil.copytree(ROOT / "ex3", target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                cases.build([] if kind is None else kind, target)
        course = autograde.make_course(tmp / "course")
        start = time.perf_counter()
        results = autograde.autograde(subs, course, progress=lambda *_: None)
        batch_s = time.perf_counter() - start
        print(f"batch of {len(results)} submissions: {batch_s / 60:.1f} min ({batch_s / len(results):.1f} s each) "
              f"-> ratio to the {BATCH_LIMIT_S / 60:.0f} min limit {batch_s / BATCH_LIMIT_S:.2f}")
    print(json.dumps({"one_s": round(one_s, 1), "one_ratio": round(one_s / ONE_LIMIT_S, 3),
                      "batch_n": len(results), "batch_s": round(batch_s, 1),
                      "batch_ratio": round(batch_s / BATCH_LIMIT_S, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
