#!/usr/bin/env python3
"""Independent PyTorch run of GCL (Li et al., CVPR 2022) / CE on CIFAR-10-LT, used to cross-check
the Rust/libtorch engine end to end.

Written from the authors' released code (github.com/Keke921/GCLLoss; files cited inline as
[backbone] = cifar_train_backbone.py, [classifier] = cifar_train_classifier.py, [losses] = losses.py,
[sampler] = sampler.py, [utils] = utils.py, [resnet] = models/resnet_cifar.py), the notes in
shared/reference/gcl-notes.md, and PyTorch's own module defaults. Nothing here is taken from the
Rust code.

    python scripts/fidelity_torch.py --config CONFIG.json --out RESULT.json

The result JSON holds, per stage, the final-epoch top-1, per-class accuracy and shot groups,
the per-epoch log and the training time; with `save_stage1` in the config, the stage-1 weights
are written there as a safetensors state_dict; with `save_init`, the initial weights (and with
`init_only`, nothing is trained).

Other data and networks (for paired checks on sets other than CIFAR-10-LT, e.g. the quick
start's synthetic set): `data_file`, a file of `gcl-repro data export` (train/test images and
labels, class counts, normalisation), replaces `data_dir`/`imbalance`; `blocks` is the number of
basic blocks per stage (5: ResNet-32, 1: gcl-repro's resnet_small); `init_from`, a safetensors
state_dict (PyTorch names, or a gcl-repro run's `backbone.`/`head.`-prefixed ones), sets the
initial weights, so both engines can start from the same ones (gcl-repro's own included).
"""
import argparse, json, math, os, random, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

# [backbone]/[classifier] transforms.Normalize constants.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
NUM_CLASSES = 10


# ---------------------------------------------------------------- data
def read_cifar10_bin(path):
    """Official binary record: 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B)."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32).copy(), raw[:, 0].astype(np.int64)


def long_tailed_indices(targets, gamma, C=NUM_CLASSES):
    """Cao et al. (LDAM-DRW) IMBALANCECIFAR10, used by the released code (notes §4).
    n_i = int(n_max * (1/gamma)**(i/(C-1))); np.random.seed(0); per class in order:
    idx = where(targets == c); shuffle(idx); keep idx[:n_c]. A private RandomState(0) gives the
    same MT19937 stream as the legacy global seed(0) without clobbering the run's numpy seed
    (the released code *does* reseed the global state to 0 here; see report)."""
    n_max = len(targets) / C  # img_max = len(data) / cls_num (a float)
    counts = [int(n_max * (1.0 / gamma) ** (i / (C - 1.0))) for i in range(C)]
    rs = np.random.RandomState(0)
    keep = []
    for c in range(C):
        idx = np.where(targets == c)[0]
        rs.shuffle(idx)
        keep.append(idx[:counts[c]])
    # The released dataset is class-sorted; we keep the chosen images in their original train-set
    # order instead, so that `limit_train` (first N) still contains every class. Training never
    # depends on this order (stage 1 reshuffles with randperm, stage 2 samples by weight).
    return np.sort(np.concatenate(keep)), counts


def augment(x_u8, device):
    """RandomCrop(32, padding=4) + RandomHorizontalFlip(0.5) + ToTensor + Normalize ([backbone]),
    done per image on a batch. Zero padding is applied to the raw [0,1] image, before
    normalisation, like torchvision on the PIL image. Offsets uniform in {0..8} as torchvision's
    torch.randint(0, h - th + 1)."""
    B = x_u8.shape[0]
    x = F.pad(x_u8.float().div_(255.0), (4, 4, 4, 4))  # B x 3 x 40 x 40, zeros
    i = torch.randint(0, 9, (B,)).to(device)
    j = torch.randint(0, 9, (B,)).to(device)
    flip = (torch.rand(B) < 0.5).to(device)
    ar = torch.arange(32, device=device)
    rows, cols = i[:, None] + ar, j[:, None] + ar
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    b = torch.arange(B, device=device)[:, None, None, None]
    ch = torch.arange(3, device=device)[None, :, None, None]
    x = x[b, ch, rows[:, None, :, None], cols[:, None, None, :]]
    return normalise(x)


def normalise(x01):
    m = torch.tensor(MEAN, device=x01.device).view(1, 3, 1, 1)
    s = torch.tensor(STD, device=x01.device).view(1, 3, 1, 1)
    return (x01 - m) / s


# ---------------------------------------------------------------- model ([resnet])
class NormedLinear(nn.Module):
    """[resnet] NormedLinear: weight [in, out] ~ U(-1,1), each column rescaled to unit norm;
    output = normalize(x, dim 1) @ normalize(W, dim 0) (cosine logits, no bias)."""

    def __init__(self, d, C):
        super().__init__()
        w = torch.empty(d, C).uniform_(-1.0, 1.0)
        self.weight = nn.Parameter(w / w.norm(dim=0, keepdim=True))

    def forward(self, f):
        return F.normalize(f, dim=1).mm(F.normalize(self.weight, dim=0))


class BasicBlock(nn.Module):
    """[resnet] BasicBlock, option A shortcut: x[:, :, ::2, ::2] and planes//4 zero channels each side."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout // 4 if (stride != 1 or cin != cout) else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        sc = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class ResNet32(nn.Module):
    """[resnet] ResNet_s(BasicBlock, [5,5,5]): stem conv3x3(16)+BN+ReLU, stages 16/32/64 with
    strides 1/2/2, global average pool -> 64-d feature, then the head. `blocks` per stage: 5 is
    ResNet-32, 1 gcl-repro's resnet_small (the same layers, shorter)."""

    def __init__(self, head, blocks=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)  # PyTorch default: weight 1, bias 0
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            stage = []
            for s in [stride] + [1] * (blocks - 1):
                stage.append(BasicBlock(cin, cout, s))
                cin = cout
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = head
        # [resnet] _weights_init: kaiming_normal_ on every Linear and Conv2d weight (NormedLinear
        # is neither, so it keeps its own init; nn.Linear's bias keeps PyTorch's default).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def features(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.avg_pool2d(out, out.size(3)).flatten(1)

    def forward(self, x):
        return self.linear(self.features(x))


# ---------------------------------------------------------------- losses ([losses])
class GCLLoss:
    """[losses] GCLLoss: delta = log n_max - log n_j, divided by its max; noise ~ Normal(0, 1/3)
    per (sample, class), clamp(-1, 1), abs, fresh each call; cos - c*|noise|*delta, minus m on
    the target; CE on s*(...). train_cls=True -> focal_loss: mean((1 - p.detach())**g * ce), p=exp(-ce)."""

    def __init__(self, counts, s, m, noise_mul, focal_gamma=None, device="cpu"):
        logn = torch.log(torch.tensor(counts, dtype=torch.float32, device=device))
        d = logn.max() - logn
        self.delta = d / d.max() if float(d.max()) > 0 else d
        self.s, self.m, self.c, self.g = s, m, noise_mul, focal_gamma
        self.normal = torch.distributions.Normal(0.0, 1.0 / 3.0)

    def __call__(self, cosine, y):
        noise = self.normal.sample(cosine.shape).clamp(-1, 1).to(cosine.device)
        z = cosine - self.c * noise.abs() * self.delta
        z = z - self.m * F.one_hot(y, z.shape[1]).to(z.dtype)
        ce = F.cross_entropy(self.s * z, y, reduction="none")
        if self.g is None:
            return ce.mean()
        return ((1 - torch.exp(-ce).detach()) ** self.g * ce).mean()


def cben_weights(targets, C):
    """[sampler] CBEffectNumSampler, same numpy expressions (so delta/beta are float32 as in the
    released code): beta_a = 0.9999, beta_b = 1e-5, per-class (1-beta)/(1-beta**n), per-sample
    DoubleTensor weight. Released precedence `(d - d.min())/d.max() - d.min()` kept (d.min() is 0)."""
    label_to_count = np.bincount(targets, minlength=C).tolist()
    delta = np.log(np.array(label_to_count).astype(np.float32))
    delta = delta.max() - delta
    delta = (delta - delta.min()) / delta.max() - delta.min()
    beta = 0.9999 + 1e-5 * delta
    per_cls = (1.0 - beta) / np.array(1.0 - np.power(beta, label_to_count))
    return torch.tensor(per_cls[targets], dtype=torch.float64)


def mixup(x, y):
    """[utils] mixup_data, alpha 1: lam = np.random.beta(1, 1), perm = torch.randperm(B)."""
    lam = float(np.random.beta(1.0, 1.0))
    perm = torch.randperm(x.shape[0]).to(x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


# ---------------------------------------------------------------- train / eval
def shot_groups(per_class, train_counts):
    """Mean per-class accuracy of the shot groups of Liu et al. 2019 (many: > 100 training
    images, medium: 20-100, few: < 20); None for an empty group."""
    def mean(sel):
        accs = [a for a, n in zip(per_class, train_counts) if sel(n)]
        return sum(accs) / len(accs) if accs else None
    return {"many": mean(lambda n: n > 100), "medium": mean(lambda n: 20 <= n <= 100), "few": mean(lambda n: n < 20)}


@torch.no_grad()
def evaluate(backbone, head, test_x, test_y, device, bs=500):
    """Top-1 (%) and per-class accuracy (%) on the test split."""
    backbone.eval(), head.eval()
    preds = []
    for k in range(0, test_x.shape[0], bs):
        x = normalise(test_x[k:k + bs].to(device).float() / 255.0)
        preds.append(head(backbone.features(x)).argmax(1).cpu())
    pred, y = torch.cat(preds), test_y.cpu()
    per_class = [100.0 * int((pred[y == c] == c).sum()) / max(int((y == c).sum()), 1) for c in range(NUM_CLASSES)]
    return 100.0 * int((pred == y).sum()) / y.numel(), per_class


def run_epoch(order, train_x, train_y, bs, forward, criterion, use_mixup, opt, device):
    total, n = 0.0, 0
    for k in range(0, order.numel(), bs):  # last partial batch kept (DataLoader drop_last=False)
        idx = order[k:k + bs]
        x = augment(train_x[idx].to(device), device)
        y = train_y[idx].to(device)
        if use_mixup:  # [backbone]/[classifier] train(): mixup_criterion
            x, ya, yb, lam = mixup(x, y)
            out = forward(x)
            loss = lam * criterion(out, ya) + (1 - lam) * criterion(out, yb)
        else:
            loss = criterion(forward(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
        total, n = total + loss.item() * idx.numel(), n + idx.numel()
    return total / n


def train_stage(name, epochs, lr_of, order_of, forward, criterion, use_mixup, opt, cfg_bs,
                data, train_mode, device):
    train_x, train_y, test_x, test_y, backbone, head = data
    log, t0 = [], time.time()
    for e in range(1, epochs + 1):
        lr = lr_of(e)
        for g in opt.param_groups:  # set once at the start of the epoch ([*] adjust_learning_rate)
            g["lr"] = lr
        train_mode()
        te = time.time()
        order = order_of()
        loss = run_epoch(order, train_x, train_y, cfg_bs, forward, criterion, use_mixup, opt, device)
        ips = order.numel() / (time.time() - te)
        acc, per_class = evaluate(backbone, head, test_x, test_y, device)
        log.append({"epoch": e, "lr": lr, "train_loss": loss, "test_top1": acc})
        print(f"[{name}] epoch {e}/{epochs} lr {lr:.6f} train_loss {loss:.4f} "
              f"test_top1 {acc:.2f} ({ips:.0f} img/s)", file=sys.stderr, flush=True)
    return {"final_top1": log[-1]["test_top1"], "final_per_class": per_class,
            "final_shots": shot_groups(per_class, train_counts_of(train_y)),
            "per_epoch": log, "seconds": time.time() - t0}


def train_counts_of(train_y):
    return torch.bincount(train_y, minlength=NUM_CLASSES).tolist()


def cifar10_lt(cfg):
    """The five train batches concatenated in order, then the LT subset (notes §4); the test batch."""
    parts = [read_cifar10_bin(os.path.join(cfg["data_dir"], f"data_batch_{i}.bin")) for i in range(1, 6)]
    all_x = np.concatenate([p[0] for p in parts])
    all_y = np.concatenate([p[1] for p in parts])
    keep, lt_counts = long_tailed_indices(all_y, float(cfg["imbalance"]))
    if float(cfg["imbalance"]) == 100:
        assert lt_counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], lt_counts
    if cfg.get("limit_train"):
        keep = keep[:int(cfg["limit_train"])]
    test_x, test_y = read_cifar10_bin(os.path.join(cfg["data_dir"], "test_batch.bin"))
    if cfg.get("limit_test"):
        test_x, test_y = test_x[:int(cfg["limit_test"])], test_y[:int(cfg["limit_test"])]
    return (torch.from_numpy(all_x[keep]), torch.from_numpy(all_y[keep]),
            torch.from_numpy(test_x), torch.from_numpy(test_y))


def load_state(model, path):
    """Every tensor of `model.state_dict()` from the safetensors file `path`; gcl-repro's
    `backbone.`/`head.` prefixes are dropped. A missing or misshapen tensor is an error."""
    stored = {}
    for name, a in safetensors_np.load(path).items():
        for prefix in ("backbone.", "head."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        stored[name] = torch.from_numpy(a)
    state = model.state_dict()
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        if name not in stored or tuple(stored[name].shape) != tuple(t.shape):
            raise SystemExit(f"{path}: no tensor `{name}` of shape {tuple(t.shape)}")
        state[name] = stored[name].to(t.dtype)
    model.load_state_dict(state)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    method, seed = cfg["method"], int(cfg["seed"])
    assert method in ("gcl", "ce"), method
    device = torch.device(cfg.get("device", "cpu"))
    torch.set_num_threads(int(cfg["threads"]))
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)

    global MEAN, STD, NUM_CLASSES
    if cfg.get("data_file"):  # exactly gcl-repro's data (`gcl-repro data export`)
        d = safetensors_np.load(cfg["data_file"])
        train_x, train_y = torch.from_numpy(d["train_images"]), torch.from_numpy(d["train_labels"])
        test_x, test_y = torch.from_numpy(d["test_images"]), torch.from_numpy(d["test_labels"])
        MEAN, STD, NUM_CLASSES = tuple(d["mean"].tolist()), tuple(d["std"].tolist()), len(d["counts"])
    else:
        train_x, train_y, test_x, test_y = cifar10_lt(cfg)
    counts = np.bincount(train_y.numpy(), minlength=NUM_CLASSES).tolist()
    assert min(counts) > 0, f"a class has no training image ({counts}); raise limit_train"
    N = train_x.shape[0]

    # --- stage 1 ([backbone]): GCL -> NormedLinear head (use_norm), CE -> nn.Linear head
    head = NormedLinear(64, NUM_CLASSES) if method == "gcl" else nn.Linear(64, NUM_CLASSES)
    blocks = int(cfg.get("blocks", 5))
    model = ResNet32(head, blocks).to(device)
    n_backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("linear."))
    if blocks == 5 and NUM_CLASSES == 10:
        assert n_backbone + 64 * NUM_CLASSES + NUM_CLASSES == 464154, n_backbone  # with a linear head
    if cfg.get("init_from"):  # e.g. a gcl-repro run's initial weights: both engines start alike
        load_state(model, cfg["init_from"])
    # The initial weights (gcl-repro's paired stage 1 starts from them). Built from the same seed
    # by the same calls as the full run, so `init_only` gives exactly the full run's init.
    if cfg.get("save_init"):
        safetensors_np.save(model.state_dict(), cfg["save_init"], metadata={"seed": seed, "method": method})
        if cfg.get("init_only"):
            with open(args.out, "w") as f:
                json.dump({"method": method, "seed": seed, "init_only": True, "torch_version": torch.__version__}, f)
            return
    if method == "gcl":  # [backbone]: GCLLoss(m=0., s=30, noise_mul=0.5)
        crit1 = GCLLoss(counts, s=30.0, m=0.0, noise_mul=0.5, device=device)
    else:  # [backbone]: nn.CrossEntropyLoss()
        crit1 = nn.CrossEntropyLoss()
    s1 = cfg["stage1"]
    opt1 = torch.optim.SGD(model.parameters(), lr=s1["lr"], momentum=s1["momentum"],
                           weight_decay=s1["weight_decay"])

    def lr1(e):  # [backbone] adjust_learning_rate, epoch counted from 1
        w = int(s1.get("warmup_epochs", 0))
        if w > 0 and e <= w:
            return s1["lr"] * e / w
        return s1["lr"] * s1["lr_decay"] ** sum(1 for m in s1["milestones"] if e > m)

    data = (train_x, train_y, test_x, test_y, model, model.linear)
    result = {"method": method, "seed": seed, "torch_version": torch.__version__,
              "threads": torch.get_num_threads()}
    result["stage1"] = train_stage("stage1", int(s1["epochs"]), lr1, lambda: torch.randperm(N),
                                   model, crit1, bool(cfg["mixup"]), opt1, int(s1["batch_size"]),
                                   data, model.train, device)

    # The stage-1 weights as a safetensors state_dict, PyTorch's names (what gcl-repro's paired
    # stage 2 starts from: weights flow from this script to gcl-repro, never back).
    if cfg.get("save_stage1"):
        safetensors_np.save(model.state_dict(), cfg["save_stage1"], metadata={"seed": seed, "method": method})

    # --- stage 2 ([classifier], cRT) from the stage-1 final-epoch weights (none without `stage2`)
    if method == "gcl" and cfg.get("stage2"):
        s2 = cfg["stage2"]
        backbone = model
        for p in backbone.parameters():
            p.requires_grad_(False)
        cls = NormedLinear(64, NUM_CLASSES).to(device)
        with torch.no_grad():  # classifier initialised from the stage-1 anchors (fine-tune)
            cls.weight.copy_(model.linear.weight)
        # [classifier]: GCLLoss(m=0.1, s=20, train_cls=True, noise_mul=0.5, gamma=1.)
        crit2 = GCLLoss(counts, s=20.0, m=0.1, noise_mul=0.5, focal_gamma=1.0, device=device)
        opt2 = torch.optim.SGD(cls.parameters(), lr=s2["lr"], momentum=s2["momentum"],
                               weight_decay=s2["weight_decay"])
        E2, w = int(s2["epochs"]), cben_weights(train_y.numpy(), NUM_CLASSES)

        def lr2(e):  # [classifier] adjust_learning_rate: cosine from the peak, epoch 0-based there
            return 0.5 * s2["lr"] * (1 + math.cos(math.pi * (e - 1) / E2))

        def forward2(x):  # frozen backbone (eval: BN statistics frozen), feature detached
            with torch.no_grad():
                f = backbone.features(x)
            return cls(f)

        def mode2():  # [classifier] train(): model.eval(); classifier.train()
            backbone.eval(), cls.train()

        result["stage2"] = train_stage(
            "stage2", E2, lr2, lambda: torch.multinomial(w, N, replacement=True), forward2, crit2,
            bool(s2.get("mixup", True)), opt2, int(s2["batch_size"]),
            (train_x, train_y, test_x, test_y, backbone, cls), mode2, device)
    result["class_counts"] = counts
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
