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
# make upgrade-check VERSION=x.y.z: the release to try, in a scratch venv of its own
VERSION ?=
UPGRADE_DIR := .upgrade-check
UPGRADE_PY := $(UPGRADE_DIR)/venv/bin/python

.PHONY: install patchgen check-patchgen test test-gpu lint lint-workflows docs survey upgrade-check bench clean

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

## The drift check, lint, workflow lint, then the whole test suite (GPU tests skip on CPU), one pytest worker
## per CPU (pytest-xdist), each test file on one worker: a file's module fixtures (a multi-rank run shared by
## its tests) are built once. PYTEST_JOBS=0 runs everything in this process.
PYTEST_JOBS ?= auto
test: check-patchgen lint lint-workflows docs
	$(PY) -m pytest -q --durations=20 -n $(PYTEST_JOBS) --dist loadfile $(PYTEST_ARGS)

test-gpu: install
	$(PY) -m pytest -q -m gpu $(PYTEST_ARGS)

## The docs site (docs/, mkdocs.yml) built into site/ with warnings as errors (strict: true)
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --quiet --strict

lint: install
	$(PY) -m ruff check patchgen models tests benchmarks examples
	$(PY) -m ruff format --check patchgen models tests benchmarks examples

## CI workflows: actionlint (syntax, expressions, shellcheck on every run: step) and zizmor's security
## audits at its strictest persona, offline (its online audits would need the GitHub API). Both are
## pinned in the test extra; shellcheck is named explicitly so every machine runs the same one.
lint-workflows: install
	$(VENV)/bin/actionlint -shellcheck=$(VENV)/bin/shellcheck -pyflakes= $(WORKFLOWS)
	$(VENV)/bin/zizmor --offline --persona=auditor --no-progress $(WORKFLOWS)

## The scaffold over every causal-LM model type of the installed transformers, each compared with stock
## (docs/survey.md). Slow (tens of minutes): not part of `make test`. SURVEY_ARGS: e.g. --only granite,helium
SURVEY_ARGS ?= --jobs 2 --timeout 150
survey: install
	OMP_NUM_THREADS=1 $(PY) -m patchgen.commands.survey $(SURVEY_ARGS)

## Try a transformers release before moving to it: in a scratch venv ($(UPGRADE_DIR)/venv; .venv is left
## alone) with this checkout installed and transformers==$(VERSION) (constraints.txt not applied, the
## supported range overridden), run the upgrade report and the equivalence harness. Their outputs go to
## $(UPGRADE_DIR)/report.txt and equivalence.txt; both always run; the exit status is non-zero when either
## fails. The upstream-canary workflow runs this weekly with the newest release.
upgrade-check:
	@test -n "$(VERSION)" || { echo "error: name the release to try: make upgrade-check VERSION=x.y.z" >&2; exit 2; }
	test -x $(UPGRADE_PY) || $(PYTHON) -m venv $(UPGRADE_DIR)/venv
	$(UPGRADE_PY) -m pip install --quiet --upgrade pip
	$(UPGRADE_PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(UPGRADE_PY) -m pip install --quiet -e ".[test]"
	@# a second step: outside the range, one resolve with the project would refuse the release (pip then
	@# reports the conflict with patchgen's requirement and installs it, which is the point here)
	$(UPGRADE_PY) -m pip install --quiet "transformers==$(VERSION)"
	@export PATCHGEN_ALLOW_UNSUPPORTED_TRANSFORMERS=1; unset PYTHONPATH; \
	$(UPGRADE_PY) -m patchgen.upgrade_report > $(UPGRADE_DIR)/report.txt 2>&1; report=$$?; \
	$(UPGRADE_PY) -m tests.equivalence > $(UPGRADE_DIR)/equivalence.txt 2>&1; equivalence=$$?; \
	echo "transformers $$($(UPGRADE_PY) -c 'import transformers; print(transformers.__version__)')"; \
	echo "upgrade report: exit $$report ($(UPGRADE_DIR)/report.txt): $$(tail -n 1 $(UPGRADE_DIR)/report.txt)"; \
	echo "equivalence:    exit $$equivalence ($(UPGRADE_DIR)/equivalence.txt): $$(tail -n 1 $(UPGRADE_DIR)/equivalence.txt)"; \
	test $$report -eq 0 && test $$equivalence -eq 0

clean:
	rm -rf $(VENV) .pytest_cache $(UPGRADE_DIR)
