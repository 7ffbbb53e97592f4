"""Where the course's own files are: a checkout of the glyph-ebm repository.

The course tooling works on the repository's files (``solutions/``, ``autograde/``,
``pretrained/``). The checkout is found, in this order, from ``$GLYPH_COURSE_ROOT``, from
where this package lies (an editable install, ``make setup``), or from the current folder and
its parents. Importing never fails; a command that needs a missing file says so
(:func:`require`).
"""
from __future__ import annotations

import os
from pathlib import Path

from glyph_ebm.errors import GlyphEBMError

ROOT_ENV = "GLYPH_COURSE_ROOT"


def _is_checkout(folder: Path) -> bool:
    return (folder / "solutions" / "ex3_main.py").exists() and (folder / "autograde").is_dir()


def find_root() -> Path | None:
    """The repository checkout the course tooling works on, or ``None``."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path(__file__).resolve()
    cwd = Path.cwd().resolve()
    for folder in (*here.parents, cwd, *cwd.parents):
        if _is_checkout(folder):
            return folder
    return None


ROOT = find_root() or Path.cwd().resolve()
SOLUTIONS = ROOT / "solutions"          # the reference exercise: THE source of every task
TEMPLATE = ROOT / "ex3"                 # the student template, generated from SOLUTIONS
COURSE = ROOT / "autograde"             # the nbgrader course folder
PRETRAINED = ROOT / "pretrained" / "jem_quick.pt"


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else a clear error naming ``what`` and how the checkout is found."""
    path = Path(path)
    if not path.exists():
        raise GlyphEBMError(f"{what} is not at {path}: the course tooling works on a checkout of the "
                            f"glyph-ebm repository; run it from inside one or set {ROOT_ENV}")
    return path
