"""PyTorch eager reference for `gcl-repro bench step`: the same stage-1 step as the Rust
engine (ResNet-32 with a cosine classifier, GCL loss with s=30, c=0.5, mixup, SGD momentum 0.9,
wd 2e-4), on a device-resident uint8 batch source with pad-crop-flip augmentation.

usage: python torch_step_reference.py DEVICE BATCH STEPS WARMUP THREADS [ARCH]
ARCH: resnet32 (default; 32 x 32 images) or resnet50 (torchvision's ResNet-50 with its fc
replaced by the same cosine classifier, 224 x 224 images).
prints one JSON line: {"ms_per_step": ..., "images_per_sec": ..., "device": ..., "torch": ...}
Derived from shared/gpu/torch_reference.py (mode gpu), made device-agnostic.
"""
import json, math, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

dev, bs, steps, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
arch = sys.argv[6] if len(sys.argv) > 6 else "resnet32"
S, n = (32, 12406) if arch == "resnet32" else (224, 256)  # as gcl-repro's bench_images
torch.set_num_threads(threads)
torch.manual_seed(0)

class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.b1 = nn.BatchNorm2d(cout)
        s.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.b2 = nn.BatchNorm2d(cout)
        s.down = stride != 1 or cin != cout; s.pad = (cout - cin) // 2
    def forward(s, x):
        o = s.b2(s.c2(F.relu(s.b1(s.c1(x)))))
        sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, s.pad, s.pad)) if s.down else x
        return F.relu(o + sc)

class R32(nn.Module):
    def __init__(s, C):
        super().__init__()
        s.c = nn.Conv2d(3, 16, 3, 1, 1, bias=False); s.b = nn.BatchNorm2d(16)
        L = []; cin = 16
        for cout, st in [(16, 1), (32, 2), (64, 2)]:
            for i in range(5): L.append(Block(cin, cout, st if i == 0 else 1)); cin = cout
        s.layers = nn.Sequential(*L)
        s.w = nn.Parameter(torch.empty(64, C).uniform_(-1, 1))
    def forward(s, x):
        f = F.adaptive_avg_pool2d(s.layers(F.relu(s.b(s.c(x)))), 1).flatten(1)
        return F.normalize(f, dim=1).mm(F.normalize(s.w, dim=0))

class R50(nn.Module):
    def __init__(s, C):
        super().__init__()
        import torchvision
        s.body = torchvision.models.resnet50(num_classes=1000); s.body.fc = nn.Identity()
        s.w = nn.Parameter(torch.empty(2048, C).uniform_(-1, 1))
    def forward(s, x):
        return F.normalize(s.body(x), dim=1).mm(F.normalize(s.w, dim=0))

C = 10
counts = torch.tensor([math.floor(5000 * 0.01 ** (i / 9)) for i in range(C)], dtype=torch.float, device=dev)
m = counts.max().log() - counts.log(); m = m / m.max()
model = (R32(C) if arch == "resnet32" else R50(C)).to(dev)
opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)
mean = torch.tensor([0.4914, 0.4822, 0.4465], device=dev).view(1, 3, 1, 1)
std = torch.tensor([0.2023, 0.1994, 0.2010], device=dev).view(1, 3, 1, 1)

def gcl(cos, y):
    noise = (torch.randn_like(cos) / 3).clamp(-1, 1).abs()
    return F.cross_entropy(30 * (cos - 0.5 * noise * m), y)

rng = np.random.default_rng(0)
data = torch.from_numpy(rng.integers(0, 256, size=(n, 3, S, S), dtype=np.uint8)).to(dev)
labels = torch.from_numpy(rng.integers(0, C, size=n)).to(dev)

def batch():
    idx = torch.randint(0, n, (bs,), device=dev)
    x = F.pad(data[idx], (4, 4, 4, 4))
    oy = torch.randint(0, 9, (bs, 1), device=dev); ox = torch.randint(0, 9, (bs, 1), device=dev)
    rows = (oy + torch.arange(S, device=dev)).view(bs, 1, S, 1).expand(bs, 3, S, S + 8)
    x = x.gather(2, rows)
    cols = (ox + torch.arange(S, device=dev)).view(bs, 1, 1, S).expand(bs, 3, S, S)
    x = x.gather(3, cols)
    flip = torch.rand(bs, 1, 1, 1, device=dev) < 0.5
    x = torch.where(flip, x.flip(3), x)
    return (x.float() / 255 - mean) / std, labels[idx]

def step():
    x, y = batch()
    lam = np.random.beta(1, 1); p = torch.randperm(x.size(0), device=dev)
    out = model(lam * x + (1 - lam) * x[p])
    loss = lam * gcl(out, y) + (1 - lam) * gcl(out, y[p])
    opt.zero_grad(); loss.backward(); opt.step()

def sync():
    if dev.startswith("cuda"): torch.cuda.synchronize()

for _ in range(warmup): step()
sync(); t = time.perf_counter()
for _ in range(steps): step()
sync(); el = time.perf_counter() - t
print(json.dumps({"ms_per_step": el * 1000 / steps, "images_per_sec": steps * bs / el, "device": dev, "torch": torch.__version__, "threads": torch.get_num_threads()}))
