"""Compressing trained energy models (course extension; see the compression report in the
course materials): quantization, pruning and distillation.

Model-agnostic: every function takes an ``nn.Module`` whose ``forward(x, y=None)`` returns
``f(x) = -E(x)``. Evaluation goes through :mod:`glyph_course.metrics`.
"""
