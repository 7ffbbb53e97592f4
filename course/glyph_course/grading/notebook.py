"""Build the graded notebook from its readable source.

The instructor's source ``autograde/ex3_source.py`` is plain text in "percent" format; a line
``# %% KIND key=value ...`` starts a cell:

* ``# %% markdown id=intro``                   a read-only text cell (lines lose their ``# ``);
* ``# %% code id=setup``                       a read-only code cell;
* ``# %% grade id=test_3_2a task=3.2a points=2``  an autograded test cell worth ``points``.

Test cells hold visible checks, and hidden ones between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS`` (nbgrader removes those from the student release). Every cell is
locked, so nbgrader's checksums reveal edits. ``make template`` writes
``autograde/source/ex3/ex3.ipynb``; a test checks that the committed notebook is current.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..paths import COURSE

SOURCE = COURSE / "ex3_source.py"
NOTEBOOK = COURSE / "source" / "ex3" / "ex3.ipynb"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
_HEADER = re.compile(r"^# %% (?P<kind>markdown|code|grade)(?P<rest>(?: \S+=\S+)*)\s*$")


class NotebookSourceError(ValueError):
    """The notebook source is malformed (names the line)."""


def parse_source(text: str, filename: str = "ex3_source.py") -> list[dict]:
    """Cells of the source as dicts ``{kind, id, task, points, source}``."""
    cells: list[dict] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            attrs = dict(item.split("=", 1) for item in m.group("rest").split())
            if "id" not in attrs:
                raise NotebookSourceError(f"{filename}:{lineno}: cell header without id=")
            if m.group("kind") == "grade" and not {"task", "points"} <= set(attrs):
                raise NotebookSourceError(f"{filename}:{lineno}: grade cell needs task= and points=")
            cells.append({"kind": m.group("kind"), "id": attrs["id"], "task": attrs.get("task"),
                          "points": float(attrs["points"]) if "points" in attrs else None,
                          "lines": [], "line": lineno})
        elif line.startswith("# %%"):
            raise NotebookSourceError(f"{filename}:{lineno}: cannot read cell header {line!r}")
        elif cells:
            cells[-1]["lines"].append(line)
        elif line.strip() and not line.startswith("#"):
            raise NotebookSourceError(f"{filename}:{lineno}: text before the first cell header")
    ids = [c["id"] for c in cells]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise NotebookSourceError(f"{filename}: duplicate cell ids {duplicates}")
    for cell in cells:
        lines = cell.pop("lines")
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if cell["kind"] == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        cell["source"] = "\n".join(lines)
        if split_hidden(cell["source"])[2]:
            raise NotebookSourceError(f"{filename}:{cell['line']}: {HIDDEN_BEGIN} without {HIDDEN_END}")
    return cells


def task_points(cells: list[dict]) -> dict[str, float]:
    """``{task: points}`` in the order the tasks first appear."""
    points: dict[str, float] = {}
    for cell in cells:
        if cell["kind"] == "grade":
            points[cell["task"]] = points.get(cell["task"], 0.0) + cell["points"]
    return points


def build_notebook(cells: list[dict]) -> dict:
    """An nbformat-4 notebook dict with nbgrader metadata for ``cells``."""
    nb_cells = []
    for cell in cells:
        grade = cell["kind"] == "grade"
        meta = {"grade": grade, "grade_id": cell["id"], "locked": True, "schema_version": 3,
                "solution": False, "task": False}
        if grade:
            meta["points"] = cell["points"]
        out = {"cell_type": "markdown" if cell["kind"] == "markdown" else "code", "id": cell["id"],
               "metadata": {"deletable": False, "editable": False, "nbgrader": meta},
               "source": cell["source"]}
        if out["cell_type"] == "code":
            out.update(execution_count=None, outputs=[])
            if grade:
                out["metadata"]["glyph_ebm_task"] = cell["task"]
        nb_cells.append(out)
    points = task_points(cells)
    return {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "glyph_ebm": {"tasks": points, "total": sum(points.values())},
        },
        "nbformat": 4, "nbformat_minor": 5,
    }


def notebook_text(source: Path = SOURCE) -> str:
    """The graded notebook's JSON text as :func:`write_notebook` writes it."""
    nb = build_notebook(parse_source(Path(source).read_text(), Path(source).name))
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def write_notebook(source: Path = SOURCE, target: Path = NOTEBOOK) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(notebook_text(source))
    return target


def notebook_is_stale(source: Path = SOURCE, target: Path = NOTEBOOK) -> bool:
    return not target.exists() or target.read_text() != notebook_text(source)


def split_hidden(source: str) -> tuple[list[str], list[str], bool]:
    """``(visible, hidden, unclosed)``: the lines outside and inside the hidden-test regions of
    ``source`` (marker lines belong to neither), and whether a region is left open."""
    visible, hidden, inside = [], [], False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            inside = True
        elif HIDDEN_END in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return visible, hidden, inside


def cell_source(cell: dict) -> str:
    """A notebook cell's source as one string (nbformat allows a list of lines too)."""
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def strip_hidden(source: str) -> str:
    """``source`` without its hidden-test regions (what nbgrader releases)."""
    return "\n".join(split_hidden(source)[0])


def hidden_test_lines(notebook: dict) -> list[str]:
    """Every line between the hidden-test markers of ``notebook`` (stripped, non-empty)."""
    return [line.strip() for cell in notebook["cells"] for line in split_hidden(cell_source(cell))[1]
            if line.strip()]
