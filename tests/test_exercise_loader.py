"""The one loader of exercise code (glyph_ebm.exercise): private module names, flat imports
resolved inside the folder, sys.path and sys.modules put back, clear errors."""
import sys
import types

import pytest

from conftest import SOLUTIONS, TEMPLATE
from glyph_ebm.exercise import MODULES, ExerciseImportError, exercise_of, load_exercise


def test_two_folders_do_not_shadow_each_other_and_nothing_is_left_behind(monkeypatch):
    students_model = types.ModuleType("ex3_model")          # a flat module loaded elsewhere
    monkeypatch.setitem(sys.modules, "ex3_model", students_model)
    monkeypatch.delitem(sys.modules, "ex3_ood", raising=False)
    path_before = list(sys.path)

    ref = load_exercise(SOLUTIONS)
    tpl = load_exercise(TEMPLATE)
    assert ref.main.CNNModel is ref.model.CNNModel            # flat import -> the same folder's module
    assert tpl.main.CNNModel is tpl.model.CNNModel
    assert ref.model.CNNModel is not tpl.model.CNNModel
    assert ref.main.score is ref.ood.score
    assert sys.modules["ex3_model"] is students_model and "ex3_ood" not in sys.modules
    assert sys.path == path_before
    assert exercise_of(ref.main) is ref


def test_modules_load_lazily_and_a_broken_file_costs_only_itself(tmp_path):
    for name in MODULES:
        (tmp_path / f"{name}.py").write_text((SOLUTIONS / f"{name}.py").read_text())
    (tmp_path / "ex3_ood.py").write_text("def score(:\n")
    exercise = load_exercise(tmp_path)
    assert exercise.model.CNNModel(num_classes=3)             # the model file works on its own
    with pytest.raises(ExerciseImportError, match=r"ex3_ood.py has a syntax error in line 1"):
        exercise.main                                         # needs ex3_ood
    assert set(exercise.failures) == {"ex3_ood"}


def test_crash_at_import_is_named_with_its_line(tmp_path):
    (tmp_path / "ex3_ood.py").write_text("x = 1\nraise RuntimeError('half-finished edit')\n")
    (tmp_path / "ex3_main.py").write_text("")
    with pytest.raises(ExerciseImportError, match=r"importing ex3_ood.py raised RuntimeError: "
                                                  r"half-finished edit \(File ex3_ood.py, line 2"):
        load_exercise(tmp_path).ood


def test_placeholder_stands_in_for_a_missing_file(tmp_path):
    (tmp_path / "ex3_main.py").write_text("from ex3_model import CNNModel\n")
    placeholder = types.ModuleType("stand-in")
    placeholder.CNNModel = "placeholder"
    exercise = load_exercise(tmp_path, placeholder=lambda name, reason: placeholder)
    assert exercise.main.CNNModel == "placeholder"
    assert "ex3_model.py is missing" in exercise.failures["ex3_model"]


def test_a_folder_without_exercise_files_is_a_clear_error(tmp_path):
    with pytest.raises(ExerciseImportError, match=r"no exercise files \(ex3_model.py, .*\) in"):
        load_exercise(tmp_path)
