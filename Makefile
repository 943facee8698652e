# The checks the README's test command runs: lint, format, types, tests.
PYTHON ?= python3

.PHONY: check lint types test

check: lint types test

lint:
	$(PYTHON) -m ruff check ferryman tests benchmarks
	$(PYTHON) -m ruff format --check ferryman tests benchmarks

types:
	$(PYTHON) -m mypy

test:
	$(PYTHON) -m pytest -q
