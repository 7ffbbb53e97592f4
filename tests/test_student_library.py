"""The student library (glyph_ebm) stands on its own: it imports in a process where the course
tooling and the exercise files cannot be imported, and it implements no exercise task."""
import ast
import subprocess
import sys

from conftest import ROOT

LIBRARY = ROOT / "glyph_ebm"

# Imports every module of glyph_ebm with glyph_course, solutions/ and every flat exercise module
# (ex3_*) made unimportable; prints how many modules it imported.
_IMPORT_ALL = r"""
import importlib, pkgutil, sys
from pathlib import Path

root = Path(sys.argv[1]).resolve()

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "glyph_course" or name.startswith("ex3_"):
            raise ImportError(f"{name} must not be imported by the student library")
        return None

sys.meta_path.insert(0, Blocked())
sys.path[:] = [p for p in sys.path if not Path(p or ".").resolve().is_relative_to(root / "solutions")
               and Path(p or ".").resolve() != root / "course"]
import glyph_ebm
names = [m.name for m in pkgutil.walk_packages(glyph_ebm.__path__, "glyph_ebm.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
assert not [m for m in sys.modules if m.startswith(("glyph_course", "ex3_"))]
print(len(names))
"""


def test_every_module_imports_without_the_course_tooling_and_the_exercise(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL, str(ROOT)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = len([p for p in LIBRARY.rglob("*.py") if p.name not in ("__main__.py",)])
    assert int(proc.stdout.strip().splitlines()[-1]) == expected - 1   # walk_packages lists no __init__ of the top


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_no_module_names_the_course_tooling_or_an_exercise_file():
    found = [(p.relative_to(ROOT), name) for p in LIBRARY.rglob("*.py") for name in _imports(p)
             if name.split(".")[0] == "glyph_course" or name.startswith("ex3_")]
    assert found == []


def test_the_library_solves_no_task():
    """No input gradients (SGLD, 3.3), no logsumexp energy (3.2b), no cross-entropy (3.4b), no
    AUROC (3.6) anywhere in the student library: wherever such work is needed, it calls the
    exercise's code."""
    tells = ("autograd.grad", ".backward(", "logsumexp", "cross_entropy", "roc_auc")
    found = [(p.relative_to(ROOT), t) for p in LIBRARY.rglob("*.py") for t in tells if t in p.read_text()]
    assert found == []
