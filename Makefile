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

# When make started: the summary's wall time includes the set-up.
START := $(shell date +%s)

run: $(VENV)/.installed
	dvc repro
	dvc plots show --quiet --out dvc_plots
	python -m digits.summary --since $(START) --plots dvc_plots/index.html

test: $(VENV)/.installed-dev
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

clean:
	rm -rf $(VENV)

# A report of params, metrics and plots against BASE, in review/report.md: make review BASE=main
BASE ?= main
review: $(VENV)/.installed
	python -m digits.review $(BASE)

# Plain tutorial script vs the pipeline, same data (MNIST_DIR) and params: make bench [ARGS=--quick]
bench: $(VENV)/.installed
	python bench/bench.py $(ARGS)
