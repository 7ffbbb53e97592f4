"""The reference exercise (``solutions/``), loaded once through the one loader of exercise code
(:func:`glyph_ebm.exercise.load_exercise`): its modules get private names and never shadow a
student's ``ex3_model`` loaded in the same process (nor the other way round)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from glyph_ebm.exercise import Exercise, load_exercise

from .paths import SOLUTIONS, require


@lru_cache(maxsize=None)
def reference() -> Exercise:
    """The reference solution as an :class:`~glyph_ebm.exercise.Exercise` (``.model``,
    ``.main``, ...)."""
    require(SOLUTIONS / "ex3_main.py", "the reference solution (solutions/ex3_main.py)")
    return load_exercise(SOLUTIONS)


def exercise(folder: str | Path | None = None) -> Exercise:
    """The exercise files of ``folder`` (a student's ``ex3/``), or the reference when ``None``."""
    return reference() if folder is None or Path(folder).resolve() == SOLUTIONS.resolve() \
        else load_exercise(folder)
