"""How long grading takes, measured side by side in one run on this machine.

    .venv/bin/python benchmarks/grading.py [--batch 20] [--jobs 2] [--skip-one]

1. One submission with ``glyph-course grade`` (a fresh course: release + autograde + feedback),
   against the course's limit of 30 s per submission.
2. The same batch of N generated submissions (a mix of correct ones, the unmodified template,
   wrong implementations and misbehaving ones from the test suite) graded twice, with 1 job and
   with ``--jobs`` jobs, each in a fresh course: the speed-up ratio (the target on a 2-core
   machine: >= 1.7 with 2 jobs), the time of the parallel batch against the limit (100
   submissions in 10 minutes), and whether both give the same grades. The last line is JSON.
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

ONE_LIMIT_S = 30.0
HUNDRED_LIMIT_S = 10 * 60.0


def make_batch(folder: Path, n: int) -> Path:
    """``n`` submissions: the reference, the template, then every wrong, correct-alternative and
    misbehaving case of the test suite in turn."""
    kinds = itertools.cycle([None, "template", *cases.MUTANTS, *cases.ALTERNATIVES, *cases.ROBUSTNESS])
    for i in range(n):
        kind = next(kinds)
        target = folder / f"student{i:03d}" / "ex3"
        if kind == "template":
            shutil.copytree(ROOT / "ex3", target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            cases.build([] if kind is None else kind, target)
    return folder


def grade_batch(subs: Path, course_dir: Path, jobs: int) -> tuple[float, dict]:
    course = autograde.make_course(course_dir)
    start = time.perf_counter()
    results = autograde.autograde(subs, course, jobs=jobs, progress=lambda *_: None)
    seconds = time.perf_counter() - start
    return seconds, {r.student: {t: got for t, (got, _) in r.tasks.items()} for r in results}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=20, help="submissions in the batch (default 20)")
    p.add_argument("--jobs", type=int, default=2, help="jobs of the parallel run (default 2)")
    p.add_argument("--skip-one", action="store_true", help="skip the single-submission measurement")
    args = p.parse_args(argv)
    out = {}
    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        tmp = Path(tmp)
        if not args.skip_one:
            one = cases.build([], tmp / "one" / "ex3")
            start = time.perf_counter()
            result = autograde.grade_folder(one)
            one_s = time.perf_counter() - start
            print(f"one submission (reference, {result.total:g}/{result.max:g} points): {one_s:.1f} s "
                  f"-> ratio to the {ONE_LIMIT_S:.0f} s limit {one_s / ONE_LIMIT_S:.2f}")
            out.update(one_s=round(one_s, 1), one_ratio=round(one_s / ONE_LIMIT_S, 3))
        subs = make_batch(tmp / "batch", args.batch)
        serial_s, serial = grade_batch(subs, tmp / "serial", 1)
        print(f"batch of {args.batch}, 1 job: {serial_s / 60:.1f} min ({serial_s / args.batch:.1f} s each)")
        parallel_s, parallel = grade_batch(subs, tmp / "parallel", args.jobs)
        per_hundred = parallel_s / args.batch * 100
        print(f"batch of {args.batch}, {args.jobs} jobs: {parallel_s / 60:.1f} min ({parallel_s / args.batch:.1f} s "
              f"each; 100 submissions: {per_hundred / 60:.1f} min -> ratio to the 10 min limit "
              f"{per_hundred / HUNDRED_LIMIT_S:.2f})")
        same = serial == parallel
        print(f"speed-up with {args.jobs} jobs: {serial_s / parallel_s:.2f}x; same grades: {same}")
        out.update(batch_n=args.batch, jobs=args.jobs, serial_s=round(serial_s, 1), parallel_s=round(parallel_s, 1),
                   speedup=round(serial_s / parallel_s, 3), hundred_ratio=round(per_hundred / HUNDRED_LIMIT_S, 3),
                   same_grades=same)
    print(json.dumps(out))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
