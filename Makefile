# Every target creates .venv and installs the project first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch 2.13.0's CPU wheel; a GPU machine can override: make install TORCH_SPEC="torch==2.13.0"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install patchgen check-patchgen test test-gpu lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

## Regenerate every generated/<model>/ file and its .diff from models/**/*_patch_gen_config.py
patchgen: install
	$(PY) -m patchgen.run_codegen --all --diff

## Fail when a committed generated file differs from a fresh regeneration
check-patchgen: install
	$(PY) -m patchgen.check_patchgen

## The drift check, lint, then the whole test suite (GPU tests skip on CPU)
test: check-patchgen lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-gpu: install
	$(PY) -m pytest -q -m gpu $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check patchgen models tests benchmarks examples
	$(PY) -m ruff format --check patchgen models tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache
