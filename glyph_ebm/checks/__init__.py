"""The checks students run in ``ex3.ipynb``: :mod:`.harness` (load the student's files, run one
task's checks, turn every failure into a message the student can act on) and :mod:`.toys`
(small energies with known answers). The hidden tests of grading live in the instructor's copy
of the notebook, never here."""
