"""nbgrader configuration of the glyph-ebm course (exercise 3).

Run nbgrader from this folder, or use the Makefile (`make release`,
`make autograde SUBMISSIONS=DIR`), which also adds the student templates to the release,
runs the leak guard and writes the grade table.
"""
import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "glyph-ebm"

# Per-cell time limit of autograding. nbgrader's own Execute preprocessor reads this option
# (ExecutePreprocessor.timeout is NOT used by `nbgrader autograde`). When a cell runs past it,
# the kernel is interrupted and only that cell fails; the rest of the notebook still runs.
c.Execute.timeout = int(os.environ.get("GLYPH_EBM_CELL_TIMEOUT", "30"))
c.Execute.interrupt_on_timeout = True

# A student who deletes a test cell gets it back (and the deletion is reported).
c.OverwriteCells.add_missing_cells = True

# nbgrader's feedback keeps hidden tests in the HTML it sends to students; remove them.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
