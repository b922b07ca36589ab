#!/usr/bin/env python3
"""PyTorch side of `gcl-repro bench train`: wall time of the released GCL stage-1 training loop
(Li et al., CVPR 2022; github.com/Keke921/GCLLoss) on CIFAR-10-LT (imbalance 100, 12,406 training
images) for N steps, plus ONE evaluation on the 10,000 test images.

    python scripts/bench_train_torch.py --pipeline released|tensor --steps N [--warmup 5]
        [--batch 64] [--threads T] [--device cpu|cuda|cuda:0]
        [--data-root DIR | --synthetic] [--workers N] [--seed 0]

Recipe (both pipelines; facts from the released code, cited as [backbone] =
cifar_train_backbone.py, [losses] = losses.py, [resnet] = models/resnet_cifar.py, [utils] =
utils.py): ResNet-32 (option-A shortcuts, kaiming-normal convs) with the NormedLinear cosine
head (use_norm, loss GCL); GCLLoss(m=0, s=30, noise_mul=0.5): "log" cloud, delta = (log n_max -
log n_j) / max, noise ~ |clamp(Normal(0, 1/3), -1, 1)| fresh per call; mixup alpha 1 (lam =
np.random.beta(1, 1), torch.randperm), loss lam*GCL(out, y) + (1-lam)*GCL(out, y[perm]); SGD lr
0.1 (the step-1 lr; the warm-up lr changes nothing in the cost), momentum 0.9, weight decay 2e-4;
batch 64; augmentation RandomCrop(32, padding=4) + RandomHorizontalFlip + Normalize((0.4914,
0.4822, 0.4465), (0.2023, 0.1994, 0.2010)).

--pipeline released: as [backbone] trains. A Dataset over the uint8 HWC images returning
  transform(PIL.Image.fromarray(img)) with torchvision's RandomCrop/RandomHorizontalFlip/ToTensor/
  Normalize; DataLoader(shuffle=True, batch 64, num_workers = [backbone]'s `-j/--workers`
  default, which is 0, unless --workers, pin_memory=True); NCHW model with the released forward
  (F.relu not in place, `out += shortcut(x)`); torch.optim.SGD defaults (foreach); per step, as
  [backbone] train(): inputs .to(device, non_blocking=True), mixup_data, the loss, the logged
  loss.item() and top-1/top-5 accuracy of both mixup targets, zero_grad / backward / step. The
  GCL noise is drawn on the CPU and copied to the device, as [losses]. Evaluation as [backbone]
  validate(): model.eval(), torch.no_grad(), a DataLoader of batch 256 (ToTensor + Normalize,
  shuffle=False, same workers, pin_memory=True), the criterion's loss, top-1/top-5, predictions
  gathered on the host and per-class accuracy (numpy here; the released code calls sklearn's
  confusion_matrix). Left out: printing/logging to files, tensorboard, checkpoint saving, and
  nn.DataParallel (the released default wraps the model in it; over one GPU it only moves the
  input, as shared/gpu/torch_reference.py's "official" mode also leaves it out). On CUDA,
  cudnn.deterministic and cudnn.benchmark are set as [backbone] sets them.

--pipeline tensor: the fastest eager PyTorch loop found for the same recipe. Train images are
  held once on the device as uint8 NHWC, padded to 40x40 (zeros, like RandomCrop's padding of the
  raw image); per step one advanced-indexing gather makes the batch AND its mixup partner
  (rows/cols = offset + arange, the flip folded into the column index), then lerp (mixup, done
  on [0,255] values: normalisation is affine and the weights sum to 1) and one addcmul
  (normalisation), giving an NCHW tensor with channels_last strides without a copy. Sampler:
  a device randperm per epoch, full batches. Model in channels_last with in-place ReLUs; GCL as
  released (two calls, fresh noise each) but with the noise drawn on the device and noise_mul *
  delta / max precomputed; SGD fused=True; zero_grad(set_to_none=True); no per-step host sync
  (no loss.item(), no accuracy). Evaluation: torch.inference_mode(), channels_last, batches of
  256 on CPU (1000 on CUDA: not measured here, but a forward of this model on a GPU is
  launch-bound, so fewer, larger batches), the hits summed on the device, one host sync at the end.

  What was tried (this project's CPU machine: 2 cores of an AMD EPYC with AVX-512 and
  avx512_bf16, torch 2.11.0, real or synthetic data, batch 64). The machine was shared with other
  builds and benchmarks (load average 2.5-6 on 2 cores), which makes 2-thread wall times swing by
  2-4x from one run to the next (an OpenMP region waits for its slowest, descheduled thread). So
  the comparisons below are 1 thread, process CPU time, variants built in one process and timed
  in alternating rounds (median of 3-4 rounds of 2-3 steps); ms per training step, augmentation
  and optimiser included:
    - memory format: NCHW contiguous 379 ms/step, channels_last 311 (-18%)  -> channels_last
    - ReLU: out of place 324, in place 311 (-4%)                            -> in place
    - SGD: foreach 311, fused=True 319, the same within noise; the optimiser step alone (min of
      300): for-loop 1.11 ms, foreach 0.73, fused 0.53 (fused SGD exists on CPU in torch 2.11)
      -> fused (the faster optimiser step; the same training step within noise)
    - GCL of the two mixup terms: two calls 305, one call over the stacked 2B rows 311: no gain
      (and about as many kernels) -> two calls, as released (--gcl-calls 1 keeps the variant)
    - evaluation, seconds per 10,000 test images: batch 64 / 128 / 200 / 256 / 500 / 1000 / 2000
      = 15.5 / 15.8 / 16.9 / 15.1-16.2 / 17.1 / 23.4 / 25.7 (past ~500 the activations leave the
      cache) -> 256 on CPU; at batch 1000 channels_last 24.0 vs NCHW 34.7; inference_mode 23.5
      vs no_grad 22.9 (the same) -> inference_mode kept (no autograd bookkeeping at all)
    - bf16 autocast (not kept: the recipe trains in fp32): forward+backward ~215 vs ~370 ms
  The two pipelines side by side (real data, one process, alternating rounds of 5 steps):
    - 1 thread, CPU time: released 407 ms/step, tensor 310 (-24%); evaluation 28.3 vs 17.5 s
    - 2 threads, wall: released median 798 ms/step (min 683), tensor 605 (min 162);
      evaluation 15.9 vs 9.4 s
  End to end, this script, 2 threads, real data, --steps 200 (one epoch boundary crossed), in
  a quiet spell of the machine: tensor 160.1 ms/step, evaluation 9.13 s, 311 images/s overall;
  released 219.8 ms/step, evaluation 14.29 s, 220 images/s overall. The same two runs earlier,
  under load, gave 915 and 887 ms/step and evaluations of 50 and 14 s: compare pipelines only
  from runs made close together, or on a machine of one's own.
  (Besides NCHW, the released step pays 64 per-image PIL transforms (~0.1 ms each), the
  CPU-side noise, and loss.item() + top-1/top-5 every step; its evaluation runs NCHW at batch
  256 and computes the GCL loss and top-k of each batch.) The knobs stay as options
  (--memory-format, --relu, --sgd, --gcl-calls, --eval-batch, --eval-grad-mode) so the table can
  be re-measured; their defaults are the choices above.

Untimed: start-up, data reading, model building, --warmup steps. Timed: --steps training steps
(loader / tensor pipeline included; epochs of the sampler chained, full batches only), then one
full evaluation of the 10,000 test images (CUDA synchronised before each clock read).

stdout: exactly one JSON line {"pipeline", "steps", "batch", "train_seconds", "eval_seconds",
"images_per_sec", "train_images_per_sec", "eval_images_per_sec", "test_top1", "device",
"threads", "torch"[, "workers"]}; everything else on stderr.
"""
import argparse
import json
import os
import random
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fidelity_torch as ft  # noqa: E402  (CIFAR-10 reader, long-tailed subset, NormedLinear)

MEAN, STD = ft.MEAN, ft.STD
NUM_CLASSES = 10
IMBALANCE = 100.0
RELEASED_WORKERS = 0      # [backbone] parser '-j/--workers' default=0
RELEASED_TEST_BATCH = 256  # [backbone] val_loader batch_size=256
TENSOR_EVAL_BATCH_CPU = 256    # measured fastest on CPU (cache-bound beyond ~500; see above)
TENSOR_EVAL_BATCH_CUDA = 1000  # launch-bound on a GPU: fewer, larger batches
CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data
def load_data(args):
    """(train HWC uint8, train labels int64, test HWC uint8, test labels, class counts)."""
    if args.synthetic:
        counts = [int(5000 * (1.0 / IMBALANCE) ** (i / (NUM_CLASSES - 1.0))) for i in range(NUM_CLASSES)]
        rng = np.random.default_rng(args.seed)
        tr_y = np.repeat(np.arange(NUM_CLASSES), counts).astype(np.int64)
        tr_x = rng.integers(0, 256, size=(tr_y.size, 32, 32, 3), dtype=np.uint8)
        te_y = np.tile(np.arange(NUM_CLASSES), 1000).astype(np.int64)
        te_x = rng.integers(0, 256, size=(te_y.size, 32, 32, 3), dtype=np.uint8)
        return tr_x, tr_y, te_x, te_y, counts
    d = os.path.join(args.data_root, "cifar-10-batches-bin")
    for f in CIFAR_FILES:
        if not os.path.isfile(os.path.join(d, f)):
            fail(f"CIFAR-10 binary data not found: {os.path.join(d, f)} is missing; pass --data-root DIR "
                 f"where DIR/cifar-10-batches-bin holds the official binary CIFAR-10 "
                 f"(data_batch_1..5.bin, test_batch.bin), or --synthetic")
    parts = [ft.read_cifar10_bin(os.path.join(d, f)) for f in CIFAR_FILES[:5]]
    all_x = np.concatenate([p[0] for p in parts])
    all_y = np.concatenate([p[1] for p in parts])
    keep, counts = ft.long_tailed_indices(all_y, IMBALANCE)  # released IMBALANCECIFAR10 subset
    te_x, te_y = ft.read_cifar10_bin(os.path.join(d, "test_batch.bin"))
    hwc = lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # as torchvision's CIFAR10.data
    return hwc(all_x[keep]), all_y[keep], hwc(te_x), te_y, counts


# ---------------------------------------------------------------- model ([resnet])
class BasicBlock(nn.Module):
    """[resnet] BasicBlock, option A shortcut (x[:, :, ::2, ::2], planes//4 zero channels each side)."""

    def __init__(self, cin, cout, stride, inplace):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout // 4 if (stride != 1 or cin != cout) else None
        self.inplace = inplace

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=self.inplace)
        out = self.bn2(self.conv2(out))
        out += x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out, inplace=self.inplace)


class ResNet32(nn.Module):
    """[resnet] ResNet_s(BasicBlock, [5, 5, 5]) with NormedLinear(64, 10) (use_norm for GCL)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * 4:
                blocks.append(BasicBlock(cin, cout, s, inplace))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = ft.NormedLinear(64, NUM_CLASSES)
        for m in self.modules():  # [resnet] _weights_init
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=self.inplace)
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size(3)).flatten(1)
        return self.linear(out)


def log_delta(counts, device):
    """[losses] GCLLoss m_list: log n_max - log n_j (the 'log' cloud), on the device."""
    logn = torch.log(torch.tensor(counts, dtype=torch.float32, device=device))
    return logn.max() - logn


# ---------------------------------------------------------------- released pipeline
class ReleasedGCL:
    """[losses] GCLLoss.forward with m=0, s=30, noise_mul=0.5, weight None, train_cls False; the
    noise is sampled on the CPU (torch.distributions) and copied to the device, as released."""

    def __init__(self, counts, device, s=30.0, m=0.0, noise_mul=0.5):
        self.m_list = log_delta(counts, device)
        self.s, self.m, self.noise_mul = s, m, noise_mul
        self.sampler = torch.distributions.Normal(0.0, 1.0 / 3.0)

    def __call__(self, cosine, target):
        index = torch.zeros_like(cosine, dtype=torch.bool)
        index.scatter_(1, target.view(-1, 1), True)
        noise = self.sampler.sample(cosine.shape).clamp(-1, 1).to(cosine.device)
        cosine = cosine - self.noise_mul * noise.abs() / self.m_list.max() * self.m_list
        output = torch.where(index, cosine - self.m, cosine)
        return F.cross_entropy(self.s * output, target)


def topk_accuracy(output, target, topk=(1, 5)):
    """[utils] accuracy: percentage of rows whose target is among the top k."""
    with torch.no_grad():
        _, pred = output.topk(max(topk), 1, True, True)
        correct = pred.t().eq(target.view(1, -1).expand(max(topk), -1))
        return [correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / target.size(0)) for k in topk]


def run_released(args, device, data, sync):
    from PIL import Image  # presence checked in main()
    import torchvision.transforms as T
    tr_x, tr_y, te_x, te_y, counts = data
    workers = RELEASED_WORKERS if args.workers is None else args.workers
    if device.type == "cuda":  # [backbone]: seeded -> deterministic; then benchmark = True
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = True
    norm = T.Normalize(MEAN, STD)
    tf_train = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    tf_val = T.Compose([T.ToTensor(), norm])

    class ImageSet(torch.utils.data.Dataset):  # the CIFAR10 / IMBALANCECIFAR10 __getitem__
        def __init__(self, x, y, transform):
            self.x, self.y, self.transform = x, [int(v) for v in y], transform

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.x[i])), self.y[i]

    # drop_last: the benchmark times full batches only (the released loader keeps the last one).
    train_loader = torch.utils.data.DataLoader(ImageSet(tr_x, tr_y, tf_train), batch_size=args.batch,
                                               shuffle=True, num_workers=workers, pin_memory=True,
                                               drop_last=True)
    val_loader = torch.utils.data.DataLoader(ImageSet(te_x, te_y, tf_val), batch_size=RELEASED_TEST_BATCH,
                                             shuffle=False, num_workers=workers, pin_memory=True)
    model = ResNet32(inplace=False).to(device)
    criterion = ReleasedGCL(counts, device)
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)

    def batches():  # epochs of the shuffled loader chained
        while True:
            yield from train_loader

    def step(inp, target):  # [backbone] train(), args.mixup True
        inp = inp.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        lam = np.random.beta(1.0, 1.0)  # [utils] mixup_data, alpha 1
        index = torch.randperm(inp.size(0)).to(device)
        images = lam * inp + (1 - lam) * inp[index, :]
        ta, tb = target, target[index]
        output = model(images)
        loss = lam * criterion(output, ta) + (1 - lam) * criterion(output, tb)  # mixup_criterion
        a1a, a5a = topk_accuracy(output, ta)
        a1b, a5b = topk_accuracy(output, tb)
        acc1, acc5 = lam * a1a + (1 - lam) * a1b, lam * a5a + (1 - lam) * a5b
        stats = (loss.item(), acc1[0], acc5[0])  # AverageMeter updates
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return stats

    def evaluate():  # [backbone] validate()
        model.eval()
        preds, targets, losses = [], [], []
        with torch.no_grad():
            for inp, target in val_loader:
                inp = inp.to(device, non_blocking=True)
                target = target.to(device, non_blocking=True)
                output = model(inp)
                loss = criterion(output, target)
                acc1, acc5 = topk_accuracy(output, target)
                losses.append(loss.item())
                _, pred = torch.max(output, 1)
                preds.extend(pred.cpu().numpy())
                targets.extend(target.cpu().numpy())
        preds, targets = np.array(preds), np.array(targets)
        cls_acc = np.bincount(targets[preds == targets], minlength=NUM_CLASSES) / np.bincount(targets, minlength=NUM_CLASSES)
        log(f"[released] eval per-class accuracy {np.round(cls_acc, 3).tolist()}")
        return 100.0 * float((preds == targets).mean())

    model.train()
    it = batches()
    return dict(step=lambda: step(*next(it)), evaluate=evaluate, extra={"workers": workers})


# ---------------------------------------------------------------- tensor pipeline
def run_tensor(args, device, data, sync):
    tr_x, tr_y, te_x, te_y, counts = data
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cl = args.memory_format == "channels_last"
    N, B = tr_y.size, args.batch
    # uint8 NHWC on the device, zero-padded by 4 once (RandomCrop's padding of the raw image).
    P = F.pad(torch.from_numpy(tr_x), (0, 0, 4, 4, 4, 4)).to(device)  # N x 40 x 40 x 3
    Y = torch.from_numpy(tr_y).to(device)
    TX, TY = torch.from_numpy(te_x).to(device), torch.from_numpy(te_y).to(device)
    mean = torch.tensor(MEAN, device=device)
    std = torch.tensor(STD, device=device)
    scale, shift = 1.0 / (255.0 * std), -mean / std  # ((x / 255) - mean) / std = x * scale + shift
    ar = torch.arange(32, device=device)
    ar_rev = 31 - ar

    model = ResNet32(inplace=args.relu == "inplace").to(device)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    opt_kw = {"fused": True} if args.sgd == "fused" else {"foreach": True}
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4, **opt_kw)
    delta = log_delta(counts, device)
    cdelta = 0.5 * delta / delta.max()  # noise_mul * m_list / m_list.max(), precomputed

    def to_model(x_nhwc_float):
        x = x_nhwc_float.permute(0, 3, 1, 2)  # NCHW view with channels_last strides
        return x if cl else x.contiguous()

    def batches():
        while True:
            perm = torch.randperm(N, device=device)
            for k in range(N // B):
                yield perm[k * B:(k + 1) * B]

    it = batches()

    def gcl_terms(cos, ya, yb, lam):
        if args.gcl_calls == 2:  # as released: two calls, fresh noise each
            def one(y):
                noise = torch.randn_like(cos).div_(3.0).clamp_(-1.0, 1.0).abs_()
                return F.cross_entropy(30.0 * (cos - noise * cdelta), y)
            return lam * one(ya) + (1 - lam) * one(yb)
        # one call over the 2B rows [cos, cos], each with its own noise, weighted lam / (1-lam)
        noise = torch.randn((2,) + cos.shape, device=cos.device).div_(3.0).clamp_(-1.0, 1.0).abs_()
        z = (cos.unsqueeze(0) - noise * cdelta).mul_(30.0).flatten(0, 1)
        ce = F.cross_entropy(z, torch.cat([ya, yb]), reduction="none").view(2, -1)
        return ce[0].mean() * lam + ce[1].mean() * (1 - lam)

    def step():
        idx = next(it)
        lam = float(np.random.beta(1.0, 1.0))  # [utils] mixup_data, alpha 1
        p = torch.randperm(B, device=device)
        off = torch.randint(0, 9, (B, 2), device=device)  # RandomCrop offsets, uniform {0..8}
        flip = torch.rand(B, 1, device=device) < 0.5
        rows = off[:, :1] + ar
        cols = off[:, 1:] + torch.where(flip, ar_rev, ar)
        # the batch and its mixup partner x[p] (same crops) in one gather: 2B x 32 x 32 x 3
        ii, rr, cc = torch.cat([idx, idx[p]]), torch.cat([rows, rows[p]]), torch.cat([cols, cols[p]])
        xb = P[ii[:, None, None], rr[:, :, None], cc[:, None, :]].float()
        x = torch.lerp(xb[B:], xb[:B], lam)  # lam * x + (1 - lam) * x[p]
        x = torch.addcmul(shift, x, scale)
        y = Y[idx]
        out = model(to_model(x))
        loss = gcl_terms(out, y, y[p], lam)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def evaluate():
        model.eval()
        eb = args.eval_batch or (TENSOR_EVAL_BATCH_CUDA if device.type == "cuda" else TENSOR_EVAL_BATCH_CPU)
        hits = torch.zeros((), dtype=torch.int64, device=device)
        ctx = torch.inference_mode() if args.eval_grad_mode == "inference_mode" else torch.no_grad()
        with ctx:
            for k in range(0, TY.numel(), eb):
                x = torch.addcmul(shift, TX[k:k + eb].float(), scale)
                hits += (model(to_model(x)).argmax(1) == TY[k:k + eb]).sum()
        return 100.0 * hits.item() / TY.numel()

    model.train()
    return dict(step=step, evaluate=evaluate, extra={})


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", choices=["released", "tensor"], required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-root", help="DIR holding cifar-10-batches-bin/")
    src.add_argument("--synthetic", action="store_true", help="random uint8 images of the same sizes")
    ap.add_argument("--workers", type=int, default=None, help="released: DataLoader workers (default: released 0)")
    ap.add_argument("--seed", type=int, default=0)
    k = ap.add_argument_group("tensor pipeline knobs (defaults: the fastest measured; see the docstring)")
    k.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last")
    k.add_argument("--relu", choices=["inplace", "copy"], default="inplace")
    k.add_argument("--sgd", choices=["fused", "foreach"], default="fused")
    k.add_argument("--gcl-calls", type=int, choices=[1, 2], default=2)
    k.add_argument("--eval-batch", type=int, default=None, help="default: 256 on CPU, 1000 on CUDA")
    k.add_argument("--eval-grad-mode", choices=["inference_mode", "no_grad"], default="inference_mode")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        fail("--steps must be >= 1, --warmup >= 0, --batch >= 1")

    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        fail(f"bad --device {args.device!r}: {e}")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device; use --device cpu")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.pipeline == "released":  # fail before reading data when torchvision is missing
        try:
            import PIL  # noqa: F401
            import torchvision  # noqa: F401
        except ImportError as e:
            tv = "torchvision==0.26.0" if torch.__version__.startswith("2.11.") else "torchvision"
            fail(f"--pipeline released needs torchvision and pillow ({e}); install them into this Python: "
                 f"{sys.executable} -m pip install {tv} pillow (the torchvision release matching torch "
                 f"{torch.__version__.split('+')[0]})")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    t_load = time.perf_counter()
    data = load_data(args)
    n_train = data[1].size
    if n_train < args.batch:
        fail(f"--batch {args.batch} is larger than the {n_train} training images")
    log(f"[{args.pipeline}] data: {n_train} train ({'synthetic' if args.synthetic else args.data_root}), "
        f"{data[3].size} test, class counts {list(data[4])}, read in {time.perf_counter() - t_load:.2f}s")

    run = (run_released if args.pipeline == "released" else run_tensor)(args, device, data, sync)
    for _ in range(args.warmup):
        run["step"]()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        run["step"]()
    sync()
    t1 = time.perf_counter()
    top1 = run["evaluate"]()
    sync()
    t2 = time.perf_counter()
    train_s, eval_s = t1 - t0, t2 - t1
    n_test = data[3].size
    log(f"[{args.pipeline}] {args.steps} steps in {train_s:.3f}s ({1000 * train_s / args.steps:.1f} ms/step), "
        f"eval of {n_test} in {eval_s:.3f}s, top-1 {top1:.2f}%")
    res = {"pipeline": args.pipeline, "steps": args.steps, "batch": args.batch,
           "train_seconds": train_s, "eval_seconds": eval_s,
           "images_per_sec": args.steps * args.batch / (train_s + eval_s),
           "train_images_per_sec": args.steps * args.batch / train_s,
           "eval_images_per_sec": n_test / eval_s, "test_top1": top1, "device": str(device),
           "threads": torch.get_num_threads(), "torch": torch.__version__,
           # peak resident memory of this process (Linux reports ru_maxrss in KiB)
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    res.update(run["extra"])
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
