# The two commands of the README: `make demo` and `make test`. Everything else is a step of them.
# Set-up is idempotent: the virtualenv is made once (stamp file), then every call is a no-op.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
STAMP := $(VENV)/.gcl-setup-torch-2.11.0
BIN := target/release/gcl-repro
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: demo test build setup doctor
demo: build
	$(BIN) run experiments/quickstart.toml
	$(BIN) report experiments/quickstart.toml

test: setup
	cargo build --release
	cargo test --release

build: setup
	cargo build --release

setup: $(STAMP)

$(STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q torch==2.11.0 numpy
	touch $(STAMP)

doctor: build
	$(BIN) doctor
