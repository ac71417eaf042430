"""The torch modules of `elastic_cnn`: the elastic super-network and its static sub-networks.

Imported only when weights are built, trained or loaded: search-only stages never import torch.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from linas_lib.supernets.elastic_cnn import DEPTHS, EXPANDS, HEAD_WIDTH, KERNELS, STAGES, STEM_WIDTH, Arch


def sliced_bn(x, bn: nn.BatchNorm2d, channels: int):
    return F.batch_norm(
        x,
        bn.running_mean[:channels],
        bn.running_var[:channels],
        bn.weight[:channels],
        bn.bias[:channels],
        training=bn.training,
        momentum=bn.momentum if bn.momentum is not None else 0.1,
        eps=bn.eps,
    )


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return layers + ([nn.ReLU(inplace=True)] if act else [])


class StaticMBConv(nn.Module):
    def __init__(self, cin, mid, cout, kernel, stride):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            *conv_bn(cin, mid, 1), *conv_bn(mid, mid, kernel, stride, groups=mid), *conv_bn(mid, cout, 1, act=False)
        )

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class ElasticMBConv(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        mid = cin * max(EXPANDS)
        self.cin, self.cout, self.stride = cin, cout, stride
        self.expand, self.expand_bn = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        k = max(KERNELS)
        self.depthwise = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(mid)
        self.project, self.project_bn = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def _kernel(self, mid, kernel):
        start = (max(KERNELS) - kernel) // 2  # centre crop of the largest kernel
        return self.depthwise.weight[:mid, :, start : start + kernel, start : start + kernel]

    def forward(self, x, kernel, expand):
        mid = self.cin * expand
        h = F.relu(sliced_bn(F.conv2d(x, self.expand.weight[:mid]), self.expand_bn, mid))
        h = F.conv2d(h, self._kernel(mid, kernel), None, self.stride, kernel // 2, 1, mid)
        h = F.relu(sliced_bn(h, self.depthwise_bn, mid))
        h = self.project_bn(F.conv2d(h, self.project.weight[:, :mid]))
        return x + h if self.residual else h

    @torch.no_grad()
    def extract(self, kernel, expand) -> StaticMBConv:
        mid = self.cin * expand
        block = StaticMBConv(self.cin, mid, self.cout, kernel, self.stride)
        convs = [m for m in block.body if isinstance(m, nn.Conv2d)]
        bns = [m for m in block.body if isinstance(m, nn.BatchNorm2d)]
        convs[0].weight.copy_(self.expand.weight[:mid])
        convs[1].weight.copy_(self._kernel(mid, kernel))
        convs[2].weight.copy_(self.project.weight[:, :mid])
        for dst, src, c in zip(bns, (self.expand_bn, self.depthwise_bn, self.project_bn), (mid, mid, self.cout)):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(dst, name).copy_(getattr(src, name)[:c])
        return block


class StaticNet(nn.Module):
    def __init__(self, stem, blocks, head):
        super().__init__()
        self.stem, self.blocks, self.head = stem, nn.Sequential(*blocks), head

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class ElasticCNN(nn.Module):
    def __init__(self, n_classes=10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(1, STEM_WIDTH, 3, stride=2))
        cin, stages = STEM_WIDTH, []
        for width, stride in STAGES:
            stages.append(nn.ModuleList(ElasticMBConv(cin if b == 0 else width, width, stride if b == 0 else 1)
                                        for b in range(max(DEPTHS))))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(
            *conv_bn(cin, HEAD_WIDTH, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(HEAD_WIDTH, n_classes)
        )

    def forward(self, x, arch: Arch):
        x = self.stem(x)
        for stage, depth, kernels, expands in zip(self.stages, arch.depths, arch.kernels, arch.expands):
            for block, k, e in zip(stage[:depth], kernels, expands):
                x = block(x, k, e)
        return self.head(x)

    def extract(self, arch: Arch) -> StaticNet:
        blocks = [
            block.extract(k, e)
            for stage, depth, kernels, expands in zip(self.stages, arch.depths, arch.kernels, arch.expands)
            for block, k, e in zip(stage[:depth], kernels, expands)
        ]
        return StaticNet(copy.deepcopy(self.stem), blocks, copy.deepcopy(self.head)).eval()
