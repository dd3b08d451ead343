VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
# One stamp per set of packages: make run installs what running needs, make test adds
# what testing needs (pytest, linters, Flower, WeasyPrint for the PDF tests, ...).
RUN_STAMP = $(VENV)/.installed-run
TEST_STAMP = $(VENV)/.installed-testing

.PHONY: help run test test-unit test-faults lint format install install-run clean audit

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## /  /'

## run: the service on the embedded default (Redis, worker and outbox built in)
run: $(RUN_STAMP)
	@# The metrics folder holds the counts of one run (files named by process id).
	rm -rf var/metrics
	$(BIN)/pserve development.ini

## test: lint, then the whole suite with coverage (floor in pyproject.toml), faults included
test: $(TEST_STAMP) lint
	$(BIN)/pytest --cov --cov-report=term

## test-faults: the fault-injection tests alone (Redis, relay and workers killed): minutes
test-faults: $(TEST_STAMP)
	$(BIN)/pytest tests/faults

## test-unit: the unit tests alone, without coverage (quick: about half a minute)
test-unit: $(TEST_STAMP)
	$(BIN)/pytest tests --ignore=tests/functional

## lint: ruff check and ruff format --check
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## format: rewrite the code as ruff formats it, and apply ruff's safe fixes
format: $(TEST_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## audit: known vulnerabilities in the dependencies (fails if it cannot check them), bandit
audit: $(TEST_STAMP)
	bash .ci/audit $(BIN)

## install-run: the virtualenv with the package alone (what make run needs)
install-run: $(RUN_STAMP)

## install: the virtualenv with the package and its testing extra
install: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The testing extra includes the package's own requirements: the run stamp holds too.
$(TEST_STAMP): setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[testing,pdf]"
	touch $@ $(RUN_STAMP)

COURSE_VENV = bench/.venv-course
COURSE_STAMP = $(COURSE_VENV)/.installed

.PHONY: bench-install bench-p1 bench-p2 bench-p3 bench-p4 bench-p5 bench-dkim bench-aof
.PHONY: bench-suppressions bench-verp

## bench-install: the course's reference app into bench/.venv-course (tools: apt-get install postfix wrk nginx)
bench-install: $(TEST_STAMP) $(COURSE_STAMP)

$(COURSE_STAMP): bench/course/requirements.txt
	$(PYTHON) -m venv $(COURSE_VENV)
	$(COURSE_VENV)/bin/pip install --quiet --upgrade pip
	$(COURSE_VENV)/bin/pip install --quiet -r bench/course/requirements.txt
	touch $(COURSE_STAMP)

## bench-p1: P1, a 10,000-recipient job into smtp-sink, emailsvc vs the course vs smtp-source
bench-p1: bench-install
	$(BIN)/python -m bench.run p1

## bench-p2: P2, the time of a POST of 10,000 recipients, emailsvc vs the course
bench-p2: bench-install
	$(BIN)/python -m bench.run p2

## bench-p3: P3, 1-recipient POSTs at 10 connections, emailsvc behind nginx vs the course
bench-p3: bench-install
	$(BIN)/python -m bench.run p3

## bench-p4: P4, a job into a relay answering each message after 10 ms, emailsvc vs the course
bench-p4: bench-install
	$(BIN)/python -m bench.run p4

## bench-p5: P5, Redis bytes per queued recipient, and a worker's memory over 1,000,000 recipients
bench-p5: bench-install
	$(BIN)/python -m bench.run p5

## bench-dkim: the cost per message of DKIM signing, rsa-2048 and ed25519 (one process, no network)
bench-dkim: $(TEST_STAMP)
	$(BIN)/python -m bench.dkim

## bench-aof: does a SIGKILLed Redis keep what it acknowledged? appendfsync everysec against always
bench-aof: $(TEST_STAMP)
	$(BIN)/python -m bench.aof_durability

## bench-suppressions: a chunk's suppression check (one HMGET) and a broadcast message's unsubscribe link
bench-suppressions: $(TEST_STAMP)
	$(BIN)/python -m bench.suppressions

## bench-verp: the cost per message of a VERP envelope sender (one process, no network)
bench-verp: $(TEST_STAMP)
	$(BIN)/python -m bench.verp

## clean: remove the virtualenv, var/ and every cache
clean:
	rm -rf $(VENV) var *.egg-info .pytest_cache .ruff_cache .schemathesis .coverage .coverage.*
