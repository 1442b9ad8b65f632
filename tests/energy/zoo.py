"""Spiking twins of published CNNs: every ReLU replaced by a spikingjelly IFNode.

Layer shapes follow torchvision's resnet18 / vgg16 (ImageNet, 224 px), kuangliu's
pytorch-cifar ResNet18 (32 px) and a CIFAR VGG16-BN (32 px, Linear 512→10 head), so their conv + FC
MAC and parameter counts can be checked against the published figures. Global average
pooling is a fixed-size ``nn.AvgPool2d`` (the tracer has no AdaptiveAvgPool2d); VGG-16's
``AdaptiveAvgPool2d(7)`` is the identity at 224 px and is left out.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron
from torch import nn

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class BasicBlock(nn.Module):
    """ResNet basic block; the residual sum of BN output and shortcut feeds the neuron."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.sn1 = neuron.IFNode()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.sn2 = neuron.IFNode()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.sn2(out + shortcut)


class SpikingResNet18(nn.Module):
    """``imagenet=True``: torchvision resnet18 (7×7/2 stem + MaxPool2d(3, 2, 1), 1000 classes).
    ``imagenet=False``: kuangliu CIFAR ResNet18 (3×3/1 stem, no max pool, 10 classes)."""

    def __init__(self, imagenet: bool = True) -> None:
        super().__init__()
        if imagenet:
            stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), neuron.IFNode(),
                    nn.MaxPool2d(3, 2, 1)]
            classes, pool = 1000, 7
        else:
            stem = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), neuron.IFNode()]
            classes, pool = 10, 4
        self.stem = nn.Sequential(*stem)
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AvgPool2d(pool)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


def spiking_vgg16_imagenet() -> nn.Sequential:
    """torchvision vgg16 (configuration D, conv bias, no BN), IFNode for ReLU."""
    layers: list[nn.Module] = []
    c = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), neuron.IFNode()]
            c = v
    layers += [nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), neuron.IFNode(), nn.Dropout(),
               nn.Linear(4096, 4096), neuron.IFNode(), nn.Dropout(), nn.Linear(4096, 1000)]
    return nn.Sequential(*layers)


def spiking_vgg16_bn_cifar() -> nn.Sequential:
    """CIFAR VGG16-BN: conv (no bias: BN follows) + BN + IFNode, five max pools, Linear 512→10.

    kuangliu's file keeps the conv biases (14,728,266 parameters); the published
    14,724,042 is the same network without them (the difference, 4,224, is one bias per
    conv channel). MACs are the same either way.
    """
    layers: list[nn.Module] = []
    c = 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), neuron.IFNode()]
            c = v
    layers += [nn.Flatten(), nn.Linear(512, 10)]
    return nn.Sequential(*layers)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
