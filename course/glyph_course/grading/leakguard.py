"""Leak guard: no solution code and no hidden test may reach students.

What counts as secret:

* every line inside a ``# BEGIN SOLUTION`` block of ``solutions/*.py``, and every line between
  ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` in the source notebook, unless
  students see that line anyway (in the generated templates or the visible part of the
  notebook: shared lines such as ``x, y = batch`` are not leaks);
* the markers themselves.

Feedback goes back to students together with their own code, which may well contain lines of
the reference; there only hidden tests count as secret, in the HTML that nbgrader generates.

:func:`scan` reads every file of a folder as a student would see it: notebooks as their cell
sources and outputs, HTML as text with the tags removed (syntax highlighting splits code into
many ``<span>`` elements), anything else as plain text.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from ..paths import SOLUTIONS
from ..template import EXERCISE_FILES, solution_blocks, strip_solutions
from glyph_ebm.errors import GlyphEBMError
from . import notebook as nbsource

MIN_LENGTH = 12          # shorter lines ("return x", "pass") are too generic to count as leaks
HIDDEN_MARKERS = (nbsource.HIDDEN_BEGIN, nbsource.HIDDEN_END)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", *HIDDEN_MARKERS)
_TAG = re.compile(r"<[^>]+>")


class LeakError(GlyphEBMError):
    """Secret text was found in a folder meant for students."""


def _meaningful(line: str) -> bool:
    line = line.strip()
    return len(line) >= MIN_LENGTH and not line.startswith("#")


def public_lines(solutions: Path = SOLUTIONS, notebook_path: Path = nbsource.NOTEBOOK) -> set[str]:
    """Lines students see anyway: the generated templates and the visible notebook."""
    lines = set()
    for name in EXERCISE_FILES:
        lines |= {ln.strip() for ln in strip_solutions((solutions / name).read_text(), name).splitlines()}
    nb = json.loads(Path(notebook_path).read_text())
    for cell in nb["cells"]:
        lines |= {ln.strip() for ln in nbsource.split_hidden(nbsource.cell_source(cell))[0]}
    return lines


def solution_lines(solutions: Path = SOLUTIONS) -> set[str]:
    """Every meaningful line inside the solution blocks of the reference."""
    return {ln.strip() for name in EXERCISE_FILES for block in solution_blocks((solutions / name).read_text())
            for ln in block.splitlines() if _meaningful(ln)}


def hidden_lines(notebook_path: Path = nbsource.NOTEBOOK) -> set[str]:
    """Every meaningful line inside the hidden-test regions of the source notebook."""
    nb = json.loads(Path(notebook_path).read_text())
    return {ln for ln in nbsource.hidden_test_lines(nb) if _meaningful(ln)}


def secret_lines(solutions: Path = SOLUTIONS, notebook_path: Path = nbsource.NOTEBOOK,
                 hidden_only: bool = False) -> set[str]:
    """Solution and hidden-test lines that students do not see anyway (``hidden_only``: only
    hidden-test lines, for feedback, which also holds the student's own code)."""
    public = "\n".join(public_lines(solutions, notebook_path))
    candidates = hidden_lines(notebook_path) if hidden_only else solution_lines(solutions) | hidden_lines(notebook_path)
    return {ln for ln in candidates if ln not in public}


def readable_text(path: Path) -> str:
    """The text of ``path`` as a student would read it."""
    raw = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
        except ValueError:
            return raw
        parts = []
        for cell in nb.get("cells", []):
            src = cell.get("source", "")
            parts.append(src if isinstance(src, str) else "".join(src))
            for out in cell.get("outputs", []):
                for key in ("text", "evalue"):
                    val = out.get(key, "")
                    parts.append(val if isinstance(val, str) else "".join(val))
                parts.extend(out.get("traceback", []))
                for val in out.get("data", {}).values():
                    if isinstance(val, (str, list)):
                        parts.append(val if isinstance(val, str) else "".join(val))
        return "\n".join(parts)
    if path.suffix in (".html", ".htm"):
        return html.unescape(_TAG.sub("", raw))
    return raw


def scan(folder: Path, secrets: set[str] | None = None, suffixes: tuple[str, ...] | None = None,
         markers: tuple[str, ...] = MARKERS) -> list[str]:
    """Leaks in ``folder`` (only files with ``suffixes`` when given): one ``"file: what"`` line
    per finding (empty list = clean)."""
    if secrets is None:
        secrets = secret_lines()
    folder = Path(folder)
    findings = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix in (".png", ".jpg", ".pdf", ".db", ".pyc", ".ckpt", ".npz"):
            continue
        if suffixes is not None and path.suffix not in suffixes:
            continue
        text = readable_text(path)
        rel = path.relative_to(folder)
        for marker in markers:
            if marker in text:
                findings.append(f"{rel}: contains the marker {marker!r}")
        for line in sorted(secrets):
            if line in text:
                findings.append(f"{rel}: contains secret line {line!r}")
    return findings


def assert_clean(folder: Path, what: str, secrets: set[str] | None = None, **scan_options) -> None:
    """Raise :class:`LeakError` listing the leaks found in ``folder`` (options: :func:`scan`)."""
    findings = scan(folder, secrets, **scan_options)
    if findings:
        shown = "\n  ".join(findings[:20])
        more = f"\n  ... and {len(findings) - 20} more" if len(findings) > 20 else ""
        raise LeakError(f"leak guard: {what} in {folder} contains text that must stay with the instructor:\n  {shown}{more}")
