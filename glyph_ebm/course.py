"""Course tooling: generate the student template from the reference solution.

``solutions/*.py`` is the single source of truth. Solution code sits between markers::

    # BEGIN SOLUTION 3.2a: what to implement
    ...reference code...
    # END SOLUTION

In the generated template the block becomes
``raise NotImplementedError("Exercise 3.2a: what to implement")`` at the same indentation,
unless the block is directly followed by a template block, whose lines (commented out in the
reference with ``# ``) replace it::

    # BEGIN TEMPLATE
    # x = ...  # TODO
    # END TEMPLATE

Everything outside the markers is copied unchanged. ``make template`` writes ``ex3/``; a test
checks that the committed ``ex3/`` equals the generated output.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
TEMPLATE = ROOT / "ex3"
EXERCISE_FILES = ("ex3_data.py", "ex3_model.py", "ex3_main.py", "ex3_ood.py")

_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+(?P<task>\d+\.\d+[a-z]?)(?::\s*(?P<what>.*))?)?\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_TBEGIN = re.compile(r"^\s*# BEGIN TEMPLATE\s*$")
_TEND = re.compile(r"^\s*# END TEMPLATE\s*$")


class MarkerError(ValueError):
    """Unbalanced or malformed solution/template markers."""


def strip_solutions(text: str, filename: str = "<text>") -> str:
    """The student version of one source file (see module docstring)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _BEGIN.match(lines[i])
        if _END.match(lines[i]) or _TEND.match(lines[i]):
            raise MarkerError(f"{filename}:{i + 1}: end marker without a begin marker")
        if _TBEGIN.match(lines[i]):
            raise MarkerError(f"{filename}:{i + 1}: TEMPLATE block must follow a SOLUTION block")
        if not m:
            out.append(lines[i])
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and not _END.match(lines[i]):
            if _BEGIN.match(lines[i]):
                raise MarkerError(f"{filename}:{i + 1}: nested BEGIN SOLUTION (block opened at line {start + 1})")
            i += 1
        if i == len(lines):
            raise MarkerError(f"{filename}:{start + 1}: BEGIN SOLUTION without END SOLUTION")
        i += 1  # skip END
        indent = m.group("indent")
        if i < len(lines) and _TBEGIN.match(lines[i]):
            i += 1
            while i < len(lines) and not _TEND.match(lines[i]):
                line = lines[i]
                stripped = line.lstrip()
                if stripped.startswith("# "):
                    line = line[:len(line) - len(stripped)] + stripped[2:]
                elif stripped.startswith("#"):
                    line = line[:len(line) - len(stripped)] + stripped[1:]
                out.append(line)
                i += 1
            if i == len(lines):
                raise MarkerError(f"{filename}: BEGIN TEMPLATE without END TEMPLATE")
            i += 1
        else:
            task = m.group("task") or "?"
            what = (m.group("what") or "implement this part").strip().replace('"', "'")
            out.append(f'{indent}raise NotImplementedError("Exercise {task}: {what}")\n')
    return "".join(out)


def solution_blocks(text: str) -> list[str]:
    """The code inside every SOLUTION block of ``text`` (used by the leak guard)."""
    blocks, current = [], None
    for line in text.splitlines():
        if _BEGIN.match(line):
            current = []
        elif _END.match(line) and current is not None:
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


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


def import_file(path: Path, module_name: str) -> ModuleType:
    """Execute one exercise file (``ex3_model.py``, ...) as a module named ``module_name``,
    without putting its folder on ``sys.path`` (the files use flat, script-style imports, so
    the reference's and a student's copies would otherwise shadow each other)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

