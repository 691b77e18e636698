# The two ways in: `make run` (set up, then dvc repro) and `make test` (set up, then pytest).
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
# Stages run `python` and `dvc` from the project's virtual environment.
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL := 2

PIP_INSTALL = $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: run test lint bench review clean

# The page template that lets `dvc plots show` render without network.
OFFLINE_HTML := .dvc/offline.html

run: $(VENV)/.installed $(OFFLINE_HTML)
	dvc repro

test: $(VENV)/.installed-dev $(OFFLINE_HTML)
	pytest

lint: $(VENV)/.installed-dev
	ruff check . && ruff format --check .

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

$(OFFLINE_HTML): $(VENV)/.installed
	python -m digits.render $@

clean:
	rm -rf $(VENV) $(OFFLINE_HTML)

# A report of params, metrics and plots against BASE, in review/report.md: make review BASE=main
BASE ?= main
review: $(VENV)/.installed $(OFFLINE_HTML)
	python -m digits.review $(BASE)

# Plain tutorial script vs the pipeline, same data (MNIST_DIR) and params: make bench [ARGS=--quick]
bench: $(VENV)/.installed
	python bench/bench.py $(ARGS)

# The draw-a-digit page, on this machine only unless told: make serve [PORT=8000] [HOST=127.0.0.1]
# (plain assignments: a HOST or PORT in the shell's environment does not count, the command line does)
HOST = 127.0.0.1
PORT = 8000
.PHONY: serve
serve: $(VENV)/.installed
	python -m digits.serve --host $(HOST) --port $(PORT)
