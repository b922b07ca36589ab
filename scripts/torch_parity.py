"""PyTorch side of tests/parity_torch.rs: one forward/backward of the released-code CIFAR
ResNet (scripts/resnet_cifar.py) with a cosine head, on weights and inputs exported by the Rust
test, for three losses; writes the loss and every parameter's gradient.

    python scripts/torch_parity.py weights.npz inputs.npz out.npz

weights.npz: the Rust var-store variables by name (the PyTorch module's state_dict names).
inputs.npz: x [B,3,32,32] f64, y [B] i64, eps [B,C] f64 (GCL's Gaussian sample before the clamp),
counts [C] i64, blocks [1] i64 (blocks per stage).
out.npz: loss/<case> [1] and grad/<case>/<param> for case in ce, gcl1, gcl2.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_cifar import ResNetS  # noqa: E402


def focal_loss(input_values, gamma):
    """The released code's focal wrapper on per-sample CE (Keke921/GCLLoss losses.py): the
    factor uses `p.detach()`, so it re-weights samples and passes no gradient itself."""
    p = torch.exp(-input_values)
    return ((1 - p.detach()) ** gamma * input_values).mean()


def gcl_loss(cosine, target, counts, eps, s, noise_mul, m, gamma):
    """GCLLoss.forward of the released code, with the noise sample supplied."""
    m_list = torch.log(counts)
    m_list = m_list.max() - m_list
    index = torch.zeros_like(cosine, dtype=torch.bool)
    index.scatter_(1, target.view(-1, 1), True)
    noise = eps.clamp(-1, 1)
    cosine = cosine - noise_mul * noise.abs() / m_list.max() * m_list
    output = torch.where(index, cosine - m, cosine)
    if gamma > 0:
        return focal_loss(F.cross_entropy(s * output, target, reduction="none"), gamma)
    return F.cross_entropy(s * output, target)


def main(weights_path, inputs_path, out_path):
    weights = dict(np.load(weights_path))
    inputs = dict(np.load(inputs_path))
    counts = torch.from_numpy(inputs["counts"]).double()
    blocks = int(inputs["blocks"][0])
    model = ResNetS([blocks] * 3, num_classes=len(counts), use_norm=True).double()
    state = {k: torch.from_numpy(v) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
    model.train()
    x = torch.from_numpy(inputs["x"])
    y = torch.from_numpy(inputs["y"])
    eps = torch.from_numpy(inputs["eps"])
    cases = {
        "ce": lambda out: F.cross_entropy(30.0 * out, y),
        "gcl1": lambda out: gcl_loss(out, y, counts, eps, 30.0, 0.5, 0.0, 0.0),
        "gcl2": lambda out: gcl_loss(out, y, counts, eps, 20.0, 0.5, 0.1, 1.0),
    }
    result = {}
    for name, loss_fn in cases.items():
        model.zero_grad()
        loss = loss_fn(model(x))
        loss.backward()
        result[f"loss/{name}"] = np.array([loss.item()])
        for pname, p in model.named_parameters():
            result[f"grad/{name}/{pname}"] = p.grad.detach().numpy().copy()
    np.savez(out_path, **result)


if __name__ == "__main__":
    main(*sys.argv[1:4])
