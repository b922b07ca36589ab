#!/usr/bin/env bash
# scripts/campaign.sh resume [HOURS] | save | status: the full-scale campaign (issue #28), trained
# on CPU a few hours at a time and carried from machine to machine as one committed archive.
#
# What it trains, in this order, at the released length (200 + 30 epochs), each run pinned to
# AVX2 kernels and 2 threads (`--set cpu.isa=avx2 --set cpu.threads=2`) so an epoch trained on an
# AVX2-only machine and the next on an AVX-512 one give the bits an uninterrupted run would:
#   1. Table 5, seed 123: GCL stage 1, then its cRT, LWS and tau-norm stage 2 (--seeds 1)
#   2. Table 5, seed 124 (--seeds 2), then seed 125 (--seeds 3)
#   3. Table 1's CE cell at CIFAR-10 gamma = 100, seed 123
#
#   resume [HOURS]  imports results/full/campaign.tar.gz (if committed) into the campaign's cache,
#                   then trains in the background at the lowest CPU priority (nice 19) for at most
#                   HOURS (default 12; `run --deadline`), logging to .campaign/campaign.log.
#   save            winds the training down at its next epoch end (SIGUSR1: the epoch is
#                   checkpointed), exports every finished and partial run of the campaign into
#                   results/full/campaign.tar.gz (no embeddings, no t-SNE maps) and writes the
#                   report to results/full/ (REPORT.md). Commit results/full/ afterwards.
#   status          what is running, the last log lines and the plan (cached / partial / to run).
#
# Environment: GCL_DATA_ROOT (default ../shared/datasets, must hold cifar-10-batches-bin),
# GCL_CAMPAIGN_DIR (default .campaign: cache, log, pid and the binary the campaign runs; git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${GCL_CAMPAIGN_DIR:-.campaign}
CACHE=$STATE/cache
ARCHIVE=results/full/campaign.tar.gz
DATA=${GCL_DATA_ROOT:-../shared/datasets}
PIN=(--set cpu.isa=avx2 --set cpu.threads=2)
TABLES=(experiments/table1.toml experiments/table5.toml)
# The campaign trains with its own copy of the binary, so rebuilding the tree never touches it.
BIN=$STATE/gcl-repro

gcl() { "$BIN" --device cpu --cache-dir "$CACHE" --data-root "$DATA" "$@"; }

running_pid() {
    local pid
    pid=$(cat "$STATE/pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# The key of Table 1's CE cell at CIFAR-10 gamma = 100, seed 123 (`explain` prints it).
ce_key() {
    gcl explain experiments/table1.toml ce.cifar10_100 --seeds 1 "${PIN[@]}" |
        sed -n 's/.*stage-1 key \([0-9a-f]\{12,\}\).*/\1/p' | head -1
}

# The training itself (run by `resume` in the background): each step is one `run`; a wind-down
# (deadline or `save`) ends the step and the loop.
train_loop() {
    local end=$1 ce
    # `save` signals the whole process group: this shell keeps running (bash's default for
    # SIGUSR1 is to exit), notes the stop, and ends after the `run` in progress has wound down.
    trap 'touch "$STATE/stop"' USR1
    # This session is its own scheduler autogroup, where nice 19 counts only against itself:
    # lower the group too (from inside it: the shell that `setsid` started), or it takes a whole
    # core from the foreground (Linux autogroups).
    echo 19 > /proc/self/autogroup 2>/dev/null || true
    local steps=("experiments/table5.toml --seeds 1" "experiments/table5.toml --seeds 2" "experiments/table5.toml --seeds 3")
    ce=$(ce_key)
    [ -n "$ce" ] || { echo "campaign: cannot find the key of table1 ce.cifar10_100 (explain printed none)"; exit 1; }
    steps+=("experiments/table1.toml --seeds 1 --only $ce")
    for step in "${steps[@]}"; do
        [ -e "$STATE/stop" ] && break
        local left=$(( (end - $(date +%s)) / 60 ))
        [ "$left" -gt 0 ] || { echo "campaign: time is up"; break; }
        echo "campaign: $(date -u +%FT%TZ) run $step (deadline in $left min)"
        # shellcheck disable=SC2086
        gcl run $step "${PIN[@]}" --deadline "$left" || { echo "campaign: run failed (status $?)"; exit 1; }
    done
    echo "campaign: $(date -u +%FT%TZ) stopped"
}

resume() {
    local hours=${1:-12}
    if pid=$(running_pid); then echo "campaign: already running (pid $pid); see $STATE/campaign.log"; exit 0; fi
    [ -d "$DATA/cifar-10-batches-bin" ] || { echo "campaign: no CIFAR-10 at $DATA/cifar-10-batches-bin (set GCL_DATA_ROOT)"; exit 1; }
    make --no-print-directory build >/dev/null
    mkdir -p "$STATE"
    cp target/release/gcl-repro "$BIN.new" && mv "$BIN.new" "$BIN"
    rm -f "$STATE/stop"
    if [ -f "$ARCHIVE" ]; then
        # Refused when this cache is ahead of the archive (a run never moves backward): train on from here.
        gcl cache import "$ARCHIVE" || echo "campaign: the import was refused (above); training on from $CACHE"
    fi
    local end=$(( $(date +%s) + hours * 3600 ))
    setsid nice -n 19 "$0" _loop "$end" >> "$STATE/campaign.log" 2>&1 < /dev/null &
    echo $! > "$STATE/pid"
    echo "campaign: training in the background (pid $!, nice 19, at most $hours h); log: $STATE/campaign.log"
}

save() {
    if pid=$(running_pid); then
        touch "$STATE/stop"
        # The whole process group (the loop, `run`, any worker): each winds down at its epoch end.
        kill -USR1 -- "-$pid" 2>/dev/null || true
        echo "campaign: winding down (pid $pid) at the end of the current epoch..."
        while kill -0 "$pid" 2>/dev/null; do sleep 5; done
    fi
    [ -d "$CACHE" ] || { echo "campaign: nothing to save ($CACHE is missing: the campaign never ran here)"; exit 1; }
    # Export and report with this tree's binary (the keys are the training binary's: they must not move).
    make --no-print-directory build >/dev/null
    BIN=target/release/gcl-repro
    mkdir -p results/full
    gcl cache export "${TABLES[@]}" --seeds 3 "${PIN[@]}" --partial --without-embeddings --out "$ARCHIVE"
    gcl report "${TABLES[@]}" --seeds 3 "${PIN[@]}" --out results/full
    echo "campaign: saved to results/full/ (commit it)"
}

status() {
    if pid=$(running_pid); then echo "campaign: running (pid $pid)"; else echo "campaign: not running"; fi
    tail -n 5 "$STATE/campaign.log" 2>/dev/null | tr '\r' '\n' | tail -n 5 || true
    [ -x "$BIN" ] && gcl plan "${TABLES[@]}" --seeds 3 "${PIN[@]}" 2>/dev/null | grep -E '^(└ )?[0-9a-f]{12} .* (cached|partial) |runs \(' || true
}

case "${1:-}" in
    resume) shift; resume "$@" ;;
    save) save ;;
    status) status ;;
    _loop) train_loop "$2" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
