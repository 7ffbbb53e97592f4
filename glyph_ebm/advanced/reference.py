"""The exercise's reference code (``solutions/``), imported by file path.

``solutions/ex3_*.py`` is the single source of truth of the architecture and the data module
(the same files :mod:`glyph_ebm.pretrained` builds its model from). They use flat,
script-style imports, so they are loaded here under private module names instead of being put
on ``sys.path``.
"""
from __future__ import annotations

from functools import lru_cache
from types import ModuleType

from ..course import SOLUTIONS, import_file
from ..errors import GlyphEBMError


@lru_cache(maxsize=None)
def reference_module(name: str) -> ModuleType:
    """``solutions/<name>.py`` as a module (``ex3_model``, ``ex3_data`` or ``ex3_ood``), loaded once."""
    path = SOLUTIONS / f"{name}.py"
    if not path.exists():
        raise GlyphEBMError(f"the reference file {path} is missing; the advanced chapter builds on it")
    return import_file(path, f"_glyph_ebm_reference_{name}")


def reference_model_class() -> type:
    """The exercise's ``CNNModel`` (``forward(x, y=None) = f(x) = -E(x)``, ``get_logits``)."""
    return reference_module("ex3_model").CNNModel
