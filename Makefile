# Every target creates .venv and installs the project first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Which torch: TORCH_SPEC pins the release, TORCH_INDEX (empty by default) names the index it comes from.
# Empty: pip's own configuration decides (the project's dev machines keep a torch 2.13.0 CPU wheel on disk;
# on a plain Linux machine PyPI serves the CUDA build, which is what a GPU machine wants). CI sets
# TORCH_INDEX to PyTorch's CPU wheel index (.github/workflows/*.yml): CI has no GPU.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: install patchgen check-patchgen test test-gpu lint lint-workflows bench clean

# The patchgen distribution requires a transformers range (pyproject.toml); constraints.txt pins the
# one release this repository's generated files are made from.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

## Regenerate every generated/<model>/ file and its .diff from models/**/*_patch_gen_config.py
patchgen: install
	$(PY) -m patchgen.run_codegen --all --diff

## Fail when a committed generated file differs from a fresh regeneration
check-patchgen: install
	$(PY) -m patchgen.check_patchgen

## The drift check, lint, workflow lint, then the whole test suite (GPU tests skip on CPU)
test: check-patchgen lint lint-workflows
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-gpu: install
	$(PY) -m pytest -q -m gpu $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check patchgen models tests benchmarks examples
	$(PY) -m ruff format --check patchgen models tests benchmarks examples

## CI workflows: actionlint (syntax, expressions, shellcheck on every run: step) and zizmor's security
## audits at its strictest persona, offline (its online audits would need the GitHub API). Both are
## pinned in the test extra; shellcheck is named explicitly so every machine runs the same one.
lint-workflows: install
	$(VENV)/bin/actionlint -shellcheck=$(VENV)/bin/shellcheck -pyflakes= $(WORKFLOWS)
	$(VENV)/bin/zizmor --offline --persona=auditor --no-progress $(WORKFLOWS)

clean:
	rm -rf $(VENV) .pytest_cache
