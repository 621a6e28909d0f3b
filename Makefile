# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes; safe to run twice.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: install
	$(BIN)/ghl-pipeline demo

lint: install
	$(BIN)/ruff check ghl_pipeline ghl_pipeline_tests benchmarks
	$(BIN)/ruff format --check ghl_pipeline ghl_pipeline_tests benchmarks

format: install
	$(BIN)/ruff format ghl_pipeline ghl_pipeline_tests benchmarks
	$(BIN)/ruff check --fix ghl_pipeline ghl_pipeline_tests benchmarks

test: install lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_upsert.py

clean:
	rm -rf $(VENV) .pgdata .dagster_home
