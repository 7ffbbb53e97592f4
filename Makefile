# glyph-ebm — every command sets up what it needs (a .venv in the repo) by itself.
#   make demo   train the reference (quick profile) into runs/demo and print where the figures are
#   make test   run the whole test suite
# Instructors: make release (student kit of exercise 3 in autograde/kit/, leak-checked),
#              make autograde SUBMISSIONS=DIR (grade DIR/<student>/ with nbgrader)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-fast template check-template release autograde pretrained judge book chromium bench glyphs clean help

help:
	@echo "make demo | make test | make book | make pretrained | make template | make release | make autograde SUBMISSIONS=DIR | make bench | make glyphs | make clean"

$(STAMP): pyproject.toml course/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	# torch from the pinned wheel first (local on course machines), then the student library
	# (this folder) and the course tooling (course/), both editable
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e . -e "./course[test]"
	@touch $(STAMP)

setup: $(STAMP)

# MathJax for the book, fetched once from the npm registry into the build folder (not into
# book/_static, where jupyter-book would inject every .js file into every page)
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_build/mathjax_local/mathjax/es5/tex-chtml.js
$(MATHJAX):
	@command -v npm >/dev/null || { echo "make book needs npm (Node.js) once, to fetch MathJax $(MATHJAX_VERSION) from the npm registry"; exit 2; }
	rm -rf book/_build/mathjax_local && mkdir -p book/_build/mathjax_local/mathjax
	cd book/_build/mathjax_local && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null \
	  && tar xzf mathjax-$(MATHJAX_VERSION).tgz && mv package/es5 package/LICENSE mathjax/ \
	  && rm -rf package mathjax-$(MATHJAX_VERSION).tgz

# Debian's Chromium for the book's browser test (skipped with a message where it cannot be installed)
chromium:
	@command -v chromium >/dev/null || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: could not install Debian's chromium; the browser test of the book will be skipped"; }

demo: $(STAMP)
	cd solutions && ../$(PY) ex3_main.py --profile quick --out ../runs/demo --overwrite

test: $(STAMP) $(MATHJAX) chromium
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -ra --durations=25

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -ra -m "not slow"

template: $(STAMP)
	$(PY) -m glyph_course template

check-template: $(STAMP)
	$(PY) -m glyph_course template --check

# the small pretrained JEM used by the notebooks and the book (quick profile, seed 0, the
# unconditional JEM: the chapters sample, distil and restore with its marginal q(x), which the
# quick profile's class-conditional JEM does not train); its figures are rewritten into the
# generated blocks of README.md and docs/measurements.md (the book reads them from the file)
pretrained: $(STAMP)
	cd solutions && ../$(PY) ex3_main.py --profile quick --mode jem --seed 0 --out ../runs/pretrained --overwrite
	$(PY) -m glyph_course pretrained runs/pretrained pretrained/jem_quick.pt --figures README.md docs/measurements.md

# the judge of generated glyphs that ships with the student library (glyph_ebm/judge.pt)
judge: $(STAMP)
	$(PY) -m glyph_course judge

# the course website, offline: notebooks executed (cached in book/_build/.jupyter_cache), the
# shipped model's figures read from pretrained/jem_quick.pt; everything it writes is in book/_build
book: $(STAMP) $(MATHJAX)
	$(VENV)/bin/jupyter-book build book --builder html
	@echo "open book/_build/html/index.html"

# nbgrader's release (autograde/release/ex3, used for grading) and the student kit built from it:
# autograde/kit/ex3/ (templates, notebook, the student library's wheel, pinned requirements.txt and
# environment.yml, README.md) and autograde/kit/ex3-kit.zip, all leak-checked (inside the wheel and zip too)
release: $(STAMP)
	$(PY) -m glyph_course release

autograde: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make autograde SUBMISSIONS=DIR [JOBS=N] [SCHEDULER=tcp://host:8786]  (DIR/<student>/ex3/ex3_*.py)"; exit 2; }
	$(PY) -m glyph_course autograde "$(SUBMISSIONS)" $(if $(JOBS),--jobs $(JOBS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

bench: $(STAMP)
	$(PY) benchmarks/sampler.py
	$(PY) benchmarks/time_to_quality.py
	$(PY) benchmarks/grading.py

glyphs: $(STAMP)
	$(PY) -m glyph_ebm.glyphs --out docs/glyphs.png

clean:
	rm -rf runs .pytest_cache autograde/release autograde/kit autograde/submitted autograde/autograded autograde/feedback \
	       autograde/results autograde/exports autograde/gradebook.db autograde/grades.csv autograde/nbgrader.log
