"""glyph-ebm: the student library of a course unit on Energy-Based Models and Joint Energy
Models on printed glyphs.

It holds what the exercise files (``ex3_*.py``) use and what students do not write themselves:
the embedded glyph data, the loader for real scans, the OOD sets, plots, the configuration, the
trainer and the main job (checkpoints, divergence guard, resume), the loader of exercise files
(:mod:`glyph_ebm.exercise`) and the checks that ``ex3.ipynb`` runs (:mod:`glyph_ebm.checks`). It
implements none of the exercise's tasks and never imports the course tooling (``glyph_course``).
Sign convention everywhere: a model's ``forward`` returns ``f(x) = -E(x)``.
"""

__version__ = "0.1.0"
