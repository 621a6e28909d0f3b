# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: install demo test lint format bench clean

install: $(STAMP) $(CHROMIUM)

# The browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
# CI runs as root with Debian's package registry reachable; elsewhere this fails loudly, and the
# browser tests fail too rather than skip.
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then echo "$(CHROMIUM) is missing: run 'sudo apt-get install -y chromium chromium-driver'" >&2; exit 1; fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver)

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
