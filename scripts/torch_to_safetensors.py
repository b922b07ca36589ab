#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (.pth / .pth.tar, as the released GCL, LDAM-DRW or MiSLAS code
saves it) into a safetensors state_dict that `model.init_from` and `gcl-repro eval --weights`
read.

    .venv/bin/python scripts/torch_to_safetensors.py CHECKPOINT.pth.tar OUT.safetensors [--key state_dict] [--trust]

The state_dict is `checkpoint[KEY]` when the checkpoint is a dict holding KEY (default
`state_dict`, the released scripts' `save_checkpoint`), else the checkpoint itself. Names are
kept as PyTorch wrote them; gcl-repro drops DataParallel's `module.` prefix and
`num_batches_tracked` when it loads them. Only tensors are written.

torch.load runs with weights_only=True (no code from the file is executed). A checkpoint that
pickles other objects (argparse namespaces, numpy scalars) needs --trust: use it only for files
you trust.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402


def state_dict_of(checkpoint, key):
    if isinstance(checkpoint, dict) and key in checkpoint and isinstance(checkpoint[key], dict):
        return checkpoint[key]
    if isinstance(checkpoint, dict) and all(torch.is_tensor(v) for v in checkpoint.values()):
        return checkpoint
    keys = list(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
    sys.exit(f"error: no state_dict under `{key}` in this checkpoint (its keys: {keys}); name one with --key")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--key", default="state_dict", help="the checkpoint entry holding the state_dict")
    ap.add_argument("--trust", action="store_true", help="unpickle everything (weights_only=False)")
    args = ap.parse_args()
    try:
        checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=not args.trust)
    except Exception as e:  # noqa: BLE001 - the message says what to do
        sys.exit(f"error: cannot read {args.checkpoint} with weights_only=True ({e}); if you trust the file, rerun with --trust")
    sd = state_dict_of(checkpoint, args.key)
    tensors = {k: v for k, v in sd.items() if torch.is_tensor(v)}
    safetensors_np.save(tensors, args.out, metadata={"source": os.path.basename(args.checkpoint)})
    print(f"wrote {args.out}: {len(tensors)} tensors from {args.checkpoint}")


if __name__ == "__main__":
    main()
