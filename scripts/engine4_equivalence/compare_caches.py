#!/usr/bin/env python3
"""Compare two run caches tensor by tensor: the runs of engine3.toml trained by an engine-3 build
(commit 8ac7cdc) against those of engine4.toml (the same runs in engine 4's manifest syntax)
trained by an engine-4 build. Runs are matched by their per-epoch metrics; for each pair the
stored weights are compared byte for byte.

    OLD=... (engine-3 binary) NEW=target/release/gcl-repro
    $OLD --cache-dir /tmp/e3 --device cpu run scripts/engine4_equivalence/engine3.toml
    $NEW --cache-dir /tmp/e4 --device cpu run scripts/engine4_equivalence/engine4.toml
    python3 scripts/engine4_equivalence/compare_caches.py /tmp/e3 /tmp/e4

Expected (engine 4's changes): every run identical, except that stage 2 no longer stores an
unused `lws.scale` for crt/tau_norm, and the `init = "reinit"` stage 2 differs (engine 3 trained
no classifier there).

To compare caches, use `gcl-repro compare A B` (e.g. `--ignore engine` across engine versions,
`--ignore device` against the runs of a GPU host after `cache import`, or with the archive
itself): it matches cells by their settings and says per cell whether the final weights are
byte-identical. This script is kept only as the record of the engine-3/4 check, which needed
its two features: engine 4 renamed settings (`stage2.method` became
`stage2.rebalance.method`), so runs are matched by their per-epoch metrics here, and weights
are compared tensor by tensor to name the tensors that differ or exist on one side only."""
import glob, hashlib, json, os, struct, sys


def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}


def runs(cache):
    out = {}
    for d in glob.glob(os.path.join(cache, "runs", "*")):
        m = json.load(open(os.path.join(d, "metrics.json")))
        sig = tuple((e["epoch"], e["train_loss"], e["test_top1"]) for e in m["epochs"])
        out.setdefault(m["stage"], []).append((d, sig))
    return out


def main(old_cache, new_cache):
    old, new = runs(old_cache), runs(new_cache)
    for stage in sorted(old):
        for d, sig in old[stage]:
            match = [n for n, s in new.get(stage, []) if s == sig]
            name = os.path.basename(d)[:12]
            if not match:
                print(f"stage {stage} {name}: no engine-4 run with the same metrics")
                continue
            a, b = tensors(os.path.join(d, "model.safetensors")), tensors(os.path.join(match[0], "model.safetensors"))
            common = sorted(set(a) & set(b))
            differ = [k for k in common if a[k] != b[k]]
            print(f"stage {stage} {name} -> {os.path.basename(match[0])[:12]}: {len(common)} tensors in both, "
                  f"{len(differ)} differ, only engine 3: {sorted(set(a) - set(b))}, only engine 4: {sorted(set(b) - set(a))}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
