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

.PHONY: demo test build setup doctor slurm-up slurm-down

## demo: set up, build, run the quick start (synthetic data, CPU or GPU) and write its report.
demo: build
	$(BIN) run experiments/quickstart.toml
	$(BIN) report experiments/quickstart.toml --out results/quickstart

## test: set up, build, run every test. A one-node Slurm is started for the Slurm test when
## this machine can (root + Debian's slurm-wlm/munge, installed here if missing); otherwise
## that test says SKIPPED.
test: build
	@$(MAKE) --no-print-directory slurm-up || echo "note: no local Slurm; the Slurm test will be skipped"
	cargo test --release --no-fail-fast; status=$$?; $(MAKE) --no-print-directory slurm-down; exit $$status

build: setup
	cargo build --release

setup: $(STAMP)

$(STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q torch==2.11.0 numpy
	touch $(STAMP)

doctor: build
	$(BIN) doctor

slurm-up:
	@if [ "$$(id -u)" = 0 ] && ! command -v sbatch >/dev/null && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 || \
		(apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1) || true; fi
	@command -v sbatch >/dev/null && [ "$$(id -u)" = 0 ] && scripts/slurm-local.sh start

slurm-down:
	@if [ -f /tmp/gcl-slurm/slurmctld.pid ] || [ -f /tmp/gcl-slurm/munged.ours ]; then scripts/slurm-local.sh stop || true; fi
