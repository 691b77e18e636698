# The two ways in: `make run` (set up, then dvc repro) and `make test` (set up, then pytest).
# Both create .venv on first use from the pinned lock (requirements.lock, requirements-dev.lock).
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
# Stages run `python` and `dvc` from the project's virtual environment.
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL := 2
# Let Python cache compiled modules in .venv (some shells turn it off): without the cache,
# every stage would compile TensorFlow's and DVC's Python anew (TensorFlow: 4 s -> 9 s).
export PYTHONDONTWRITEBYTECODE :=

UV_VERSION := 0.13.9

.PHONY: setup run test lint lock bench review clean

# When make started: the summary's wall time includes the set-up.
START := $(shell date +%s)

setup: $(VENV)/.installed

# dvc repro's options in ARGS: make run ARGS=--force runs every stage again
run: $(VENV)/.installed
	dvc repro $(ARGS)
	dvc plots show --quiet --out dvc_plots
	python -m digits.reporting.summary --since $(START) --plots dvc_plots/index.html

# The suite; pytest options in ARGS: make test ARGS="-m mnist" (with MNIST_DIR: the full-MNIST tests)
test: $(VENV)/.installed-dev
	pytest $(ARGS)

lint: $(VENV)/.installed-dev
	ruff check . && ruff format --check .

# Set-up: .venv with exactly the pinned versions of the lock, and this project installed in
# it (editable), so .venv/bin/digits-predict and the other commands work without activating
# it. uv does this in seconds: the uv on PATH, else one pip installs into .venv; pip alone is
# the fallback. Either shows its progress.
define install
	@echo "setup: installing $(1) into $(VENV) (the first time on a machine: $(2) to download)"
	@if ! command -v uv >/dev/null; then \
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) 2>/dev/null; \
	fi; \
	if command -v uv >/dev/null; then \
	  test -x $(BIN)/python || uv venv --quiet $(VENV); \
	  set -o pipefail; VIRTUAL_ENV=$(VENV) uv pip install --requirement $(1) 2>&1 | grep -v '^ [-+~] ' \
	    && VIRTUAL_ENV=$(VENV) uv pip install --quiet --no-deps --editable .; \
	else \
	  echo "setup: uv unavailable, using pip (slower)"; \
	  $(BIN)/pip install --disable-pip-version-check --progress-bar on --requirement $(1) \
	    && $(BIN)/pip install --quiet --disable-pip-version-check --no-deps --editable .; \
	fi
	@touch $@
endef

$(VENV)/.installed: requirements.lock pyproject.toml
	$(call install,requirements.lock,~600 MB)
	@touch $(VENV)/.installed-review

# What review needs (dvc, the Vega renderer; no TensorFlow), pinned as in requirements.lock:
# the review job in CI installs only this.
$(VENV)/.installed-review: requirements-review.lock pyproject.toml
	$(call install,requirements-review.lock,~70 MB)

$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml
	$(call install,requirements-dev.lock,~600 MB)
	@touch $(VENV)/.installed $(VENV)/.installed-review

# After a change to the dependencies in pyproject.toml: pin them, and all they need, again.
lock:
	uv pip compile --quiet pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --output-file requirements.lock
	uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --output-file requirements-dev.lock
	uv pip compile --quiet requirements-review.in --constraint requirements.lock --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --output-file requirements-review.lock

clean:
	rm -rf $(VENV)

# A report of params, metrics and plots against BASE, in review/report.md: make review BASE=main
BASE ?= main
review: $(VENV)/.installed-review
	python -m digits.reporting.review $(BASE)

# Plain tutorial script vs the pipeline, same data (MNIST_DIR) and params: make bench [ARGS=--quick]
bench: $(VENV)/.installed
	python bench/bench.py $(ARGS)

# The draw-a-digit page, on this machine only unless told: make serve [PORT=8000] [HOST=127.0.0.1]
# (plain assignments: a HOST or PORT in the shell's environment does not count, the command line does)
HOST = 127.0.0.1
PORT = 8000
.PHONY: serve
serve: $(VENV)/.installed
	python -m digits.use.serve --host $(HOST) --port $(PORT)
