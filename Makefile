# flowstage — every target sets itself up: a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STORE  ?= demo-store

.PHONY: help setup demo test test-fast lint bench bench-quick clean

help:
	@echo "make demo         set up, then ingest sample_logs/, replay the lesson's policies, report"
	@echo "make test         set up, then run the whole test suite (what CI runs)"
	@echo "make bench-quick  the benchmark suite at small sizes (< 5 minutes)"
	@echo "make bench        the benchmark suite at full size"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs the package with its pinned dependency ranges; re-runs when pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,spark]'
	touch $@ $(VENV)/.installed-base

setup: $(VENV)/.installed-base

# The whole loop on the lesson's cluster: ingest the logs, replay them against the lesson's policies, report;
# the full report (all sections, charts) goes to $(STORE)/report.html and the terminal ends on what would break.
demo: $(VENV)/.installed-base
	rm -rf $(STORE)
	$(BIN)/flowstage ingest sample_logs/logs --store $(STORE)
	$(BIN)/flowstage replay --store $(STORE) --policies sample_logs/policies/lesson.yaml \
		--namespaces sample_logs/inventory/namespaces.yaml --pods sample_logs/inventory/pods.yaml
	$(BIN)/flowstage report --store $(STORE) --format html --output $(STORE)/report.html
	$(BIN)/flowstage report --store $(STORE) would_break

test: $(VENV)/.installed-test
	$(BIN)/ruff check flowstage tests bench
	$(BIN)/python -m pytest -q -n auto --dist loadfile

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow and not spark"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check flowstage tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench --size full

bench-quick: $(VENV)/.installed-test
	$(BIN)/python -m bench --size quick

clean:
	rm -rf $(VENV) $(STORE) bench/data bench/out .pytest_cache .hypothesis
