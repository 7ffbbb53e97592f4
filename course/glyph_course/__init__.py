"""glyph-course: the instructors' and developers' tooling of the glyph-ebm course.

Never part of what students receive. It sits above the student library (:mod:`glyph_ebm`) and
the exercise, and reaches exercise code (the reference ``solutions/`` or a student's folder)
only through :func:`glyph_ebm.exercise.load_exercise` (see :mod:`.reference`):

* :mod:`.template` - the student template, generated from the reference by stripping its
  marked solution blocks;
* :mod:`.grading` - the graded notebook, release of the student kit, leak guard, autograding;
* :mod:`.advanced`, :mod:`.compression` - the extension chapters, built on the exercise's own
  ``MCMCSampler`` and ``JEM``;
* :mod:`.metrics`, :mod:`.pretrained`, :mod:`.toy2d` - the evaluation kit, the small pretrained
  model of the notebooks, the 2D toy of the theory notebook;
* :mod:`.cli` - ``glyph-course``, the instructors' command.
"""
