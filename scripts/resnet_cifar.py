"""PyTorch definition of the CIFAR ResNets of the LDAM / GCL released code (resnet_cifar.py),
the reference for src/models/resnet_cifar.rs: parameter counts and the parity test.

    python scripts/resnet_cifar.py            # prints parameter counts as JSON
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.init as init


def _weights_init(m):
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        init.kaiming_normal_(m.weight)


class NormedLinear(nn.Module):
    """Cosine classifier; weight [in, out], one anchor per column."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.Tensor(in_features, out_features))
        self.weight.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x):
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            p = planes // 4
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class ResNetS(nn.Module):
    def __init__(self, num_blocks, num_classes=10, use_norm=False):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], 1)
        self.layer2 = self._make_layer(32, num_blocks[1], 2)
        self.layer3 = self._make_layer(64, num_blocks[2], 2)
        self.linear = NormedLinear(64, num_classes) if use_norm else nn.Linear(64, num_classes)
        self.apply(_weights_init)

    def _make_layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def features(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return out.view(out.size(0), -1)

    def forward(self, x):
        return self.linear(self.features(x))


def resnet32(num_classes=10, use_norm=False):
    return ResNetS([5, 5, 5], num_classes, use_norm)


def resnet_small(num_classes=10, use_norm=False):
    return ResNetS([1, 1, 1], num_classes, use_norm)


def count(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    json.dump(
        {
            "resnet32_linear10": count(resnet32(10)),
            "resnet32_normed10": count(resnet32(10, True)),
            "resnet32_linear100": count(resnet32(100)),
            "resnet_small_linear10": count(resnet_small(10)),
        },
        sys.stdout,
    )
    print()
