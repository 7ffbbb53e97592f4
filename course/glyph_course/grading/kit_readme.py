"""The students' ``README.md`` of the kit (a template; :mod:`.kit` fills in the ``$names``).

Everything that depends on the release (file names, pinned versions, the tasks and where they
are, the message a missing task prints) is filled in from the kit's own files when
``make release`` runs, so the text cannot drift from what students receive.
"""
from string import Template

README = Template("""\
# Exercise 3: Energy-Based Models and JEM on printed glyphs

This folder is everything you need for exercise 3:

$files

## 1. Install (once)

You need Python $python. Make a fresh virtual environment **in this folder** and install
the pinned packages into it (PyTorch is the large one; the first install takes a few minutes):

```bash
cd ex3
python3 -m venv .venv                # Python $python
source .venv/bin/activate            # Windows: .venv\\Scripts\\activate
pip install -r requirements.txt
```

With conda instead: `conda env create -f environment.yml`, then `conda activate $env_name`
(same packages, same versions).

`requirements.txt` installs the course's support library `glyph_ebm` from the wheel in this
folder (data, training loop, figures, the checks of the notebook; you do not change it) and:

$pins

Check the installation with `python ex3_main.py --help`.

## 2. Implement the tasks

The tasks are the places where the files raise `NotImplementedError`; the message says what
to compute:

| task | file | function |
|---|---|---|
$tasks

## 3. Run the checks: `ex3.ipynb`

```bash
jupyter lab ex3.ipynb
```

Run all cells (*Kernel → Restart & Run All*). The notebook imports your `ex3_*.py` files
from this folder. Each test cell runs the sanity checks of one task and prints
`... sanity checks passed`, or stops with a message saying what was expected and what your
code produced. When your work is graded, hidden tests check each task more thoroughly, so
passing the sanity checks does not guarantee full marks. Do not edit the cells: edited or
deleted cells are reported and replaced by the original ones before grading.

## 4. Train, sample, detect OOD: `python ex3_main.py`

```bash
python ex3_main.py --profile smoke     # a few steps on the small glyph set: seconds, a first try
python ex3_main.py --profile quick     # about 5 minutes on 2 CPU cores: a JEM worth looking at
```

The first run generates the glyph images once (into `~/.cache/glyph-ebm`, or the folder
`GLYPH_EBM_CACHE` names). A run writes `runs/<profile>/`: `metrics.json` (accuracy, OOD
AUROC), the figures `samples.png`, `generation_chain.png`, `ood_hist.png`, `roc.png`, and
`checkpoints/last.ckpt` (`--out DIR` picks another folder, `--resume` continues a run,
`--overwrite` starts it afresh). `python ex3_main.py --help` lists every option.

## 5. Error messages

Problems are reported in one line starting with `error:`, never with a traceback, and the
exit status says which kind it is:

* a task you have not implemented yet (exit status $exit_not_implemented), naming the task, its hint and where it is:

  ```
  $not_implemented
  ```

* something you can fix yourself, such as a wrong path, an unknown option or a checkpoint that
  does not fit (exit status $exit_user_error): the message names the problem and what to do;
* Ctrl-C (exit status $exit_interrupted): the message says how to continue (`--resume`).

A traceback means a bug in your own code: it ends with the line of your file where it
happened.

## 6. Hand in

Hand in the exercise files $handin, all of them, with these names.
The notebook may come too, its cells unchanged (the grader brings its own copy). Before you
hand in, run all cells of `ex3.ipynb` once more.
""")
