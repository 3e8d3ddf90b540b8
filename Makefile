# Yardstick: two commands first. `make run` serves the whole system with a demo city;
# `make test` sets up everything it needs (venv, Kafka, PostgreSQL) and runs every test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup lint unit integration up down bench schemas clean kafka postgres

run: setup
	$(BIN)/yardstick run

test: setup
	bash scripts/test.sh

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) ..."; $(PYTHON) -m venv $(VENV); }
	@echo "installing pinned dependencies from PyPI into $(VENV) (constraints.txt) ..."
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy shared/yardstick services/feedback-intake/feedback_intake services/target-tracker/target_tracker \
		services/scoring/scoring services/notices/notices
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest -m "not integration" -q

integration: setup
	bash scripts/test.sh -m integration

# The four services as separate processes on real Kafka and PostgreSQL.
up: setup
	bash scripts/up.sh start

down:
	bash scripts/up.sh stop

kafka:
	bash deploy/kafka.sh start

postgres:
	bash deploy/postgres.sh start

# Every benchmark, then a summary; `make bench BENCH_ARGS=--quick` runs each briefly (a smoke test).
bench: setup
	bash scripts/bench.sh $(BENCH_ARGS)

schemas: setup
	$(BIN)/yardstick schemas write

clean: down
	rm -rf .data
