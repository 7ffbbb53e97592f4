"""Autograding of exercise 3 with nbgrader (instructors only).

* :mod:`.notebook` - builds the graded notebook ``autograde/source/ex3/ex3.ipynb`` from its
  readable source ``autograde/ex3_source.py`` (visible checks + hidden tests);
* :mod:`.autograde` - the instructor's side: release, autograde a folder of submissions,
  grade table and feedback (all through the nbgrader command line);
* :mod:`.kit` - the student kit that ``make release`` writes (templates, released notebook, a
  wheel of the student library, pinned requirements, a students' README), leak-checked as a
  whole (:mod:`.kit_readme` holds the students' README text);
* :mod:`.leakguard` - checks that no solution code or hidden test reaches students.

What the graded notebook imports to run its checks (loading a student's files robustly,
running one task's checks, toy energies with known answers) is part of the student library,
:mod:`glyph_ebm.checks`, because students run the visible checks themselves. It holds no test
of its own: hidden tests exist only in the instructor's source notebook.
"""
