"""Autograding of exercise 3 with nbgrader.

* :mod:`.harness`  - what the graded notebook imports: loading a student's ``ex3_*.py`` files
  robustly, running one task's checks and turning every failure into a short message;
* :mod:`.toys`     - small energy models with known answers that the checks use;
* :mod:`.notebook` - builds the graded notebook ``autograde/source/ex3/ex3.ipynb`` from its
  readable source ``autograde/ex3_source.py``;
* :mod:`.autograde` - the instructor's side: release, autograde a folder of submissions,
  grade table and feedback (all through the nbgrader command line);
* :mod:`.leakguard` - checks that no solution code or hidden test reaches students.

No hidden test lives in this package: hidden tests exist only in the instructor's source
notebook, so installing ``glyph_ebm`` reveals nothing a student could grade against.
"""
