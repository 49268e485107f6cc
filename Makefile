# Quick start: `make demo` (train the notebook's classifier) and `make test` (the whole test suite).
# Both create .venv themselves with the first Python 3.11+ found. The other targets:
#   make test-fast   the tests not marked slow (about 20 s)
#   make lint        ruff (lint and format check), mypy over src/, import-linter (the package's layers)
#   make dist        build sdist + wheel with the lowest declared setuptools, twine check, smoke-test the wheel
#   make bench       nablanet against PyTorch (CPU) on the same work
#   make notebooks   execute examples/*.ipynb and write their outputs (the tests fail on stale ones)
#   make docs        build the documentation site into site/ (offline, --strict: a warning fails it)
#   make playground  the playground (nablanet serve) on http://127.0.0.1:8000/: draw digits, train on toy data
#   make format      apply ruff's formatting and safe fixes

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint format dist bench notebooks docs playground clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each stamp records that an install is current; editing pyproject.toml redoes it.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

$(VENV)/.installed-lint: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lint]'
	touch $@

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

$(VENV)/.installed-playground: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[playground]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# The version line says which code runs the array work: numba's compiled loops (a dependency where numba has
# wheels), or the NumPy code and why.
demo: $(VENV)/.installed
	$(BIN)/nablanet --version
	$(BIN)/nablanet train

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow"

lint: $(VENV)/.installed-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed-lint
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

dist:
	bash .ci/dist

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench.py

notebooks: $(VENV)/.installed-test
	$(BIN)/python tests/notebook_outputs.py

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	$(BIN)/python docs/check_site.py site

playground: $(VENV)/.installed-playground
	$(BIN)/nablanet serve

clean:
	rm -rf $(VENV) runs dist build site .cache
