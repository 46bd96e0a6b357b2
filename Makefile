# Two commands set up a fresh machine: `make demo` and `make test` (each bootstraps .venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed
# Pinned, tested versions (see the file's header); without them pip can backtrack for half an hour.
CONSTRAINTS := .ci/constraints-3.11.txt

.PHONY: demo test lint typecheck unit mutation emulator reliability production-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m airflow_provider_edgeinfer.demo

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_edgeinfer dags_examples tests benchmarks tools
	$(BIN)/ruff format --check airflow_provider_edgeinfer dags_examples tests benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy tools
	$(BIN)/mypy benchmarks/*.py

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# Mutation testing of the code that is costly to get wrong (never pay twice, batch manifest,
# redaction, outputs, retries, job states); not part of `make test`. See tools/mutation.py.
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py --jobs 2 --fail-under 0.90

# Real Airflow processes and the emulator, with crashes injected (~3-5 min); see benchmarks/reliability/run.py.
reliability: $(STAMP)
	$(BIN)/python benchmarks/reliability/run.py

PROD_STAMP := $(VENV)/.installed-production

$(PROD_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,production]"
	touch $@

# The same harness in the production shape: PostgreSQL, CeleryExecutor + Redis, two Celery workers,
# two schedulers, two triggerers (~15-20 min on 2 cores); not part of `make test`. Debian's
# redis-server is installed when missing (RUNLEVEL=1: the package must not start a system service).
production-check: $(PROD_STAMP)
	command -v redis-server >/dev/null || { apt-get update -q && \
		RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }
	$(BIN)/python benchmarks/reliability/production.py $(ARGS)

emulator: $(DEMO_STAMP)
	$(BIN)/python -m airflow_provider_edgeinfer.emulator --host 127.0.0.1 --port 8080

clean:
	rm -rf $(VENV) build *.egg-info
