# Two commands set up a fresh machine: `make demo` and `make test` (each bootstraps .venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed
# Pinned, tested versions (see the file's header); without them pip can backtrack for half an hour.
CONSTRAINTS := .ci/constraints-3.11.txt

.PHONY: demo test lint typecheck unit docs compat compat-smoke mutation emulator reliability production-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[sql]"
	touch $@

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m airflow_provider_edgeinfer.demo

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_edgeinfer dags_examples tests benchmarks tools docs
	$(BIN)/ruff format --check airflow_provider_edgeinfer dags_examples tests benchmarks tools docs

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy tools
	$(BIN)/mypy benchmarks/*.py

unit: $(STAMP)
	$(BIN)/python -m pytest -q

# The documentation site (docs/, Sphinx + MyST + autodoc), from scratch (-E: autodoc does not see
# docstring changes incrementally), offline, warnings as errors.
docs: $(STAMP)
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

test: lint typecheck docs unit compat-smoke

# Older Airflow releases the provider supports, each in its own venv pinned by .ci/constraints-airflow-X.txt
# (resolved once with pip, then frozen; see docs/compat.md for what differs on each).
COMPAT_VERSIONS := 3.1 3.2
COMPAT_PACKAGES := pytest pytest-asyncio "moto[s3,server]" "apache-airflow-providers-amazon[s3fs]"
# The operators, triggers, sensors (their DAG tests), hooks and example DAGs.
COMPAT_TESTS := tests/operators tests/triggers tests/hooks tests/dags
# What `make test` runs on each older release: the hooks, operators (never pay twice, lineage) and
# triggers through their real code paths, without dag.test (see docs/compat.md for why), in CI's time.
COMPAT_SMOKE := tests/hooks tests/operators/test_never_pay_twice.py tests/operators/test_lineage.py \
	tests/triggers/test_inference_trigger.py tests/triggers/test_event_privacy.py \
	tests/triggers/test_end_from_trigger.py -k "not key_sent"

.venv-%/.installed: pyproject.toml .ci/constraints-airflow-%.txt
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/python -m pip install --quiet -c .ci/constraints-airflow-$*.txt -e ".[openlineage,sql,postgres]" $(COMPAT_PACKAGES)
	touch $@

compat: $(foreach v,$(COMPAT_VERSIONS),.venv-$(v)/.installed)
	set -e; for v in $(COMPAT_VERSIONS); do \
		echo "== Airflow $$v"; .venv-$$v/bin/python -m pytest -q $(COMPAT_TESTS); done

compat-smoke: $(foreach v,$(COMPAT_VERSIONS),.venv-$(v)/.installed)
	set -e; for v in $(COMPAT_VERSIONS); do \
		echo "== Airflow $$v"; .venv-$$v/bin/python -m pytest -q $(COMPAT_SMOKE); done

# Mutation testing of the code that is costly to get wrong (never pay twice, batch manifest,
# redaction, outputs, retries, job states); not part of `make test`. See tools/mutation.py.
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py --jobs 2 --fail-under 0.90

# Real Airflow processes and the emulator, with crashes injected (~3-5 min); see benchmarks/reliability/run.py.
reliability: $(STAMP)
	$(BIN)/python benchmarks/reliability/run.py

# Its own virtualenv, holding what a production deployment holds and no test tools: every task
# process imports the Airflow plugins of every installed package (a test-only one cost 0.6 s of CPU
# per task run), so the test extras would skew the figures.
PROD_VENV := .venv-production
PROD_STAMP := $(PROD_VENV)/.installed

$(PROD_STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PROD_VENV)/bin/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[production]"
	touch $@

# The same harness in the production shape: PostgreSQL, CeleryExecutor + Redis, two Celery workers,
# two schedulers, two triggerers (~15-20 min on 2 cores); not part of `make test`. Debian's
# redis-server is installed when missing (RUNLEVEL=1: the package must not start a system service).
production-check: $(PROD_STAMP)
	command -v redis-server >/dev/null || { apt-get update -q && \
		RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }
	$(PROD_VENV)/bin/python benchmarks/reliability/production.py $(ARGS)

emulator: $(DEMO_STAMP)
	$(BIN)/python -m airflow_provider_edgeinfer.emulator --host 127.0.0.1 --port 8765

clean:
	rm -rf $(VENV) $(PROD_VENV) $(foreach v,$(COMPAT_VERSIONS),.venv-$(v)) build *.egg-info docs/_build
