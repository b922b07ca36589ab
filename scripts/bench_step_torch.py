"""PyTorch reference for `gcl-repro bench step`: CPU time of one training step of the released
recipe (ResNet-32, cosine head, GCL loss s=30 c=0.5, SGD momentum 0.9 wd 2e-4, batch 64).
Prints one JSON object: {"ms_per_step": ..., "threads": ..., "steps": ..., "batch": ...}.

    python scripts/bench_step_torch.py --threads 2 --steps 20 --warmup 3
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_cifar import resnet32  # noqa: E402
from torch_parity import gcl_loss  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(123)
    counts = torch.tensor([int(5000 * 0.01 ** (i / (args.classes - 1))) for i in range(args.classes)]).double()
    model = resnet32(args.classes, use_norm=True).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, args.classes, (args.batch,))

    def step():
        eps = torch.randn(args.batch, args.classes) / 3.0
        loss = gcl_loss(model(x), y, counts.float(), eps, 30.0, 0.5, 0.0, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    ms = (time.perf_counter() - t0) * 1000.0 / args.steps
    print(json.dumps({"ms_per_step": ms, "threads": args.threads, "steps": args.steps, "batch": args.batch}))


if __name__ == "__main__":
    main()
