# The checks the README's test command runs: lint, format, types, tests.
PYTHON ?= python3

.PHONY: check lint types test test-pure

check: lint types test test-pure

lint:
	$(PYTHON) -m ruff check ferryman tests benchmarks setup.py
	$(PYTHON) -m ruff format --check ferryman tests benchmarks setup.py

types:
	$(PYTHON) -m mypy

test:
	$(PYTHON) -m pytest -q

# The compiled hot path's modules again, run from their sources (setup.py, ferryman/_compiled.py):
# both ways must behave the same. (PYTEST_ADDOPTS emptied: a report it asks for is the full run's.)
test-pure:
	FERRYMAN_PURE_PYTHON=1 PYTEST_ADDOPTS= $(PYTHON) -m pytest -q tests/proxy tests/server
