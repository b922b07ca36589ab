"""PyTorch side of tests/lockstep_cifar.rs: the released GCL stage 1 (ResNet-32, cosine head,
GCL s = 30, c = 0.5, mixup, SGD 0.9 / wd 2e-4, batch 128) on the real CIFAR-10-LT (gamma 100),
float32 as released, in lockstep with the Rust engine over whole epochs.

    python scripts/lockstep_cifar.py --data-dir DATA/cifar-10-batches-bin --out OUT.npz \
        [--epochs 1] [--warmup 5] [--seed 123] [--threads 2] [--dtype float32]

Written from the released code (Keke921/GCLLoss cifar_train_backbone.py, losses.py, utils.py,
models/resnet_cifar.py, through scripts/resnet_cifar.py and scripts/lockstep_torch.py) and
PyTorch's own modules, never from the Rust engine. The whole random stream is drawn first (each
epoch's shuffled order, every image's crop offset and flip, each step's mixup lambda and
permutation and GCL's two noise samples), then the same stream trains three PyTorch
trajectories from the same initial weights:
  ref       the released recipe as written (NCHW tensors, as the released code has them);
  ulp       the same, from initial weights moved by one ulp (every element, towards +inf): how far
            float32 rounding alone carries PyTorch from itself;
  nhwc      the same initial weights with the network and its input in channels-last memory
            order (`torch.channels_last`), which gcl-repro uses on CPU: other convolution and
            BatchNorm kernels, so other rounding at every step, as a second engine's.
  kernels   (only with --trajectories ... kernels; 7x slower) oneDNN switched off.
The Rust test replays the stream through our engine from the same initial weights and compares
ours-vs-ref with PyTorch's own spread (ulp-vs-ref, nhwc-vs-ref), step by step.

Output keys (np.savez):
  meta/settings int64 [N, C, BATCH, EPOCHS, WARMUP, M1, M2, DOUBLE]; meta/checkpoints int64 [K]
  data/images uint8 [N,3,32,32], data/labels int64 [N], data/counts int64 [C]
  init/<name>                       the initial weights (our stored names, scripts/lockstep_torch.py)
  e<E>/order, oy, ox, flip          int64 [N] per epoch (1-based), as scripts/lockstep_torch.py
  s<K>/lam [1], perm [b], eps_a, eps_b [b, C]   step K's mixup and GCL draws
  <traj>/loss, <traj>/lr [S] float64; <traj>/norm/<name> [S]: every tensor's L2 norm after each step
  <traj>/at<K>/<name>               every tensor after step K (K in meta/checkpoints; 1-based)
"""
import argparse
import contextlib
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lockstep_torch as ls  # noqa: E402  (the released loss, schedule, loader and names)
from fidelity_torch import long_tailed_indices, read_cifar10_bin  # noqa: E402
from resnet_cifar import resnet32  # noqa: E402  (the released models/resnet_cifar.py)

C = 10
BATCH = 128
PAD = 4
TRAJECTORIES = ("ref", "ulp", "nhwc")


def cifar10_lt(data_dir):
    """The Cao et al. CIFAR-10-LT (gamma 100) subset of the official training set."""
    parts = [read_cifar10_bin(os.path.join(data_dir, f"data_batch_{i}.bin")) for i in range(1, 6)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    keep, counts = long_tailed_indices(labels, 100.0)
    return images[keep], labels[keep], counts


def draw_stream(rec, n, epochs):
    """Every random choice of the run, drawn as the released code draws it: randperm order per
    epoch, RandomCrop's offsets and RandomHorizontalFlip per image, mixup's numpy lambda and
    torch permutation, GCL's float32 Normal(0, 1/3) sample per loss term."""
    normal = torch.distributions.normal.Normal(0, 1 / 3)
    step = 0
    for epoch in range(1, epochs + 1):
        rec[f"e{epoch}/order"] = torch.randperm(n).numpy().astype(np.int64)
        rec[f"e{epoch}/oy"] = torch.randint(0, 2 * PAD + 1, (n,)).numpy().astype(np.int64)
        rec[f"e{epoch}/ox"] = torch.randint(0, 2 * PAD + 1, (n,)).numpy().astype(np.int64)
        rec[f"e{epoch}/flip"] = (torch.rand(n) < 0.5).numpy().astype(np.int64)
        for start in range(0, n, BATCH):
            b = min(BATCH, n - start)
            rec[f"s{step}/lam"] = np.array([np.random.beta(1.0, 1.0)])
            rec[f"s{step}/perm"] = torch.randperm(b).numpy().astype(np.int64)
            rec[f"s{step}/eps_a"] = normal.sample((b, C)).numpy()
            rec[f"s{step}/eps_b"] = normal.sample((b, C)).numpy()
            step += 1
    return step


def batches(rec, images, labels, epoch):
    """The epoch's batches: zero-pad, crop at the recorded offsets, flip, ToTensor, Normalize
    (float32, as torchvision), in the recorded order."""
    order, oy, ox, flip = (torch.from_numpy(rec[f"e{epoch}/{k}"]) for k in ("order", "oy", "ox", "flip"))
    mean = torch.tensor(ls.MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(ls.STD, dtype=torch.float32).view(1, 3, 1, 1)
    for start in range(0, len(order), BATCH):
        idx = slice(start, start + BATCH)
        padded = torch.nn.functional.pad(images[order[idx]], (PAD, PAD, PAD, PAD))
        ar = torch.arange(32)
        rows = (oy[idx][:, None] + ar)[:, None, :, None]
        cols = (ox[idx][:, None] + ar)[:, None, None, :]
        b = torch.arange(len(order[idx]))[:, None, None, None]
        ch = torch.arange(3)[None, :, None, None]
        x = padded[b, ch, rows, cols]
        x = torch.where(flip[idx].bool()[:, None, None, None], x.flip(-1), x)
        yield x.to(torch.float32).div(255).sub_(mean).div_(std), labels[order[idx]]


def norms(model):
    return {k: float(np.linalg.norm(v.reshape(-1))) for k, v in ls.state(model).items()}


def trajectory(rec, name, init, data, args, steps):
    """One PyTorch run of the recorded stream from `init` (cifar_train_backbone.py's loop:
    the rate set per epoch, then per batch mixup, the two GCL terms, zero_grad, backward, step)."""
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    images, labels, counts = data
    model = resnet32(C, use_norm=True).to(dtype)
    model.load_state_dict({k: v.clone() for k, v in init.items()})
    layout = torch.channels_last if name == "nhwc" else torch.contiguous_format
    model = model.to(memory_format=layout)
    model.train()
    criterion = ls.GCLLoss(counts, m=0.0, s=30, noise_mul=0.5, dtype=dtype)
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)
    m1, m2 = args.milestones
    losses, lrs, per_step = [], [], []
    step = 0
    kernels = torch.backends.mkldnn.flags(enabled=False) if name == "kernels" else contextlib.nullcontext()
    started = time.time()
    with kernels:
        for epoch in range(1, args.epochs + 1):
            ls.set_lr(optimizer, ls.lr_warmup_step(epoch - 1, warmup=args.warmup, m1=m1, m2=m2))
            for x, y in batches(rec, images, labels, epoch):
                lam, perm = rec[f"s{step}/lam"][0], torch.from_numpy(rec[f"s{step}/perm"])
                criterion.replay = [torch.from_numpy(rec[f"s{step}/eps_a"]), torch.from_numpy(rec[f"s{step}/eps_b"])]
                x = x.to(dtype)
                out = model((lam * x + (1 - lam) * x[perm]).contiguous(memory_format=layout))
                loss = lam * criterion(out, y) + (1 - lam) * criterion(out, y[perm])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                losses.append(loss.item())
                lrs.append(optimizer.param_groups[0]["lr"])
                per_step.append(norms(model))
                if step in args.checkpoints or step == steps:
                    for k, v in ls.state(model).items():
                        rec[f"{name}/at{step}/{k}"] = v.astype(np.float32) if dtype == torch.float32 else v
    rec[f"{name}/loss"], rec[f"{name}/lr"] = np.array(losses), np.array(lrs)
    for k in per_step[0]:
        rec[f"{name}/norm/{k}"] = np.array([n[k] for n in per_step])
    print(f"lockstep_cifar: {name}: {steps} steps in {time.time() - started:.0f} s, final loss {losses[-1]:.4f}",
          flush=True)


def one_ulp_up(init):
    return {k: torch.nextafter(v, torch.full_like(v, float("inf"))) if v.is_floating_point() else v.clone()
            for k, v in init.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5, help="warm-up epochs (released 5)")
    ap.add_argument("--milestones", type=int, nargs=2, default=[160, 180])
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--checkpoints", type=int, nargs="*", default=[1, 10, 30, 97])
    ap.add_argument("--trajectories", nargs="+", default=list(TRAJECTORIES), choices=["ref", "ulp", "nhwc", "kernels"])
    ap.add_argument("--limit", type=int, default=0, help="keep only the first N images (a quick try of the script)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    images, labels, counts = cifar10_lt(args.data_dir)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    rec = {
        "meta/settings": np.array([len(labels), C, BATCH, args.epochs, args.warmup, *args.milestones,
                                   int(args.dtype == "float64")], dtype=np.int64),
        "data/images": images, "data/labels": labels, "data/counts": np.array(counts, dtype=np.int64),
    }
    init = {k: v.to(dtype) if v.is_floating_point() else v
            for k, v in resnet32(C, use_norm=True).state_dict().items()}
    for k, v in init.items():
        if not k.endswith("num_batches_tracked"):
            rec[f"init/{ls.our_name(k)}"] = v.numpy().copy()
    steps = draw_stream(rec, len(labels), args.epochs)
    args.checkpoints = sorted(set(c for c in args.checkpoints if c <= steps) | {steps})
    rec["meta/checkpoints"] = np.array(args.checkpoints, dtype=np.int64)
    data = (torch.from_numpy(images), torch.from_numpy(labels), counts)
    for name in args.trajectories:
        trajectory(rec, name, one_ulp_up(init) if name == "ulp" else init, data, args, steps)
    np.savez(args.out, **rec)


if __name__ == "__main__":
    main()
