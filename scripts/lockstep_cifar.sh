#!/usr/bin/env bash
# scripts/lockstep_cifar.sh: the float32 lockstep of our engine with PyTorch on the real
# CIFAR-10-LT (tests/lockstep_cifar.rs, which says what it compares), at the released warm-up
# (epoch 1 at lr 0.02) and at `bench fidelity`'s 3-epoch compression (lr 0.1 from the first step),
# the first over 1 epoch, the second over 2 (`bench fidelity --epochs 3` runs both at lr 0.1 before
# its decay). Writes results/lockstep_cifar/*.md. About 3 minutes an epoch on 2 cores.
# Environment: GCL_TEST_DATA (a data root holding cifar-10-batches-bin; default ../shared/datasets),
# GCL_LOCKSTEP_SEED (123).
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBTORCH_USE_PYTORCH=1 VIRTUAL_ENV=${VIRTUAL_ENV:-$PWD/.venv}
export PATH=$VIRTUAL_ENV/bin:$PATH
export GCL_LOCKSTEP_OUT=${GCL_LOCKSTEP_OUT:-$PWD/results/lockstep_cifar}
status=0
for case in "5 1" "0 2"; do
    read -r w e <<<"$case"
    echo "lockstep_cifar: warm-up $w, $e epoch(s), $(date -u +%FT%TZ)"
    GCL_LOCKSTEP_WARMUP=$w GCL_LOCKSTEP_EPOCHS=$e cargo test --release -q --test lockstep_cifar -- --ignored --nocapture || status=1
done
exit $status
