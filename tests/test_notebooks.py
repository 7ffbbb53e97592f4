"""The teaching notebooks are stored without outputs. (That each runs top to bottom, with its
figures, in under five minutes on the CPU is checked where they are executed: the book build,
``tests/test_book.py``.)"""
import json

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_lecture_notebooks_are_there():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:3] == ["01_ebm_theory", "02_glyph_dataset", "03_exercise_walkthrough"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
