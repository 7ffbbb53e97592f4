# glyph-ebm — every command sets up what it needs (a .venv in the repo) by itself.
#   make demo   train the reference (quick profile) into runs/demo and print where the figures are
#   make test   run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-fast template check-template bench glyphs clean help

help:
	@echo "make demo | make test | make template | make bench | make glyphs | make clean"

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

bench: $(STAMP)
	$(PY) benchmarks/sampler.py
	$(PY) benchmarks/time_to_quality.py

glyphs: $(STAMP)
	$(PY) -m glyph_ebm.glyphs --out docs/glyphs.png

clean:
	rm -rf runs .pytest_cache
