"""How long the similarity report takes for a course of several hundred students, against a
limit of 60 s for 300 students (issue 18), measured in one run on this machine.

    .venv/bin/python benchmarks/similarity.py [--students 300]

Builds a synthetic batch: every student fills the template's solution blocks with random
statements of the kind the blocks hold (random calls, methods, keyword arguments, numbers: as
much code as the reference, and independent work as far as fingerprints go), and one student
in ten hands in a disguised copy of another's files (the variables renamed). Then runs the whole report
(read, normalise, fingerprint, compare all pairs, write the HTML and CSV) and prints the time,
its ratio to the limit, and whether exactly the planted copies were flagged. The last line is
JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from glyph_course.grading import similarity  # noqa: E402
from glyph_course.template import _blocks  # noqa: E402

LIMIT_S = 60.0
LIMIT_STUDENTS = 300
FILES = ("ex3_data.py", "ex3_model.py", "ex3_main.py", "ex3_ood.py")


FUNCTIONS = ("torch.randn", "torch.zeros_like", "torch.clamp", "torch.logsumexp", "torch.cat", "torch.where",
             "torch.randint", "F.cross_entropy", "np.concatenate", "roc_auc_score", "torch.autograd.grad", "len")
METHODS = ("mean", "sum", "detach", "clamp", "flatten", "long", "cpu", "clone", "exp", "log", "pow", "max")
KEYWORDS = ("dim", "generator", "device", "dtype", "keepdim", "min", "max", "alpha")


def statement(rng: random.Random, names: list[str]) -> str:
    """A random statement of the kind the solution blocks hold."""
    call = f"{rng.choice(FUNCTIONS)}({rng.choice(names)}, {rng.choice(KEYWORDS)}={rng.randrange(4)})"
    for _ in range(rng.randrange(3)):
        call += f".{rng.choice(METHODS)}()"
    op = rng.choice(("+", "-", "*"))
    return f"{rng.choice(names)} = {call} {op} self.{rng.choice(('cfg.alpha', 'init_std', 'max_len', 'step_size'))}"


def honest(rng: random.Random) -> dict[str, str]:
    """The template with every solution block filled by 4-12 random statements (random calls,
    methods, keyword arguments and numbers): independent work, as far as fingerprints go."""
    out = {}
    for name in FILES:
        text = (ROOT / "solutions" / name).read_text()
        lines = text.splitlines(keepends=True)
        parts, pos = [], 0
        for start, end, m in _blocks(text, name):
            parts += lines[pos:start]
            indent = m.group("indent")
            names = [f"v{rng.randrange(100)}" for _ in range(4)]
            parts += [f"{indent}{statement(rng, names)}\n" for _ in range(rng.randint(4, 12))]
            pos = end + 1
        out[name] = "".join(parts + lines[pos:])
    return out


def disguised(texts: dict[str, str], rng: random.Random) -> dict[str, str]:
    """The same files with every name the copier could rename renamed."""
    suffix = f"_{rng.randrange(10**6)}"
    return {name: re.sub(r"\b(v\d+)\b", lambda m: m.group(1) + suffix, text) for name, text in texts.items()}


def build(folder: Path, students: int, seed: int = 0) -> set[tuple[str, str]]:
    """Write the synthetic batch; returns the pairs that must be flagged."""
    rng = random.Random(seed)
    made, groups = {}, {}
    for i in range(students):
        student = f"student{i:03d}"
        if i % 10 == 9:                  # a copy of an honest student's files
            source = rng.choice(sorted(made))
            texts = disguised(made[source], rng)
            groups.setdefault(source, [source]).append(student)
        else:
            texts = made[student] = honest(rng)
        target = folder / student / "ex3"
        target.mkdir(parents=True)
        for name, text in texts.items():
            (target / name).write_text(text)
    # every two students of a group hold the same code (two copies of one source match too)
    return {tuple(sorted(pair)) for group in groups.values() for pair in itertools.combinations(group, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=LIMIT_STUDENTS, help=f"students in the batch (default {LIMIT_STUDENTS})")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="similarity-bench-") as tmp:
        subs = Path(tmp) / "subs"
        planted = build(subs, args.students)
        start = time.perf_counter()
        report = similarity.similarity_report(subs, Path(tmp) / "out")
        seconds = time.perf_counter() - start
        flagged = {tuple(sorted(report.names(p))) for p in report.flagged}
        html_kib = report.html.stat().st_size / 1024
    limit = LIMIT_S * args.students / LIMIT_STUDENTS if args.students > LIMIT_STUDENTS else LIMIT_S
    print(f"{args.students} students, {len(report.pairs)} pairs: {seconds:.1f} s -> ratio to the {limit:.0f} s "
          f"limit {seconds / limit:.3f}; flagged {len(flagged)} pairs, pairs to flag {len(planted)}, "
          f"found {len(flagged & planted)}, other flags {len(flagged - planted)}; report {html_kib:.0f} KiB")
    print(json.dumps({"students": args.students, "seconds": round(seconds, 2), "ratio": round(seconds / limit, 4),
                      "planted": len(planted), "found": len(flagged & planted), "other_flags": len(flagged - planted)}))
    return 0 if flagged == planted else 1


if __name__ == "__main__":
    sys.exit(main())
