"""The exercise's reference code (``solutions/``), imported by file path.

``solutions/ex3_*.py`` is the single source of truth of the architecture, the data module and
the JEM training module (the same files :mod:`glyph_ebm.pretrained` builds its model from).
They use flat, script-style imports (``from ex3_model import CNNModel`` in ``ex3_main.py``), so
they are loaded here under private module names instead of being put on ``sys.path``; while
``ex3_main.py`` runs, its two flat imports are pointed at the reference modules and
``sys.modules`` is put back as it was afterwards (a student's ``ex3_model`` loaded elsewhere in
the same process is never shadowed, nor does it shadow the reference).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from functools import lru_cache
from types import ModuleType

from ..course import SOLUTIONS, import_file
from ..errors import GlyphEBMError

# the flat imports of each reference file (module names as the file writes them)
FLAT_IMPORTS = {"ex3_main": ("ex3_model", "ex3_ood")}


@contextmanager
def _flat_imports_resolve_to_reference(names):
    saved = {name: sys.modules.get(name) for name in names}
    try:
        for name in names:
            sys.modules[name] = reference_module(name)
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@lru_cache(maxsize=None)
def reference_module(name: str) -> ModuleType:
    """``solutions/<name>.py`` as a module (``ex3_model``, ``ex3_data``, ``ex3_ood`` or
    ``ex3_main``), loaded once."""
    path = SOLUTIONS / f"{name}.py"
    if not path.exists():
        raise GlyphEBMError(f"the reference file {path} is missing; the advanced chapter builds on it")
    with _flat_imports_resolve_to_reference(FLAT_IMPORTS.get(name, ())):
        return import_file(path, f"_glyph_ebm_reference_{name}")


def reference_model_class() -> type:
    """The exercise's ``CNNModel`` (``forward(x, y=None) = f(x) = -E(x)``, ``get_logits``)."""
    return reference_module("ex3_model").CNNModel


def reference_jem_class() -> type:
    """The exercise's Lightning ``JEM`` module (``px_step``, ``pyx_step``, ``training_step``)."""
    return reference_module("ex3_main").JEM
