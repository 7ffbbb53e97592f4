# glyph-ebm — every command sets up what it needs (a .venv in the repo) by itself.
#   make demo   train the reference (quick profile) into runs/demo and print where the figures are
#   make test   run the whole test suite
# Instructors: make release (student version of exercise 3, leak-checked),
#              make autograde SUBMISSIONS=DIR (grade DIR/<student>/ with nbgrader)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-fast template check-template release autograde bench glyphs clean help

help:
	@echo "make demo | make test | make template | make release | make autograde SUBMISSIONS=DIR | make bench | make glyphs | make clean"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	# torch from the pinned wheel first (local on course machines), then the package itself
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	cd solutions && ../$(PY) ex3_main.py --profile quick --out ../runs/demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -ra

test-fast: $(STAMP)
	$(PY) -m pytest -ra -m "not slow"

template: $(STAMP)
	$(PY) -m glyph_ebm.cli template

check-template: $(STAMP)
	$(PY) -m glyph_ebm.cli template --check

release: $(STAMP)
	$(PY) -m glyph_ebm.cli release

autograde: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make autograde SUBMISSIONS=DIR  (DIR/<student>/ex3/ex3_*.py)"; exit 2; }
	$(PY) -m glyph_ebm.cli autograde "$(SUBMISSIONS)"

bench: $(STAMP)
	$(PY) benchmarks/sampler.py
	$(PY) benchmarks/time_to_quality.py
	$(PY) benchmarks/grading.py

glyphs: $(STAMP)
	$(PY) -m glyph_ebm.glyphs --out docs/glyphs.png

clean:
	rm -rf runs .pytest_cache autograde/release autograde/submitted autograde/autograded autograde/feedback \
	       autograde/gradebook.db autograde/grades.csv autograde/nbgrader.log
