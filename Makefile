# Embedrank developer commands. `make test` is what CI runs; it installs everything it needs into .venv.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install serve test lint typecheck cfn-lint sam-validate unit bench clean

$(STAMP): pyproject.toml layers/embedrank/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required (python3.12 on PATH or under pyenv)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The malloc settings are the Lambda functions' own (template.yaml): freed memory stays in the heap.
MALLOC_ENV := MALLOC_TRIM_THRESHOLD_=134217728 MALLOC_MMAP_THRESHOLD_=16777216

serve: $(STAMP)
	HOST=$(HOST) PORT=$(PORT) $(MALLOC_ENV) $(BIN)/python -m embedrank_tools.local

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

# SAM CLI in a venv of its own: its translator pins a pydantic older than the app's. `sam validate` translates the
# template as `sam deploy` would (both deployment modes: they are conditions of one template), `--lint` runs cfn-lint.
SAM_VENV := .venv-sam
SAM_CLI := aws-sam-cli==1.170.0
SAM_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=validate AWS_SECRET_ACCESS_KEY=validate SAM_CLI_TELEMETRY=0

$(SAM_VENV)/.installed: Makefile
	@test -n "$(PYTHON)" || { echo "Python 3.12 is required (python3.12 on PATH or under pyenv)"; exit 1; }
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet '$(SAM_CLI)'
	touch $@

sam-validate: $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --template template.yaml
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --template template.yaml

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck cfn-lint sam-validate unit

bench: $(STAMP)
	$(MALLOC_ENV) $(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .mypy_cache .ruff_cache
