#!/usr/bin/env bash
# scripts/gpu-check.sh [--dry-run] OUTDIR: the one command of a GPU job, and its CPU rehearsal.
#
# On a GPU host (one H100/H200, PyTorch 2.11 in python3, no Rust, no network; see
# ../shared/gpu/README.md), from a copy of the working tree with the payload of
# scripts/gpu-pack.sh carried (gpu-payload/, or $GCL_GPU_PAYLOAD), on cuda:0, in under 9 minutes:
#   01-doctor       doctor (CUDA must be available) and the prepared CIFAR-10-LT found
#   02-bench-eager  bench train --mode eager   (timings beside the PyTorch reference)
#   03-bench-graph  bench train --mode graph --precision bf16 (fp32 and bf16 autocast, each
#                   round, beside the PyTorch reference)
#   04-parity       bench parity: graph-replayed against eager weights after K steps
#   (GPU only)      bench step --arch resnet50 beside torchvision, and on a host with two GPUs
#                   or more, the quick start's smoke runs data-parallel over cuda:0 and cuda:1;
#                   these steps shift the numbers of the steps below
#   05-reproduce    reproduce --tables 3-5 (full scale, --jobs 4, --seeds 1) with a --deadline
#                   computed from the time left, cache in OUTDIR/cache, report in
#                   OUTDIR/reproduce-report
#   06-export       cache export of the runs that finished -> OUTDIR/runs.tar.gz (no weights
#                   unless GPU_CHECK_EXPORT_WEIGHTS=1; nothing to export is no failure)
#   07-report       report of tables 3-5 -> OUTDIR/report
# On the GPU host each step runs under `timeout` (SIGINT, so a run stops cleanly, then SIGKILL)
# at its time box; in the dry run a step past its box is reported (`(over)` in the summary),
# never failed, since a busy CPU is no fault of the code, and only a hang is stopped. Its stdout and
# stderr go to OUTDIR/NN-step.log, and a line (step, exit status, seconds, time box) is appended
# to OUTDIR/summary.txt as soon as it ends. A failed step does not stop the next; the exit status
# is 1 if any step failed. Last, OUTDIR/gpu-check.tar.gz bundles the summary, the logs and the
# reports (not the cache, not runs.tar.gz): with summary.txt and runs.tar.gz, that is all a job
# needs to bring back (three files). Bring runs home with `gcl-repro cache import runs.tar.gz`.
#
# Seeds: every step that expands the tables passes `--seeds $GPU_CHECK_SEEDS` (default 1), not
# the manifests' own count (3 per cell at full scale): the time budget cannot hold more than one
# seed per cell, and export and report must name the same runs as reproduce trained.
#
# Timing: a full-scale stage-1 run (200 epochs) does not finish in these minutes at eager speed,
# so expect runs wound down by the deadline; they stay in OUTDIR/cache/partial and resume if the
# check is run again with the same OUTDIR. The epoch in progress at the deadline finishes after
# it: the deadline leaves a margin of one epoch plus the report before the step's time box.
#
# --dry-run: the rehearsal on this machine's CPU (part of `make test`, under 4 minutes on two
# cores): target/release/gcl-repro ($GCL_BIN, or $CARGO_TARGET_DIR/release/gcl-repro), device
# cpu, no payload, toy sizes (bench --steps 5 --rounds 1, parity 3 steps), and `reproduce
# --scale smoke --jobs 2` of stand-ins of tables 3-5 written into OUTDIR/dry-project/experiments:
# the real manifests with the dataset swapped for the built-in synthetic one, a small ResNet and
# a few more epochs, so that the deadline (at most 25 s) stops some runs and keeps others from
# starting, without needing CIFAR.
#
# Settings (environment): GCL_GPU_PAYLOAD (payload dir), GCL_PYTHON (the host's Python with
# torch, default python3), GPU_CHECK_BUDGET (seconds for all steps: 540, dry 300),
# GPU_CHECK_JOBS (4, dry 2), GPU_CHECK_SEEDS (seeds per cell, 1), GPU_CHECK_BENCH_STEPS / GPU_CHECK_BENCH_ROUNDS (300/2, dry 5/1),
# GPU_CHECK_PARITY_STEPS (20, dry 3), GPU_CHECK_EXPORT_WEIGHTS (unset: metrics, logs and t-SNE
# maps only).
set -u

usage() { echo "usage: scripts/gpu-check.sh [--dry-run] OUTDIR" >&2; exit 2; }
dry=0
if [ "${1-}" = --dry-run ]; then dry=1; shift; fi
[ $# = 1 ] || usage
case "$1" in -*) usage ;; esac

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
start=$(now)
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" || exit 2
out=$(cd "$1" && pwd)
notes=()   # problems of the set-up, for the summary
note() { echo "gpu-check: $*" >&2; notes+=("note: $*"); }

if [ $dry = 1 ]; then
    mode="dry run (CPU)"
    device=cpu
    bin=${GCL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gcl-repro}
    data_root=$out/dry-data             # stays empty: the stand-in tables use synthetic data
    project=$out/dry-project            # holds experiments/table{3,4,5}.toml stand-ins
    scale=smoke
    budget=${GPU_CHECK_BUDGET:-300}
    jobs=${GPU_CHECK_JOBS:-2}
    bench_steps=${GPU_CHECK_BENCH_STEPS:-5}
    bench_rounds=${GPU_CHECK_BENCH_ROUNDS:-1}
    parity_steps=${GPU_CHECK_PARITY_STEPS:-3}
    box_doctor=30 box_bench=150 box_parity=60 box_export=30 box_report=30
    # The project's venv (make setup, exported by make as VIRTUAL_ENV) has torch and torchvision
    # for the PyTorch references.
    python=${GCL_PYTHON:-${VIRTUAL_ENV:-$root/.venv}/bin/python}
    [ -x "$python" ] || python=python3
    margin=25                           # after the deadline: an epoch of a stand-in run, the report
    deadline_cap=25                     # so that the deadline comes while runs are in progress (all finish in ~50 s)
    mkdir -p "$data_root"
else
    mode="GPU host"
    device=cuda:0
    payload=${GCL_GPU_PAYLOAD:-$root/gpu-payload}
    data_root=$payload/data             # <data-root>/prepared/cifar10-exp-100-seed0.gcl
    project=$root
    scale=full
    budget=${GPU_CHECK_BUDGET:-540}
    jobs=${GPU_CHECK_JOBS:-4}
    bench_steps=${GPU_CHECK_BENCH_STEPS:-300}
    bench_rounds=${GPU_CHECK_BENCH_ROUNDS:-2}
    parity_steps=${GPU_CHECK_PARITY_STEPS:-20}
    box_doctor=60 box_bench=120 box_parity=60 box_export=45 box_report=45
    margin=60                           # one full-scale epoch at 4 jobs (~6 s), workers' stop, the report
    deadline_cap=
    # The binary was linked against the build machine's libtorch: use this host's (same 2.11.0).
    python=${GCL_PYTHON:-python3}
    if torchdir=$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null); then
        export LD_LIBRARY_PATH="$torchdir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    else
        note "$python does not import torch: libtorch will not be found (set GCL_PYTHON)"
    fi
    # The payload's binary is xz-compressed (scripts/gpu-pack.sh): unpack it outside OUTDIR, with
    # xz or else Python's lzma. An uncompressed payload/gcl-repro is used as it is.
    bin=$payload/gcl-repro
    if [ ! -f "$bin" ]; then
        unpacked=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
        trap 'rm -rf "$unpacked"' EXIT
        bin=$unpacked/gcl-repro
        if [ ! -f "$payload/gcl-repro.xz" ]; then
            note "no $payload/gcl-repro.xz: run scripts/gpu-pack.sh and carry its folder (or set GCL_GPU_PAYLOAD)"
        elif command -v xz >/dev/null; then
            xz -dc "$payload/gcl-repro.xz" >"$bin" || note "xz could not unpack $payload/gcl-repro.xz"
        else
            "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$payload/gcl-repro.xz" "$bin" ||
                note "Python's lzma could not unpack $payload/gcl-repro.xz"
        fi
    fi
    # A payload copied without its modes: make it executable (in a copy if need be).
    if [ -f "$bin" ] && [ ! -x "$bin" ]; then
        chmod +x "$bin" 2>/dev/null || { cp "$bin" "$bin.x" && chmod +x "$bin.x" && bin=$bin.x; }
    fi
fi
reserve=$((box_export + box_report))
seeds=${GPU_CHECK_SEEDS:-1}             # seeds per cell of tables 3-5: the time budget's, see above
export bin device data_root project scale out dry jobs seeds

n=0
failed=()
overran=()   # dry run: steps past their time box (reported, not failed)
{
    echo "gpu-check, $mode, $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${budget} s"
    echo "binary $bin, data root $data_root, cache $out/cache"
    [ ${#notes[@]} = 0 ] || printf '%s\n' "${notes[@]}"
    printf '%-16s %6s %9s %9s\n' step exit seconds "time box"
} >"$out/summary.txt"

# step NAME TIME_BOX COMMAND...: run COMMAND under a time box, log it, record its line.
step() {
    local name=$1 box=$2
    shift 2
    n=$((n + 1))
    local log t0 rc dt
    log=$(printf '%s/%02d-%s.log' "$out" "$n" "$name")
    t0=$(now)
    echo "[$(secs "$start" "$t0") s] $name (time box $box s): $*"
    { printf '$'; printf ' %q' "$@"; printf '\n'; } >"$log"
    # Time boxes belong to the GPU host. In the dry run a busy CPU may take longer: the box is
    # reported, never a failure, and only a hang (six times the box, at least 15 min) is stopped.
    local kill_at=$box
    [ "$dry" = 1 ] && kill_at=$((box * 6 > 900 ? box * 6 : 900))
    timeout -s INT -k 15 "$kill_at" "$@" >>"$log" 2>&1
    rc=$?
    dt=$(secs "$t0" "$(now)")
    [ $rc = 124 ] && echo "gpu-check: $name ran past its time limit of $kill_at s and was stopped" >>"$log"
    local over=
    if [ "$dry" = 1 ] && awk -v d="$dt" -v b="$box" 'BEGIN { exit !(d > b) }'; then
        over=" (over)"
        overran+=("$name")
        echo "gpu-check: $name took $dt s, past its GPU-host time box of $box s (dry run: reported, not failed)" >>"$log"
    fi
    printf '%-16s %6d %9s %9s%s\n' "$name" "$rc" "$dt" "$box" "$over" >>"$out/summary.txt"
    echo "    exit $rc after $dt s$over (log: $log)"
    [ $rc = 0 ] || failed+=("$name")
}

# Seconds of the budget not yet spent.
left() { awk -v s="$start" -v t="$(now)" -v b="$budget" 'BEGIN { printf "%d", b - (t - s) }'; }

# Step bodies that are more than one command (run through `bash -c` under the time box).
doctor_step() {
    local text
    text=$("$bin" --device "$device" --data-root "$data_root" doctor 2>&1)
    local rc=$?
    printf '%s\n' "$text"
    [ $rc = 0 ] || return $rc
    if [ "$dry" = 0 ]; then
        printf '%s\n' "$text" | grep -q '^CUDA: *available' || { echo "gpu-check: CUDA is not available to gcl-repro on this host"; return 1; }
        echo "--- the prepared CIFAR-10-LT γ=100 under $data_root:"
        "$bin" --data-root "$data_root" data info --dataset cifar10 --imbalance 100 | head -3
        [ "${PIPESTATUS[0]}" = 0 ] || { echo "gpu-check: no prepared CIFAR-10-LT under $data_root (run scripts/gpu-pack.sh and carry its folder)"; return 1; }
    fi
}

# Dry run: the real tables 3-5 with synthetic data, a small network and enough epochs that a
# run takes some seconds (the deadline then finds runs in progress); checked, never guessed.
make_standins() {
    mkdir -p "$project/experiments" || return
    cp -r "$root/experiments/published" "$project/experiments/" || return
    local t
    for t in 3 4 5; do
        sed -e 's/^dataset = { name = "cifar10", imbalance = 100 }$/dataset = { name = "synthetic", classes = 4, max_per_class = 256, imbalance = 8, test_per_class = 16 }/' \
            -e 's/^model = { arch = "resnet32", head = "normed" }$/model = { arch = "resnet_small", head = "normed" }/' \
            -e 's/^cpu = { isa = "avx2", threads = 2 }/cpu = { isa = "avx2", threads = 1 }/' \
            -e 's/^stage1 = { epochs = 2, warmup_epochs = 0, milestones = \[\] } .*$/stage1 = { epochs = 24, warmup_epochs = 5, milestones = [19, 22], batch_size = 32 }/' \
            -e 's/^stage2 = { epochs = 1 }$/stage2 = { epochs = 3, batch_size = 32 }/' \
            "$root/experiments/table$t.toml" >"$project/experiments/table$t.toml" || return
        local f=$project/experiments/table$t.toml
        if grep -q 'cifar10\|resnet32\|epochs = 2,' "$f" || [ "$(grep -c 'synthetic\|resnet_small\|epochs = 24\|epochs = 3\|threads = 1' "$f")" != 5 ]; then
            echo "gpu-check: experiments/table$t.toml changed; update make_standins in scripts/gpu-check.sh"
            return 1
        fi
    done
    echo "stand-ins of tables 3-5 in $project/experiments (synthetic data, resnet_small, smoke: 24 + 3 epochs)"
}

reproduce_step() {
    local minutes=$1
    if [ "$dry" = 1 ]; then make_standins || return; fi
    cd "$project" || return
    "$bin" --device "$device" --data-root "$data_root" --cache-dir "$out/cache" \
        reproduce --tables 3-5 --no-figures --scale "$scale" --seeds "$seeds" --jobs "$jobs" --deadline "$minutes" --out "$out/reproduce-report"
}

export_step() {
    cd "$project" || return
    if [ -z "$(ls -A "$out/cache/runs" 2>/dev/null)" ]; then
        echo "no finished run in $out/cache: nothing to export (see 05-reproduce.log: wound down, not started or failed)"
        return 0
    fi
    local tables=(experiments/table3.toml experiments/table4.toml experiments/table5.toml) weights=--without-weights
    [ -n "${GPU_CHECK_EXPORT_WEIGHTS-}" ] && weights=
    "$bin" --data-root "$data_root" --cache-dir "$out/cache" cache export "${tables[@]}" --scale "$scale" --seeds "$seeds" $weights --out "$out/runs.tar.gz"
}

report_step() {
    cd "$project" || return
    local tables=(experiments/table3.toml experiments/table4.toml experiments/table5.toml)
    "$bin" --data-root "$data_root" --cache-dir "$out/cache" report "${tables[@]}" --scale "$scale" --seeds "$seeds" --out "$out/report"
}
export -f doctor_step make_standins reproduce_step export_step report_step
export root GPU_CHECK_EXPORT_WEIGHTS="${GPU_CHECK_EXPORT_WEIGHTS-}"

echo "gpu-check: $mode into $out (budget $budget s)"
step doctor "$box_doctor" bash -c doctor_step
# The PyTorch references run beside both modes on the GPU; the dry run times them once (eager
# and graph are the same bits on CPU, and each reference evaluates 10,000 images).
eager_torch=()
[ "$dry" = 1 ] && eager_torch=(--no-torch)
step bench-eager "$box_bench" "$bin" --device "$device" --data-root "$data_root" bench train --mode eager \
    --steps "$bench_steps" --rounds "$bench_rounds" --python "$python" "${eager_torch[@]}" --out "$out/bench-eager"
step bench-graph "$box_bench" "$bin" --device "$device" --data-root "$data_root" bench train --mode graph \
    --precision bf16 --steps "$bench_steps" --rounds "$bench_rounds" --python "$python" --out "$out/bench-graph"
step parity "$box_parity" "$bin" --device "$device" bench parity --steps "$parity_steps"
# The ResNet-50 step beside torchvision's (README, Table 2's cost per cell); the CPU rehearsal
# skips it (a ResNet-50 step on two cores takes seconds; `bench step --arch resnet50` times it there).
if [ "$dry" = 0 ]; then
    step bench-resnet50 "$box_bench" "$bin" --device "$device" bench step --arch resnet50 --batch-size 64 \
        --steps 30 --warmup 5 --repeats 2 --python "$python" --script "$root/scripts/torch_step_reference.py"
fi
# A host with two GPUs or more also trains the quick start's runs (smoke scale) data-parallel over
# cuda:0 and cuda:1 (`run --data-parallel`); their images/s are in dp-cache's run logs. The CPU
# rehearsal skips it: tests/data_parallel.rs trains two CPU ranks in `make test`.
if [ "$dry" = 0 ] && [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')" -ge 2 ]; then
    step data-parallel "$box_bench" "$bin" --data-root "$data_root" --cache-dir "$out/dp-cache" run \
        "$root/experiments/quickstart.toml" --scale smoke --devices cuda:0,cuda:1 --data-parallel
fi

# The reproduce step gets what the budget has left but the export and the report; its deadline
# leaves `margin` of that for the epochs in progress to finish and for its own report.
box=$(($(left) - reserve))
[ "$box" -lt 30 ] && box=30
deadline=$((box - margin))
[ "$deadline" -lt 0 ] && deadline=0
[ -n "$deadline_cap" ] && [ "$deadline" -gt "$deadline_cap" ] && deadline=$deadline_cap
minutes=$(awk -v s="$deadline" 'BEGIN { printf "%.2f", s / 60 }')
echo "reproduce: time box $box s, deadline $minutes min"
step reproduce "$box" bash -c 'reproduce_step "$1"' _ "$minutes"
step export "$box_export" bash -c export_step
step report "$box_report" bash -c report_step

total=$(secs "$start" "$(now)")
if [ ${#failed[@]} = 0 ]; then
    result="all $n steps passed in $total s"
else
    result="FAILED: ${#failed[@]} of $n steps (${failed[*]}) in $total s"
fi
[ ${#overran[@]} = 0 ] || result="$result; past their GPU-host time box on this CPU (reported, not failed): ${overran[*]}"
echo "$result" >>"$out/summary.txt"
(cd "$out" && tar czf gpu-check.tar.gz --exclude=cache --exclude=runs.tar.gz --exclude=gpu-check.tar.gz \
    --exclude=dry-data -- summary.txt *.log $(ls -d report reproduce-report bench-eager bench-graph dry-project 2>/dev/null)) ||
    echo "gpu-check: could not write $out/gpu-check.tar.gz"
cat "$out/summary.txt"
[ ${#failed[@]} = 0 ]
