"""glyph-ebm: a course unit on Energy-Based Models and Joint Energy Models on printed glyphs.

The exercise itself lives in ``solutions/`` (reference) and ``ex3/`` (student template); this
package holds everything that is not part of the exercise: the embedded glyph data, the folder
loader for real scans, OOD sets, plots, metrics, training guards and the course tooling.
Sign convention everywhere: a model's ``forward`` returns ``f(x) = -E(x)``.
"""

__version__ = "0.1.0"
