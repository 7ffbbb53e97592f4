"""The one loader of exercise code: a folder of ``ex3_*.py`` files as modules.

The exercise files use flat, script-style imports (``from ex3_model import CNNModel``), so that
``python ex3_main.py`` works from inside their folder. :func:`load_exercise` executes the files
of one folder (the reference ``solutions/``, a student's ``ex3/``, a submission) under private
module names, so that two folders loaded into one process never shadow each other. While a
file runs, the flat names ``ex3_model``, ``ex3_ood``, ... resolve to the same folder's modules
and the folder is on ``sys.path`` (for helper files of its own); afterwards ``sys.path`` and the
flat entries of ``sys.modules`` are put back as they were.

Modules are loaded on first use, dependencies first (``ex3_main`` needs ``ex3_model`` and
``ex3_ood``), so a broken ``ex3_main.py`` does not stop ``ex3_model.py`` from being used.
A file that cannot be imported raises :class:`ExerciseImportError` with a message naming the
file, the line and the reason; as a dependency of another file it can be replaced by a stand-in
module instead (``placeholder=...``).
"""
from __future__ import annotations

import importlib.util
import itertools
import linecache
import sys
import types
from pathlib import Path
from typing import Callable

from .errors import GlyphEBMError

#: the exercise's files as module names, each after the ones it imports
MODULES = ("ex3_model", "ex3_ood", "ex3_data", "ex3_main")
FILES = tuple(f"{name}.py" for name in MODULES)
#: flat imports each file makes of the others
DEPENDENCIES = {"ex3_main": ("ex3_model", "ex3_ood")}

_counter = itertools.count()


class ExerciseImportError(GlyphEBMError, ImportError):
    """An exercise file could not be imported; the message says which file and why."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters)."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def frames_in(folder: Path, tb) -> list[str]:
    """``File ..., line ..., in ...`` lines (with the code) of the traceback frames that lie in
    the exercise files of ``folder``: what a student can read without seeing anyone else's code."""
    lines = []
    while tb is not None:
        frame, lineno = tb.tb_frame, tb.tb_lineno
        path = Path(frame.f_code.co_filename)
        if path.parent == folder and path.name.startswith("ex3_"):
            lines.append(f"  File {path.name}, line {lineno}, in {frame.f_code.co_name}")
            code = linecache.getline(str(path), lineno).strip()
            if code:
                lines.append(f"    {code}")
        tb = tb.tb_next
    return lines[-12:]


class Exercise:
    """The exercise files of ``folder``; ``.model``, ``.ood``, ``.data``, ``.main`` are the
    modules ``ex3_model`` ... ``ex3_main``, each loaded on first use.

    Args:
        folder: the folder that holds the ``ex3_*.py`` files.
        placeholder: ``(name, reason) -> module`` that stands in for a *dependency* that
            cannot be imported (``ex3_main`` still loads when ``ex3_model.py`` is broken; the
            reason is kept in :attr:`failures`); ``None`` = the error propagates.
        preloaded: modules that are already loaded, ``{name: module}`` (see :func:`exercise_of`).
    """

    def __init__(self, folder, placeholder: Callable[[str, str], types.ModuleType] | None = None,
                 preloaded: dict[str, types.ModuleType] | None = None):
        self.folder = Path(folder).resolve()
        self.placeholder = placeholder
        self.failures: dict[str, str] = {}
        self._modules: dict[str, types.ModuleType] = dict(preloaded or {})
        self._prefix = f"_exercise{next(_counter)}_"

    def __repr__(self) -> str:
        return f"Exercise({str(self.folder)!r})"

    model = property(lambda self: self.module("ex3_model"))
    ood = property(lambda self: self.module("ex3_ood"))
    data = property(lambda self: self.module("ex3_data"))
    main = property(lambda self: self.module("ex3_main"))

    def module(self, name: str) -> types.ModuleType:
        """The module ``name`` (one of :data:`MODULES`), loaded on first use; raises
        :class:`ExerciseImportError` when its file cannot be imported."""
        if name not in MODULES:
            raise ValueError(f"unknown exercise module {name!r}; one of {', '.join(MODULES)}")
        if name in self.failures:
            raise ExerciseImportError(self.failures[name])
        if name not in self._modules:
            deps = {dep: self._dependency(dep) for dep in DEPENDENCIES.get(name, ())}
            self._modules[name] = self._load(name, deps)
        return self._modules[name]

    def _dependency(self, name: str) -> types.ModuleType:
        try:
            return self.module(name)
        except ExerciseImportError:
            if self.placeholder is None:
                raise
            return self.placeholder(name, self.failures[name])

    def _load(self, name: str, deps: dict[str, types.ModuleType]) -> types.ModuleType:
        path = self.folder / f"{name}.py"
        if not path.exists():
            return self._failed(name, f"{path.name} is missing from {self.folder}")
        private = self._prefix + name
        spec = importlib.util.spec_from_file_location(private, path)
        module = importlib.util.module_from_spec(spec)
        saved_path = list(sys.path)
        saved = {flat: sys.modules.get(flat) for flat in MODULES}
        before = set(sys.modules)
        sys.modules[private] = module
        try:
            sys.path.insert(0, str(self.folder))
            for flat in MODULES:
                sys.modules.pop(flat, None)
            sys.modules.update(deps)
            spec.loader.exec_module(module)
        except SyntaxError as exc:
            sys.modules.pop(private, None)
            return self._failed(name, f"{path.name} has a syntax error in line {exc.lineno}: {exc.msg}")
        except KeyboardInterrupt:
            sys.modules.pop(private, None)
            return self._failed(name, f"importing {path.name} did not finish in time "
                                      "(code at module level that never ends?)")
        except SystemExit:
            sys.modules.pop(private, None)
            return self._failed(name, f"{path.name} calls sys.exit() when it is imported")
        except Exception as exc:  # noqa: BLE001 - any error at import is reported with its place
            sys.modules.pop(private, None)
            frames = [ln for ln in frames_in(self.folder, exc.__traceback__) if ln.startswith("  File")]
            where = f" ({frames[-1].strip()})" if frames else ""
            return self._failed(name, f"importing {path.name} raised {type(exc).__name__}: "
                                      f"{first_line(exc)}{where}")
        else:
            module.__exercise__ = self
        finally:
            sys.path[:] = saved_path
            for flat, previous in saved.items():
                if previous is None:
                    sys.modules.pop(flat, None)
                else:
                    sys.modules[flat] = previous
            for extra in set(sys.modules) - before - {private}:
                # helper files of the exercise folder imported by their flat names go too
                if Path(getattr(sys.modules[extra], "__file__", None) or "/").parent == self.folder:
                    sys.modules.pop(extra, None)
        return module

    def _failed(self, name: str, reason: str) -> types.ModuleType:
        self.failures[name] = reason
        raise ExerciseImportError(reason)


def load_exercise(folder, placeholder: Callable[[str, str], types.ModuleType] | None = None) -> Exercise:
    """The exercise files of ``folder`` (see :class:`Exercise`); a clear error when the folder
    holds none of them."""
    folder = Path(folder)
    if not any((folder / name).exists() for name in FILES):
        raise ExerciseImportError(f"no exercise files ({', '.join(FILES)}) in {folder.resolve()}; run from "
                                  "the folder that holds them or pass that folder (--code DIR)")
    return Exercise(folder, placeholder)


def exercise_of(main: types.ModuleType) -> Exercise:
    """The :class:`Exercise` around an ``ex3_main`` module that is already running (``python
    ex3_main.py`` as a script, or a module :func:`load_exercise` made): its own modules are
    reused, the remaining files of its folder are loaded."""
    if isinstance(getattr(main, "__exercise__", None), Exercise):
        return main.__exercise__
    folder = Path(main.__file__).resolve().parent
    preloaded = {"ex3_main": main}
    for name in MODULES:
        module = sys.modules.get(name)
        if name != "ex3_main" and module is not None and \
                Path(getattr(module, "__file__", None) or "/").resolve().parent == folder:
            preloaded[name] = module
    return Exercise(folder, preloaded=preloaded)
