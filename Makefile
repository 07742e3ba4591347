# byflyt: two commands do everything on a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export BYFLYT_DATA_DIR ?= $(CURDIR)/.byflyt
KAFKA_LIBS := $(BYFLYT_DATA_DIR)/kafka/libs
MVN_FLAGS := -q -B -f deploy/kafka/pom.xml

.PHONY: install install-demo install-python install-kafka install-system install-system-demo test lint types pytest demo bench chaos clean

install: install-system install-python install-kafka ## everything the tests and the benchmarks need

install-demo: install-system-demo install-python install-kafka ## only what the demo needs (no root when Java and Maven are there)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install-python: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'

# Idempotent: the jars land once; a marker holds the pom's hash so a second run downloads nothing.
install-kafka: $(KAFKA_LIBS)/.pom-sha
$(KAFKA_LIBS)/.pom-sha: deploy/kafka/pom.xml
	mkdir -p $(KAFKA_LIBS)
	mvn $(MVN_FLAGS) dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(KAFKA_LIBS)
	sha256sum deploy/kafka/pom.xml > $@

# Java and Maven (the demo's broker), plus PostgreSQL, Prometheus/promtool/Alertmanager and
# Chromium for the tests, from Debian; each only when missing.
install-system:
	deploy/install-system.sh test

install-system-demo:
	deploy/install-system.sh demo

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the package as it is installed (byflyt.streams is streams/, …): without the tree of
# links that deploy/typed_tree.py lays out, every import across the packages would be Any.
types:
	$(BIN)/python deploy/typed_tree.py build/typecheck
	MYPYPATH=build/typecheck $(BIN)/mypy -p byflyt -p bench

pytest:
	$(BIN)/python -m pytest

test: install lint types pytest

demo: install-demo
	$(BIN)/byflyt demo

bench: install
	$(BIN)/python -m bench

# Random, bounded fault schedules (kill -9, SIGSTOP, broker restart, database stop) over the fault
# tests' workload; prints `schedules N, lost 0, doubled 0` or the first schedule that broke and its
# seed (replay it with SCHEDULES=1 SEED=that). Not part of `make test`.
SCHEDULES ?= 5
chaos: install
	$(BIN)/python -m tests.faults.chaos --schedules $(SCHEDULES) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) build dist *.egg-info
