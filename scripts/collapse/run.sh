#!/usr/bin/env bash
# scripts/collapse/run.sh OUTDIR: does the quick start's GCL stage 1 collapse in the released
# recipe too, or only in gcl-repro? A paired check (issue #29, point 1).
#
# Both engines train the quick start's GCL stage 1 (experiments/quickstart.toml: the synthetic
# 10-class set with gamma = 50, resnet_small, cosine head, GCL s = 30, c = 0.5, mixup, batch 32,
# 30 epochs, lr 0.1, decays after epochs 24 and 28) on exactly the same data (`gcl-repro data
# export`) from exactly the same initial weights: gcl-repro's own initial weights of seeds 1, 2
# and 3 (a 0-epoch run of each seed stores them), each trained with 3 data streams (gcl-repro's
# seeds 1-3; the PyTorch script's seeds 1-3), at the quick start's warm-up (2 epochs) and at 5.
# gcl-repro's init-s row with seed s is the quick start's seed-s run itself (same weights, same
# stream), so its collapse must come back. Then the collapsing case alone (seed 1's weights,
# warm-up 2) with streams 4-10 on both engines, so the two collapse rates rest on 10 runs each. The PyTorch side is scripts/fidelity_torch.py (written
# from the released code, PyTorch's BatchNorm and SGD), one thread beside nothing else.
# Writes OUTDIR/collapse.md (the table) and OUTDIR/collapse.json; about 30 minutes on 2 cores.
#
# COLLAPSE_ROW=ce_mixup asks the same of the quick start's CE + mixup row (linear head, CE,
# mixup) at the warm-up of the schedule rule (5 epochs) only, with the 7 more streams from seed
# 2's weights (where the quick start's seed 2 ended at 53.4 %); about 15 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
bin=${GCL_BIN:-$root/target/release/gcl-repro}
python=${GCL_PYTHON:-$root/.venv/bin/python}
gcl() { "$bin" --device cpu --cache-dir "$out/cache" "$@"; }
SEEDS=(1 2 3)
case ${COLLAPSE_ROW:-gcl} in
    gcl) head=normed loss=gcl method=gcl WARMUPS=(2 5) extra_w=2 extra_s=1 ;;
    ce_mixup) head=linear loss=ce method=ce WARMUPS=(5) extra_w=5 extra_s=2 ;;
    *) echo "COLLAPSE_ROW: gcl or ce_mixup" >&2; exit 2 ;;
esac
echo "{\"row\": \"${COLLAPSE_ROW:-gcl}\", \"extra\": [$extra_w, $extra_s]}" >"$out/case.json"

gcl data export --dataset synthetic --classes 10 --imbalance 50 --max-per-class 300 --test-per-class 100 --out "$out/data.safetensors"

defaults='cpu = { isa = "avx2", threads = 2 }
dataset = { name = "synthetic", imbalance = 50, classes = 10, max_per_class = 300, test_per_class = 100 }
model = { arch = "resnet_small", head = "'$head'" }'

# gcl-repro's initial weights of each seed: a 0-epoch stage 1 stores them as its final weights.
cat >"$out/init.toml" <<TOML
[manifest]
title = "initial weights"
seeds = [1, 2, 3]
[defaults]
$defaults
stage1 = { epochs = 0, warmup_epochs = 0, milestones = [], batch_size = 32, loss = { kind = "$loss" }, mixup = true }
[columns.w]
[rows.init]
TOML
gcl run "$out/init.toml" >"$out/init.log" 2>&1
for dir in "$out"/cache/runs/*/; do
    seed=$(sed -n 's/^seed = //p' "$dir/spec.toml")
    epochs=$(grep -A30 '^\[stage1\]' "$dir/spec.toml" | sed -n 's/^epochs = //p' | head -1)
    [ "$epochs" = 0 ] && cp "$dir/model.safetensors" "$out/init-s$seed.safetensors"
done

# gcl-repro from each init, 3 streams, 2 warm-ups: 18 runs.
{
    printf '[manifest]\ntitle = "quick-start %s stage 1 from gcl-repro initial weights"\nseeds = [1, 2, 3]\n[defaults]\n%s\n' "${COLLAPSE_ROW:-gcl}" "$defaults"
    echo "stage1 = { epochs = 30, milestones = [24, 28], batch_size = 32, loss = { kind = \"$loss\" }, mixup = true }"
    for w in "${WARMUPS[@]}"; do printf '[columns.w%s]\nstage1 = { warmup_epochs = %s }\n' "$w" "$w"; done
    for s in "${SEEDS[@]}"; do printf '[rows.init%s]\nmodel = { init_from = "init-s%s.safetensors" }\n' "$s" "$s"; done
} >"$out/ours.toml"
gcl run "$out/ours.toml" >"$out/ours.log" 2>&1
# The collapsing case with 7 more streams.
keep_w="^\[columns.w$extra_w\]" keep_s="^\[rows.init$extra_s\]"
awk -v kw="$keep_w" -v ks="$keep_s" '
    /^seeds = / { print "seeds = [4, 5, 6, 7, 8, 9, 10]"; next }
    /^\[(columns|rows)\./ { skip = !($0 ~ kw || $0 ~ ks) }
    /^\[(manifest|defaults)\]/ { skip = 0 }
    !skip' "$out/ours.toml" >"$out/ours-streams.toml"
gcl run "$out/ours-streams.toml" >"$out/ours-streams.log" 2>&1

# The PyTorch script from the same weights, 3 of its own streams, 2 warm-ups: 18 runs.
mkdir -p "$out/torch"
cases=()
for w in "${WARMUPS[@]}"; do for s in "${SEEDS[@]}"; do for t in "${SEEDS[@]}"; do cases+=("$w $s $t"); done; done; done
for t in 4 5 6 7 8 9 10; do cases+=("$extra_w $extra_s $t"); done
for case in "${cases[@]}"; do
    read -r w s t <<<"$case"
    name="w$w-init$s-seed$t"
    [ -f "$out/torch/$name.json" ] && continue
    cat >"$out/torch/$name.config.json" <<JSON
{"method": "$method", "seed": $t, "threads": 2, "data_file": "$out/data.safetensors", "blocks": 1,
 "init_from": "$out/init-s$s.safetensors", "mixup": true,
 "stage1": {"epochs": 30, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0002, "warmup_epochs": $w,
            "milestones": [24, 28], "lr_decay": 0.1, "batch_size": 32}}
JSON
    "$python" "$root/scripts/fidelity_torch.py" --config "$out/torch/$name.config.json" --out "$out/torch/$name.json" \
        2>"$out/torch/$name.log"
done

"$python" "$root/scripts/collapse/table.py" "$out"
