# wattflow: the two commands are `make demo` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install demo test lint typecheck unit stack-up stack-down stack-status bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install wattflow with its dev tools

demo: install ## set up, bring the native stack up and run the main job
	$(BIN)/wattflow demo

test: install lint ## set up and run the whole suite (starts real Kafka and QuestDB)
	$(BIN)/pytest

lint: install ## ruff, mypy and the import contracts (which room may import which)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install ## only the tests that need no server
	$(BIN)/pytest tests/unit

stack-up: install ## start the native Kafka + QuestDB stack
	$(BIN)/wattflow stack up

stack-down: install ## stop it
	$(BIN)/wattflow stack down

stack-status: install ## is it running?
	$(BIN)/wattflow stack status

bench: install ## run every benchmark (starts its own servers)
	$(BIN)/python -m benchmarks.run_all

clean: ## remove the virtual environment and local state (not the jar cache)
	rm -rf $(VENV) .wattflow .pytest_cache .mypy_cache .ruff_cache
