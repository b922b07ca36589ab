"""PyTorch side of tests/lockstep_torch.rs: short training trajectories of the released recipes,
written from the released code (Keke921/GCLLoss: cifar_train_backbone.py, cifar_train_classifier.py,
losses.py, utils.py, sampler.py, models/resnet_cifar.py; kaidic/LDAM-DRW: cifar_train.py,
losses.py) and PyTorch's own modules (torch.optim.SGD, nn.BatchNorm2d, F.cross_entropy), never
from the Rust engine. It initialises the networks with PyTorch's init, draws and records every
random choice (batch order, crop offsets, flips, mixup lambda and permutation, GCL noise), and
writes the per-step losses and learning rates and the final weights, BatchNorm statistics and
momentum buffers, so that the Rust test can replay the same stream through our pieces.

    python scripts/lockstep_torch.py OUT.npz

Everything runs in float64 (the network, the losses and the optimiser), on one thread. The
input pipeline is float32 as torchvision's (ToTensor, Normalize) and is cast to float64 after
normalisation, before mixup. Names are the Rust engine's stored names: `backbone.<state_dict
key>` for the ResNet and `head.<state_dict key>` for the classifier (`linear.*`), `lws.scale`
for LWS's scales ([C]; the released `learned_norm` is [1, C]).

Small-scale constants stand in for the released ones (the formulas are the released ones):
6 classes with 8, 5, 3, 2, 1, 1 training images (20 images, random uint8 32x32), batch 8 (steps
of 8, 8 and 4 images: the released DataLoader keeps the last partial batch);
stage 1: 5 epochs, warm-up over 2 epochs (released 5), decays after epochs 3 and 4 (released
160 and 180); LDAM-DRW's re-weighting from the 4th epoch (`epoch // 3`, released `// 160`);
stage 2: 3 epochs (released 30). The released constants themselves are checked without training
(`sched/*`, `const/*`, `drw160/*`).

Output keys (np.savez, float64 unless said):
  meta/settings            int64 [N, C, BATCH, S1_EPOCHS, WARMUP, M1, M2, S2_EPOCHS, DRW_SWITCH]
  data/images uint8 [N,3,32,32], data/labels int64 [N], data/counts int64 [C]
  <case>/init/<name>       starting tensors (stage-1 cases; stage 2 starts from gcl_s1/final)
  <case>/e<E>/order        int64 [N]: dataset indices of epoch E (1-based), in loader order
  <case>/e<E>/oy, ox, flip int64 [N]: crop offsets into the 4-padded image and flip, per position
  <case>/s<K>/lam [1], perm int64 [b], eps_a, eps_b [b, C]: mixup and the GCL sample (the
                           N(0, 1/3) draw before the clamp) of the y_a and y_b loss terms, step K
  <case>/x0 float32        the first step's normalised batch, before mixup
  <case>/loss, lr [S]; <case>/epoch int64 [S]
  <case>/final/<name>, <case>/momentum/<name>
  sched/gcl_s1 [200], sched/ldam_drw [200], sched/s2 [30]: released learning rates per epoch
  const/<counts>/{delta,ldam,drw,cben}_{f64,f32}: released per-class constants in float64 and
                           as the released code computes them (float32 where it uses FloatTensor)
  drw160/out [B, C], y int64 [B], loss_e160, loss_e161: LDAM-DRW's loss before and after its switch
"""
import copy
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_cifar import ResNetS  # noqa: E402  (the released models/resnet_cifar.py)

torch.set_num_threads(1)
DT = torch.float64

COUNTS = [8, 5, 3, 2, 1, 1]
C = len(COUNTS)
N = sum(COUNTS)
BATCH = 8
PAD = 4
S1_EPOCHS, WARMUP, M1, M2 = 5, 2, 3, 4
S2_EPOCHS = 3
DRW_SWITCH = 3
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
CIFAR10_LT100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


# ---- learning rates: the released adjust_learning_rate functions, epoch 0-based ----

def lr_warmup_step(epoch, lr=0.1, warmup=5, m1=160, m2=180, decays=(0.1, 0.01)):
    """adjust_learning_rate of GCLLoss cifar_train_backbone.py (decays 0.1, 0.01) and of LDAM-DRW
    cifar_train.py (decays 0.01, 0.0001): the same function with other factors."""
    epoch = epoch + 1
    if epoch <= warmup:
        return lr * epoch / warmup
    elif epoch > m2:
        return lr * decays[1]
    elif epoch > m1:
        return lr * decays[0]
    return lr


LDAM_DRW_DECAYS = (0.01, 0.0001)


def lr_stage2(epoch, epochs=30, lr_max=0.1):
    """GCLLoss cifar_train_classifier.py (HEAD): the rate of parameter group 0, the only group."""
    lr = 0 + 0.1 * (lr_max - 0) * (1 + math.cos(epoch / epochs * 3.1415926535))
    return 0.1 * lr


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---- per-class constants ----

def drw_weights(epoch, counts, switch=160, dtype=torch.float32):
    """LDAM-DRW cifar_train.py, train_rule DRW (torch.FloatTensor: float32)."""
    idx = epoch // switch
    betas = [0, 0.9999]
    effective_num = 1.0 - np.power(betas[idx], counts)
    w = (1.0 - betas[idx]) / np.array(effective_num)
    w = w / np.sum(w) * len(counts)
    return torch.tensor(w, dtype=dtype)


def cben_sample_weights(labels, counts, f32=True):
    """GCLLoss sampler.py CBEffectNumSampler (HEAD): the weight of each sample, as released
    (delta in float32) or with the same formula in float64."""
    label_to_count = list(counts)
    delta = np.log(np.array(label_to_count).astype(np.float32 if f32 else np.float64))
    delta = delta.max() - delta
    delta = (delta - delta.min()) / (delta.max() - delta.min())
    beta = 0.9999 + 1e-5 * delta
    effective_num = 1.0 - np.power(beta, label_to_count)
    per_cls_weights = (1.0 - beta) / np.array(effective_num)
    return torch.DoubleTensor([per_cls_weights[l] for l in labels])


def class_mass(sample_weights, labels, classes):
    """Probability of drawing each class under torch.multinomial(sample_weights)."""
    mass = np.zeros(classes)
    for w, l in zip(sample_weights.tolist(), labels):
        mass[l] += w
    return mass / mass.sum()


# ---- losses (losses.py of the released code) ----

def focal_loss(input_values, gamma):
    p = torch.exp(-input_values)
    loss = (1 - p.detach()) ** gamma * input_values
    return loss.mean()


class GCLLoss:
    """GCLLoss.forward. The released code builds m_list with torch.cuda.FloatTensor; here it is
    float64, the test's dtype (its float32 form is compared separately, const/*). Every call
    draws its noise as released (Normal(0, 1/3).sample, float32) and records the draw."""

    def __init__(self, counts, m, s, noise_mul, train_cls=False, gamma=0.0, dtype=DT):
        m_list = torch.log(torch.tensor(counts, dtype=dtype))
        self.m_list = m_list.max() - m_list
        self.m, self.s, self.noise_mul = m, s, noise_mul
        self.simpler = torch.distributions.normal.Normal(0, 1 / 3)
        self.train_cls, self.gamma = train_cls, gamma
        self.draws = []
        # Samples to use instead of drawing, oldest first (scripts/lockstep_cifar.py replays a
        # stream drawn up front).
        self.replay = []

    def __call__(self, cosine, target, weight=None):
        index = torch.zeros_like(cosine, dtype=torch.bool)
        index.scatter_(1, target.view(-1, 1), True)
        sample = self.replay.pop(0) if self.replay else self.simpler.sample(cosine.shape)
        self.draws.append(sample)
        noise = sample.clamp(-1, 1).to(cosine.dtype)
        cosine = cosine - self.noise_mul * noise.abs() / self.m_list.max() * self.m_list
        output = torch.where(index, cosine - self.m, cosine)
        if self.train_cls:
            return focal_loss(F.cross_entropy(self.s * output, target, reduction="none", weight=weight), self.gamma)
        return F.cross_entropy(self.s * output, target, weight=weight)


class LDAMLoss:
    """LDAM-DRW losses.py (m_list in float64 here; see GCLLoss)."""

    def __init__(self, counts, max_m=0.5, s=30):
        m_list = 1.0 / np.sqrt(np.sqrt(counts))
        m_list = m_list * (max_m / np.max(m_list))
        self.m_list = torch.tensor(m_list, dtype=DT)
        self.s = s

    def __call__(self, x, target, weight=None):
        index = torch.zeros_like(x, dtype=torch.bool)
        index.scatter_(1, target.view(-1, 1), True)
        batch_m = torch.matmul(self.m_list[None, :], index.to(x.dtype).transpose(0, 1)).view((-1, 1))
        output = torch.where(index, x - batch_m, x)
        return F.cross_entropy(self.s * output, target, weight=weight)


def ce_loss(out, target, weight=None):
    return F.cross_entropy(out, target, weight=weight)


class LearnableWeightScaling(nn.Module):
    """utils.py."""

    def __init__(self, num_classes):
        super().__init__()
        self.learned_norm = nn.Parameter(torch.ones(1, num_classes))

    def forward(self, x):
        return self.learned_norm * x


# ---- data: torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize ----

class Loader:
    """The released train loader on in-memory uint8 images: the sampler's order in batches of
    BATCH (last partial batch kept), each image padded with zeros, cropped at (i, j) drawn as
    torchvision's RandomCrop.get_params (torch.randint(0, h - th + 1) for i, then j), flipped
    when torch.rand(1) < 0.5, then ToTensor and Normalize in float32."""

    def __init__(self, images, labels, record):
        self.images, self.labels, self.record = images, labels, record
        self.mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)

    def epoch(self, key, order):
        order = order.tolist()
        crops = []
        for _ in order:
            i = torch.randint(0, 2 * PAD + 1, size=(1,)).item()
            j = torch.randint(0, 2 * PAD + 1, size=(1,)).item()
            flip = bool(torch.rand(1) < 0.5)
            crops.append((i, j, flip))
        self.record[f"{key}/order"] = np.array(order, dtype=np.int64)
        self.record[f"{key}/oy"] = np.array([c[0] for c in crops], dtype=np.int64)
        self.record[f"{key}/ox"] = np.array([c[1] for c in crops], dtype=np.int64)
        self.record[f"{key}/flip"] = np.array([int(c[2]) for c in crops], dtype=np.int64)
        for start in range(0, len(order), BATCH):
            xs = []
            for idx, (i, j, flip) in zip(order[start:start + BATCH], crops[start:start + BATCH]):
                img = F.pad(self.images[idx], (PAD, PAD, PAD, PAD), mode="constant", value=0)[:, i:i + 32, j:j + 32]
                if flip:
                    img = img.flip(-1)
                x = img.to(torch.float32).div(255)
                xs.append(x.sub_(self.mean).div_(self.std))
            yield torch.stack(xs), self.labels[order[start:start + BATCH]]


def mixup_data(x, y, alpha=1.0):
    """utils.py mixup_data (numpy's global generator for lambda, torch.randperm)."""
    lam = np.random.beta(alpha, alpha)
    index = torch.randperm(x.size()[0])
    mixed_x = lam * x + (1 - lam) * x[index, :]
    return mixed_x, y, y[index], lam, index


# ---- naming ----

def our_name(key):
    return ("head." if key.startswith("linear.") else "backbone.") + key


def state(model):
    return {our_name(k): v.detach().to(DT).numpy().copy() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def momenta(optimizer, names):
    out = {}
    for p, name in names.items():
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            out[name] = buf.detach().reshape(-1).numpy().copy() if name == "lws.scale" else buf.detach().numpy().copy()
    return out


# ---- training ----

def mixup_step(rec, key, criterion, forward, x, y):
    """mixup_data, then mixup_criterion (the criterion called once per target, so GCL draws two
    samples); records lambda, the permutation and both samples under `key`."""
    images, y_a, y_b, lam, perm = mixup_data(x, y)
    output = forward(images)
    n_draws = len(criterion.draws)
    loss = lam * criterion(output, y_a) + (1 - lam) * criterion(output, y_b)
    eps_a, eps_b = criterion.draws[n_draws:]
    rec[f"{key}/lam"] = np.array([lam])
    rec[f"{key}/perm"] = perm.numpy().astype(np.int64)
    rec[f"{key}/eps_a"] = eps_a.to(DT).numpy()
    rec[f"{key}/eps_b"] = eps_b.to(DT).numpy()
    return loss


def train(rec, case, epochs, optimizer, loader, lr_fn, begin, order_fn, loss_fn):
    """The released train loops: the rate set at the start of each epoch, `begin(epoch)`, the
    sampler's order, then per batch the loss, zero_grad, backward, step. Records the losses and
    rates (and the first normalised batch)."""
    losses, lrs, epoch_of = [], [], []
    for epoch in range(epochs):
        set_lr(optimizer, lr_fn(epoch))
        begin(epoch)
        for x, y in loader.epoch(f"{case}/e{epoch + 1}", order_fn()):
            step = len(losses)
            if step == 0:
                rec[f"{case}/x0"] = x.numpy().copy()
            loss = loss_fn(epoch, f"{case}/s{step}", x.to(DT), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            lrs.append(optimizer.param_groups[0]["lr"])
            epoch_of.append(epoch + 1)
    rec[f"{case}/loss"] = np.array(losses)
    rec[f"{case}/lr"] = np.array(lrs)
    rec[f"{case}/epoch"] = np.array(epoch_of, dtype=np.int64)


def run_stage1(rec, case, model, criterion, loader, mixup, lr_fn, weight_fn=None):
    """cifar_train_backbone.py / LDAM-DRW cifar_train.py: SGD over model.parameters(), model.train(),
    a shuffled order per epoch; LDAM-DRW's per-epoch class weights in the criterion."""
    for k, v in state(model).items():
        rec[f"{case}/init/{k}"] = v
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)

    def loss_fn(epoch, key, x, y):
        if mixup:
            return mixup_step(rec, key, criterion, model, x, y)
        weight = weight_fn(epoch).to(DT) if weight_fn else None
        return criterion(model(x), y, weight=weight)

    train(rec, case, S1_EPOCHS, optimizer, loader, lr_fn, lambda _: model.train(), lambda: torch.randperm(N), loss_fn)
    finish(rec, case, state(model), optimizer, {p: our_name(n) for n, p in model.named_parameters()})


def run_stage2(rec, case, stage1_model, loader, labels, lws):
    """cifar_train_classifier.py: the stage-1 backbone frozen in eval mode, the classifier
    initialised from the stage-1 one; cRT trains the classifier, LWS (lws_model) trains only the
    scales on the detached classifier output. CBENRS sampler, mixup, the focal GCL loss."""
    model = copy.deepcopy(stage1_model)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    classifier = model.linear
    if lws:
        lws_model = LearnableWeightScaling(C).to(DT)
        trained = {lws_model.learned_norm: "lws.scale"}
        optimizer = torch.optim.SGD(lws_model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)
    else:
        classifier.weight.requires_grad = True
        trained = {classifier.weight: "head.linear.weight"}
        optimizer = torch.optim.SGD(classifier.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)
    criterion = GCLLoss(COUNTS, m=0.1, s=20, noise_mul=0.5, train_cls=True, gamma=1.0)
    weights = cben_sample_weights(labels.tolist(), COUNTS)

    def forward(images):
        feature = model.features(images)
        output = classifier(feature.detach())
        return lws_model(output.detach()) if lws else output

    train(rec, case, S2_EPOCHS, optimizer, loader, lambda e: lr_stage2(e, epochs=S2_EPOCHS), lambda _: None,
          lambda: torch.multinomial(weights, N, replacement=True),
          lambda epoch, key, x, y: mixup_step(rec, key, criterion, forward, x, y))
    final = state(model)
    if lws:
        final["lws.scale"] = lws_model.learned_norm.detach().reshape(-1).numpy().copy()
    finish(rec, case, final, optimizer, trained)


def finish(rec, case, final, optimizer, names):
    for k, v in final.items():
        rec[f"{case}/final/{k}"] = v
    for k, v in momenta(optimizer, names).items():
        rec[f"{case}/momentum/{k}"] = v


def constants(rec, name, counts):
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    for suffix, dtype in (("f64", torch.float64), ("f32", torch.float32)):
        # GCLLoss.__init__ and the noise term's `/ m_list.max() * m_list`.
        m_list = torch.log(torch.tensor(counts, dtype=dtype))
        m_list = m_list.max() - m_list
        rec[f"const/{name}/delta_{suffix}"] = (m_list / m_list.max()).to(DT).numpy()
        # LDAMLoss.__init__ (FloatTensor in the release).
        m = 1.0 / np.sqrt(np.sqrt(counts))
        m = m * (0.5 / np.max(m))
        rec[f"const/{name}/ldam_{suffix}"] = torch.tensor(m, dtype=dtype).to(DT).numpy()
        rec[f"const/{name}/drw_{suffix}"] = drw_weights(160, counts, dtype=dtype).to(DT).numpy()
        w = cben_sample_weights(labels, counts, f32=(suffix == "f32"))
        rec[f"const/{name}/cben_{suffix}"] = class_mass(w, labels, len(counts))


def main(out_path):
    torch.manual_seed(123)
    np.random.seed(123)
    rec = {"meta/settings": np.array([N, C, BATCH, S1_EPOCHS, WARMUP, M1, M2, S2_EPOCHS, DRW_SWITCH], dtype=np.int64)}
    rng = np.random.RandomState(7)
    images = rng.randint(0, 256, size=(N, 3, 32, 32)).astype(np.uint8)
    labels = np.array([c for c, n in enumerate(COUNTS) for _ in range(n)], dtype=np.int64)
    rng.shuffle(labels)
    rec["data/images"], rec["data/labels"], rec["data/counts"] = images, labels, np.array(COUNTS, dtype=np.int64)
    loader = Loader(torch.from_numpy(images), torch.from_numpy(labels), rec)

    s1 = lambda e: lr_warmup_step(e, warmup=WARMUP, m1=M1, m2=M2)  # noqa: E731
    # Stage 1 of the released GCL recipe: cosine head, GCL s = 30, c = 0.5, m = 0, mixup.
    gcl_model = ResNetS([1, 1, 1], num_classes=C, use_norm=True).to(DT)
    run_stage1(rec, "gcl_s1", gcl_model, GCLLoss(COUNTS, m=0.0, s=30, noise_mul=0.5), loader, True, s1)
    # Stage 2 from it: cRT and LWS.
    run_stage2(rec, "crt", gcl_model, loader, labels, lws=False)
    run_stage2(rec, "lws", gcl_model, loader, labels, lws=True)
    # LDAM-DRW (kaidic/LDAM-DRW, --loss_type LDAM --train_rule DRW): cosine head, no mixup.
    ldam_model = ResNetS([1, 1, 1], num_classes=C, use_norm=True).to(DT)
    run_stage1(rec, "ldam_drw", ldam_model, LDAMLoss(COUNTS), loader, False,
               lambda e: lr_warmup_step(e, warmup=WARMUP, m1=M1, m2=M2, decays=LDAM_DRW_DECAYS),
               weight_fn=lambda e: drw_weights(e, COUNTS, switch=DRW_SWITCH))
    # CE on the linear head, no mixup, GCL's stage-1 schedule.
    ce_model = ResNetS([1, 1, 1], num_classes=C, use_norm=False).to(DT)
    run_stage1(rec, "ce", ce_model, ce_loss, loader, False, s1)

    rec["sched/gcl_s1"] = np.array([lr_warmup_step(e) for e in range(200)])
    rec["sched/ldam_drw"] = np.array([lr_warmup_step(e, decays=LDAM_DRW_DECAYS) for e in range(200)])
    rec["sched/s2"] = np.array([lr_stage2(e) for e in range(30)])
    constants(rec, "tiny", COUNTS)
    constants(rec, "cifar10_lt100", CIFAR10_LT100)
    # LDAM-DRW's switch at the released epoch: the loss of one batch in epochs 160 and 161
    # (1-based), i.e. the released 0-based epochs 159 and 160.
    out = torch.rand(BATCH, 10, dtype=DT) * 2 - 1
    y = torch.tensor([0, 9, 3, 9, 5, 1, 8, 2])
    ldam = LDAMLoss(CIFAR10_LT100)
    rec["drw160/out"], rec["drw160/y"] = out.numpy(), y.numpy()
    for epoch in (159, 160):
        w = drw_weights(epoch, CIFAR10_LT100).to(DT)
        rec[f"drw160/loss_e{epoch + 1}"] = np.array([ldam(out, y, weight=w).item()])
    np.savez(out_path, **rec)


if __name__ == "__main__":
    main(sys.argv[1])
