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

# What review needs (dvc, the Vega renderer) is a subset, installed first: the review
# job in CI stops there, without TensorFlow.
$(VENV)/.installed-review: requirements-review.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements-review.txt
	touch $@

$(VENV)/.installed: $(VENV)/.installed-review requirements.txt
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

$(OFFLINE_HTML): $(VENV)/.installed-review
	python -m digits.render $@

clean:
	rm -rf $(VENV) $(OFFLINE_HTML)

# A report of params, metrics and plots against BASE, in review/report.md: make review BASE=main
BASE ?= main
review: $(VENV)/.installed-review
	python -m digits.review $(BASE)

# Plain tutorial script vs the pipeline, same data (MNIST_DIR) and params: make bench [ARGS=--quick]
bench: $(VENV)/.installed
	python bench/bench.py $(ARGS)
