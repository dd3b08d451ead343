VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

.PHONY: run test lint format install clean audit

## run: the service on the embedded default (Redis, worker and outbox built in)
run: $(STAMP)
	$(BIN)/pserve development.ini

## test: lint, then the whole test suite
test: $(STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## audit: known vulnerabilities in the installed dependencies, and bandit on the package
audit: $(STAMP)
	$(BIN)/pip-audit --skip-editable
	$(BIN)/bandit -r emailsvc

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[testing]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache .ruff_cache
