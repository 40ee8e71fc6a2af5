# Buttress: every target sets itself up on a fresh machine (venv, package, system packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSDEPS := scripts/sysdeps.sh

.PHONY: demo test bench lint typecheck pytest sysdeps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,dev,bench]'
	@touch $(STAMP)

sysdeps:
	@bash $(SYSDEPS)

demo: $(STAMP)
	$(VENV)/bin/buttress lab examples/shop

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src/buttress

# Two passes: everything in parallel on two workers, then the timing-sensitive real-system tests
# (the shop lab) alone, so their latency figures are not measured on a starved machine.  The serial
# pass runs even when the parallel one failed, so the counts are complete; either failing fails.
pytest: $(STAMP) sysdeps
	@status=0; \
	$(VENV)/bin/pytest -n 2 -q -m "not serial" || status=$$?; \
	$(VENV)/bin/pytest -q -m serial || status=$$((status ? status : $$?)); \
	exit $$status

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
