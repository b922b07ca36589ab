#!/usr/bin/env python3
"""Reference checkpoints for the weight-import test (tests/import_torch.rs), written by PyTorch
itself as the released code saves them, with PyTorch's logits on the same images.

    python scripts/import_reference.py OUTDIR

Writes into OUTDIR:
- r32_cosine.pth.tar: the released CIFAR ResNet-32 with the cosine (NormedLinear) head, 10
  classes (scripts/resnet_cifar.py, the released definition), saved as the released
  `save_checkpoint` does: {'epoch', 'state_dict', 'best_acc1', 'optimizer'} of an
  nn.DataParallel model (names prefixed `module.`);
- r50_linear.pth: a torchvision-layout ResNet-50 (v1.5: stride on the 3x3 convolution,
  downsample.0/1, fc) with a 1000-class linear head, saved as a bare state_dict;
- inputs.npz: images (x32 [4,3,32,32], x64 [2,3,64,64]) and PyTorch's eval-mode logits of both
  models on them (logits_r32, logits_r50).
Both models first run a few train-mode batches so BatchNorm's running statistics are not their
initial 0/1 (an import that dropped them would then fail the comparison).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet_cifar import resnet32  # noqa: E402  (the released CIFAR definition)


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (expansion 4, stride on conv2)."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision.models.resnet50 layout: 7x7 stem, max-pool, [3, 4, 6, 3] bottlenecks, fc."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin, layers = 64, []
        for planes, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(Bottleneck(cin, planes, s))
                cin = planes * 4
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def warm_statistics(model, shape):
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(*shape) * 2 + 0.5)
    model.eval()


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    r32 = resnet32(num_classes=10, use_norm=True)
    warm_statistics(r32, (8, 3, 32, 32))
    r50 = ResNet50(1000)
    warm_statistics(r50, (4, 3, 64, 64))
    x32, x64 = torch.randn(4, 3, 32, 32), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        l32, l50 = r32(x32), r50(x64)
    opt = torch.optim.SGD(r32.parameters(), lr=0.1, momentum=0.9)
    torch.save({"epoch": 200, "state_dict": nn.DataParallel(r32).state_dict(), "best_acc1": torch.tensor(80.0),
                "optimizer": opt.state_dict()}, os.path.join(out, "r32_cosine.pth.tar"))
    torch.save(r50.state_dict(), os.path.join(out, "r50_linear.pth"))
    np.savez(os.path.join(out, "inputs.npz"), x32=x32.numpy(), x64=x64.numpy(), logits_r32=l32.numpy(), logits_r50=l50.numpy())


if __name__ == "__main__":
    main()
