#!/usr/bin/env bash
# Bit-identity before and after a refactor: trains scripts/equivalence/refactor.toml (every loss,
# sampler and stage-2 method on a tiny synthetic set, 1 CPU thread, about 10 s) with two
# gcl-repro binaries into two fresh caches, then prints `gcl-repro compare` of the caches and
# whether the final weights of all runs are byte-identical.
#   scripts/equivalence/run.sh BEFORE_BINARY AFTER_BINARY [IGNORE]
# IGNORE: settings whose spelling changed between the binaries (passed to `compare --ignore`),
# e.g. stage1.sampler,stage2.sampler.a,stage2.sampler.b,stage2.sampler.beta when samplers became
# a tagged enum. Exit status 1 when any final weights differ.
set -euo pipefail
before=$1 after=$2 ignore=${3:-}
manifest="$(dirname "$0")/refactor.toml"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in before after; do
    bin=${!side}
    "$bin" --cache-dir "$work/$side" --device cpu run "$manifest" > "$work/$side.log" 2>&1 || { cat "$work/$side.log"; exit 1; }
    (cd "$work/$side/runs" && sha256sum */model.safetensors | awk '{print $1}' | sort) > "$work/$side.weights"
done
"$after" compare "$work/before" "$work/after" ${ignore:+--ignore "$ignore"} --csv "$work/compare.csv" > "$work/compare.md"
python3 - "$work/compare.csv" <<'PY'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"cells matched: {sum(r['matched'] == 'both' or (r['n_a'] != '0' and r['n_b'] != '0') for r in rows)} of {len(rows)}; weights:", dict(collections.Counter(r['weights'] for r in rows)))
PY
runs=$(wc -l < "$work/after.weights")
same_keys=$(comm -12 <(ls "$work/before/runs" | sort) <(ls "$work/after/runs" | sort) | wc -l)
echo "cache keys: $same_keys of $runs runs kept their key"
if cmp -s "$work/before.weights" "$work/after.weights"; then
    echo "final weights: all $runs runs byte-identical (the multiset of SHA-256s of model.safetensors is equal)"
else
    echo "final weights DIFFER:"; diff "$work/before.weights" "$work/after.weights" || true; exit 1
fi
