# The two commands of the README: `make demo` and `make test`. Everything else is a step of them.
# Set-up is idempotent: the virtualenv is made once (stamp file), then every call is a no-op.
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
STAMP := $(VENV)/.gcl-setup-torch-2.11.0-crt-tv0.26
BIN := target/release/gcl-repro
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: demo test build lint setup doctor slurm-up slurm-down

## demo: set up, build, run the quick start (synthetic data, CPU or GPU) and write its report.
demo: build
	$(BIN) run experiments/quickstart.toml
	$(BIN) report experiments/quickstart.toml --out results/quickstart

## test: set up, build, lint (`make lint`), run every test. Tests that need an input a fresh clone may lack are
## #[ignore]d and named after it: needs_cifar10, needs_split_lists (real data under
## $GCL_TEST_DATA, else ../shared/datasets), needs_torch (a Python with torch + numpy: $GCL_PYTHON,
## $VIRTUAL_ENV or .venv), needs_slurm (a running Slurm). After the plain run (which counts them as
## ignored), each group whose input is here runs with `-- --ignored NAME`, and a line per group says
## whether it ran or why not. A one-node Slurm is started for the Slurm group when this machine can
## (root + Debian's slurm-wlm/munge, installed here if missing); once it is up, that group runs.
## Then `scripts/gpu-check.sh --dry-run` rehearses the GPU job's command on the CPU (a few minutes;
## its logs are kept in a temp dir when it fails).
## Any failing run makes the exit status non-zero; the Slurm started here is stopped on every path.
## (Sub-makes go through SUBMAKE, not a literal $(MAKE), so that `make -n test` only prints.)
SUBMAKE = $(MAKE) --no-print-directory
test: build
	@trap '$(SUBMAKE) slurm-down' EXIT; \
	status=0; summary=(); \
	if $(SUBMAKE) lint; then summary+=("lint (cargo fmt --check, cargo clippy --all-targets -D warnings): passed"); \
	else status=1; summary+=("lint (cargo fmt --check, cargo clippy --all-targets -D warnings): FAILED, see above (cargo fmt fixes the first)"); fi; \
	if cargo test --release --no-fail-fast; then summary+=("plain run (the ignored groups below aside): passed"); \
	else status=1; summary+=("plain run (the ignored groups below aside): FAILED"); fi; \
	gpudry=$$(mktemp -d); \
	echo "scripts/gpu-check.sh --dry-run $$gpudry: the GPU job's command, rehearsed on the CPU"; \
	if scripts/gpu-check.sh --dry-run "$$gpudry"; then rm -rf "$$gpudry"; summary+=("gpu-check --dry-run (the GPU job rehearsed on the CPU): passed"); \
	else status=1; summary+=("gpu-check --dry-run (the GPU job rehearsed on the CPU): FAILED, see $$gpudry/summary.txt and its logs"); fi; \
	ignored=$$(cargo test --release -q --tests -- --list --ignored 2>/dev/null | grep ': test$$'); \
	tests() { if [ "$$1" = 1 ]; then echo "1 test"; else echo "$$1 tests"; fi; }; \
	group() { \
		local k; k=$$(printf '%s\n' "$$ignored" | grep -cF -- "$$1"); \
		if [ "$$k" = 1 ]; then v=stays; n=needs; else v=stay; n=need; fi; \
		if [ "$$2" != yes ]; then \
			echo "inputs: $$3; its $$(tests $$k) $$v ignored"; summary+=("$$1: $$3; $$(tests $$k) $$v ignored"); \
		elif [ "$$k" = 0 ]; then \
			echo "inputs: $$3, but no ignored test is named *$$1*: tests/ and the Makefile disagree"; status=1; \
			summary+=("$$1: FAILED, no ignored test is named *$$1*"); \
		else \
			echo "inputs: $$3; running the $$(tests $$k) that $$n it (cargo test -- --ignored $$1)"; \
			if cargo test --release --no-fail-fast --tests -- --ignored "$$1"; then r=passed; else r=FAILED; status=1; fi; \
			summary+=("$$1: $$3; $$(tests $$k) ran, $$r"); \
		fi; \
	}; \
	data="$${GCL_TEST_DATA-$(CURDIR)/../shared/datasets}"; \
	if [ -d "$$data/cifar-10-batches-bin" ]; then \
		group needs_cifar10 yes "real CIFAR-10 found at $$(readlink -f "$$data/cifar-10-batches-bin")"; \
	else group needs_cifar10 no "no real CIFAR-10 at $$data/cifar-10-batches-bin (set GCL_TEST_DATA to a data root holding it)"; fi; \
	if [ -f "$$data/splits/Places_LT_train.txt" ] && [ -f "$$data/splits/Places_LT_test.txt" ] && [ -f "$$data/splits/ImageNet_LT_test.txt" ]; then \
		group needs_split_lists yes "split lists found in $$(readlink -f "$$data/splits")"; \
	else group needs_split_lists no "no split lists (Places_LT_{train,test}.txt, ImageNet_LT_test.txt) in $$data/splits (set GCL_TEST_DATA)"; fi; \
	py=; for p in $${GCL_PYTHON+"$$GCL_PYTHON"} $${VIRTUAL_ENV+"$$VIRTUAL_ENV/bin/python"} "$(CURDIR)/.venv/bin/python"; do \
		if "$$p" -c 'import torch, numpy' >/dev/null 2>&1; then py=$$p; break; fi; done; \
	if [ -n "$$py" ]; then group needs_torch yes "Python with torch+numpy found at $$py"; \
	else group needs_torch no "no Python with torch+numpy (GCL_PYTHON, VIRTUAL_ENV, .venv; make setup creates .venv)"; fi; \
	if $(SUBMAKE) slurm-up; then slurm=started; else slurm=; fi; \
	if [ "$$slurm" = started ]; then group needs_slurm yes "local Slurm started by make slurm-up"; \
	elif states=$$(sinfo -h -o %t 2>/dev/null) && printf '%s\n' "$$states" | grep -qE '^[[:space:]]*(idle|mix|alloc)[[:space:]]*$$'; then \
		group needs_slurm yes "running Slurm found (sinfo shows a node up)"; \
	elif [ "$$(id -u)" != 0 ]; then group needs_slurm no "no Slurm (sinfo shows no node up, and make slurm-up needs root)"; \
	elif ! command -v sbatch >/dev/null; then group needs_slurm no "no Slurm (slurm-wlm/munge are not installed and could not be installed)"; \
	else group needs_slurm no "no Slurm (make slurm-up failed, see its messages above)"; fi; \
	echo "make test summary:"; printf '  %s\n' "$${summary[@]}"; \
	exit $$status

build: setup
	cargo build --release

## lint: the code is formatted (rustfmt.toml) and clippy finds nothing, tests included.
lint: setup
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

setup: $(STAMP)

$(STAMP):
	python3 -m venv $(VENV)
	# nvidia-cuda-crt: the CUDA headers (crt/host_config.h) that torch's wheel leaves out and the
	# CUDA-graph shim (src/shim/cuda_graph.cpp) needs to compile; 134 KB, headers only.
	# torchvision + pillow: the released scripts' data pipeline, timed by `bench train`.
	$(VENV)/bin/pip install --disable-pip-version-check -q torch==2.11.0 numpy nvidia-cuda-crt==13.0.88 torchvision==0.26.0 pillow
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
