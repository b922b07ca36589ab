#!/usr/bin/env bash
# scripts/gpu-pack.sh [OUTDIR]: put into OUTDIR (default gpu-payload/, git-ignored) what
# scripts/gpu-check.sh needs on a GPU host and git does not carry. Runs here, on the build machine.
#
#   OUTDIR/gcl-repro.xz                                the release binary, stripped and
#                                                      xz-compressed (gpu-check.sh unpacks it)
#   OUTDIR/data/prepared/cifar10-exp-100-seed0.gcl     CIFAR-10-LT γ=100: the long-tailed train
#                                                      split and the test set (`data prepare`)
#
# OUTDIR/data is a data root: `gcl-repro --data-root OUTDIR/data` finds the prepared file there
# (<data-root>/prepared/<dataset>-<profile>-<imbalance>-seed<subset seed>.gcl) when the root has
# no cifar-10-batches-bin/. The binary is target/release/gcl-repro ($GCL_BIN, or
# $CARGO_TARGET_DIR/release/gcl-repro); the CIFAR-10 binaries come from $GCL_TEST_DATA (default
# ../shared/datasets, as for `make test`). A prepared file already in OUTDIR is kept if the
# binary reads it, and gcl-repro.xz if it is newer than the binary. Prints every size; refuses
# (exit 1) if the payload is over 60 MiB, since a GPU job carries at most 64 MiB, the working
# tree included. Sizes (2026-12): binary 50 MiB, stripped 38, xz 7.5; prepared data 44.9 MiB,
# which neither xz nor gzip shrinks further (it is deflated already).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/gpu-payload}
bin=${GCL_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/gcl-repro}
data=${GCL_TEST_DATA:-$root/../shared/datasets}
limit_mib=60
prepared_name=cifar10-exp-100-seed0.gcl   # data::prepared_file_name of cifar10, exp, γ=100, subset seed 0

die() { echo "gpu-pack: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
size() { stat -c %s "$1"; }

[ -x "$bin" ] || die "no release binary at $bin: build it first (make build, or set GCL_BIN)"
mkdir -p "$out/data/prepared"
out=$(cd "$out" && pwd)

# The binary: stripped (symbols are a quarter of it), then xz (the rest shrinks 5x; the data
# does not, so this is what makes binary + data fit). The stripped copy must still run.
command -v xz >/dev/null || die "xz is needed to compress the binary (apt-get install xz-utils)"
stripped=$(mktemp "$out/.gcl-repro.XXXXXX")
trap 'rm -f "$stripped" "$out/gcl-repro.xz.tmp"' EXIT
cp "$bin" "$stripped" && chmod 755 "$stripped"
if command -v strip >/dev/null; then strip "$stripped"; else echo "gpu-pack: no strip here, the binary is sent unstripped"; fi
"$stripped" --device cpu --data-root "$out/data" doctor >/dev/null || die "the stripped binary fails \`doctor\` here: $stripped"
if [ -f "$out/gcl-repro.xz" ] && [ "$out/gcl-repro.xz" -nt "$bin" ]; then
    echo "binary:   $out/gcl-repro.xz is newer than $bin; kept"
else
    xz -c "$stripped" >"$out/gcl-repro.xz.tmp"
    mv "$out/gcl-repro.xz.tmp" "$out/gcl-repro.xz"
fi
echo "binary:   $out/gcl-repro.xz, $(mib "$(size "$out/gcl-repro.xz")") (stripped $(mib "$(size "$stripped")"), as built $(mib "$(size "$bin")"))"

# The data, in the layout `load` looks for.
file="$out/data/prepared/$prepared_name"
if [ -f "$file" ] && "$stripped" --data-root "$out/data" data info --dataset cifar10 --imbalance 100 >/dev/null 2>&1; then
    echo "data:     $file is already there and reads back; kept"
else
    [ -d "$data/cifar-10-batches-bin" ] || die "no CIFAR-10 at $data/cifar-10-batches-bin (set GCL_TEST_DATA to a data root holding it, or \`gcl-repro data fetch cifar10\`)"
    "$stripped" --data-root "$data" data prepare --dataset cifar10 --imbalance 100 --out "$file"
fi
# Found where the GPU host will look (a data root without the CIFAR binaries): the counts print.
info=$("$stripped" --data-root "$out/data" data info --dataset cifar10 --imbalance 100) \
    || die "the binary does not find the prepared data under $out/data"
printf '%s\n' "$info" | head -3
echo "data:     $file, $(mib "$(size "$file")")"

rm -f "$stripped"
total=$(du -sb "$out" | cut -f1)
tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
echo "payload:  $(mib "$total") in $out (limit $limit_mib MiB)"
echo "tree:     $(mib "$tree") (tracked and untracked-not-ignored files, which travel too); with the payload $(mib $((total + tree))) of the 64 MiB a job carries"
if [ "$total" -gt $((limit_mib * 1048576)) ]; then
    die "the payload is $(mib "$total"), over $limit_mib MiB: it does not fit in a GPU job with the working tree"
fi
if [ $((total + tree)) -gt $((64 * 1048576)) ]; then
    die "payload + working tree is $(mib $((total + tree))), over the 64 MiB a GPU job carries"
fi
case "$(cd "$root" && git check-ignore -q "$out" 2>/dev/null && echo ignored)" in
    ignored) ;;
    *) case "$out" in "$root"/*) echo "gpu-pack: warning: $out is inside the repository but not git-ignored: it would travel as untracked files" ;; esac ;;
esac
echo "ok: send the working tree with ${out#"$root"/} carried, then run scripts/gpu-check.sh OUTDIR there"
