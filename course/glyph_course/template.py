"""The student template, generated from the reference solution.

``solutions/*.py`` is the single source of truth. Solution code sits between markers::

    # BEGIN SOLUTION 3.2a: what to implement
    ...reference code...
    # END SOLUTION

In the generated template each block becomes
``raise NotImplementedError("Exercise 3.2a: what to implement")`` at the same indentation (the
text after the colon is the hint students see: it says what to do, never how). Everything
outside the markers is copied unchanged. ``make template`` writes ``ex3/``; a test checks that
the committed ``ex3/`` equals the generated output.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from glyph_ebm.exercise import FILES as EXERCISE_FILES

from .paths import SOLUTIONS, TEMPLATE

_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+(?P<task>\d+\.\d+[a-z]?(?:/[a-z])?)(?::\s*(?P<what>.*))?)?\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")


class MarkerError(ValueError):
    """Unbalanced or malformed solution markers."""


def _blocks(text: str, filename: str):
    """``(start, end, match)`` of every solution block (line indices of the markers)."""
    lines = text.splitlines(keepends=True)
    start = None
    for i, line in enumerate(lines):
        m = _BEGIN.match(line)
        if m and start is not None:
            raise MarkerError(f"{filename}:{i + 1}: nested BEGIN SOLUTION (block opened at line {start[0] + 1})")
        if m:
            start = (i, m)
        elif _END.match(line):
            if start is None:
                raise MarkerError(f"{filename}:{i + 1}: end marker without a begin marker")
            yield start[0], i, start[1]
            start = None
    if start is not None:
        raise MarkerError(f"{filename}:{start[0] + 1}: BEGIN SOLUTION without END SOLUTION")


def strip_solutions(text: str, filename: str = "<text>") -> str:
    """The student version of one source file (see module docstring)."""
    lines = text.splitlines(keepends=True)
    out, pos = [], 0
    for start, end, m in _blocks(text, filename):
        out += lines[pos:start]
        task = m.group("task") or "?"
        what = (m.group("what") or "implement this part").strip().replace('"', "'")
        out.append(f'{m.group("indent")}raise NotImplementedError("Exercise {task}: {what}")\n')
        pos = end + 1
    return "".join(out + lines[pos:])


def solution_blocks(text: str) -> list[str]:
    """The code inside every SOLUTION block of ``text`` (used by the leak guard)."""
    lines = text.splitlines()
    return ["\n".join(lines[start + 1:end]) for start, end, _ in _blocks(text, "<text>")]


def task_hints(text: str) -> list[str]:
    """The hint of every solution block (the text the template's ``NotImplementedError`` shows)."""
    return [(m.group("what") or "").strip() for _, _, m in _blocks(text, "<text>")]


def generate_template(src: Path = SOLUTIONS, dst: Path = TEMPLATE) -> list[Path]:
    """Write the student version of every exercise file from ``src`` into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXERCISE_FILES:
        text = (src / name).read_text()
        target = dst / name
        target.write_text(strip_solutions(text, str(src / name)))
        shutil.copymode(src / name, target)
        written.append(target)
    return written


def stale_template_files(src: Path = SOLUTIONS, dst: Path = TEMPLATE) -> list[str]:
    """Names of files in ``dst`` that differ from what :func:`generate_template` would write."""
    stale = []
    for name in EXERCISE_FILES:
        expected = strip_solutions((src / name).read_text(), name)
        target = dst / name
        if not target.exists() or target.read_text() != expected:
            stale.append(name)
    return stale
