"""OFAResNets (ResNet50 family) in torch, parameter for parameter as `ofa`'s (imported lazily)."""
from __future__ import annotations

import torch
from torch import nn

from linas_lib.supernets.ofa import _nn
from linas_lib.supernets.ofa.resnet import (
    BASE_DEPTHS, DEPTHS, EXPANDS, STRIDES, ResNetArch, input_channels, mid_input_channels, stage_widths,
)


class ResNets(nn.Module):
    """A static sub-network, laid out like `ofa`'s ResNets (same state-dict keys)."""

    def __init__(self, input_stem, blocks, classifier):
        super().__init__()
        self.input_stem = nn.ModuleList(input_stem)
        self.max_pooling = nn.MaxPool2d(3, 2, 1)
        self.blocks = nn.ModuleList(blocks)
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward(self, x):
        for layer in self.input_stem:
            x = layer(x)
        x = self.max_pooling(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(torch.flatten(self.global_avg_pool(x), 1))


class OFAResNets(nn.Module):
    """The elastic super-network: stem depth and widths, per-stage depth and width,
    per-block expansion ratio of the bottleneck."""

    def __init__(self, n_classes: int = 1000):
        super().__init__()
        mids, ins = mid_input_channels(), input_channels()
        self.input_stem = nn.ModuleList([
            _nn.DynamicConvLayer(3, max(mids), 3, 2),
            _nn.ResidualBlock(_nn.DynamicConvLayer(max(mids), max(mids), 3, 1), nn.Identity()),
            _nn.DynamicConvLayer(max(mids), max(ins), 3, 1),
        ])
        self.max_pooling = nn.MaxPool2d(3, 2, 1)
        blocks, self.grouped_block_index = [], []
        feature = ins
        for base, widths, stride in zip(BASE_DEPTHS, stage_widths(), STRIDES):
            n = base + max(DEPTHS)
            self.grouped_block_index.append(list(range(len(blocks), len(blocks) + n)))
            for i in range(n):
                s = stride if i == 0 else 1
                identity = s == 1 and list(feature) == list(widths)
                blocks.append(_nn.DynamicResNetBottleneckBlock(max(feature), max(widths), max(EXPANDS), s, identity))
                feature = widths
        self.blocks = nn.ModuleList(blocks)
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = _nn.DynamicLinearLayer(max(feature), n_classes)

    def _active(self, arch: ResNetArch):
        for stage, (base, depth) in enumerate(zip(BASE_DEPTHS, arch.depths)):
            for idx in self.grouped_block_index[stage][: base + depth]:
                yield self.blocks[idx], arch.widths[stage], arch.expands[idx]

    def forward(self, x, arch: ResNetArch):
        """The sub-network's forward pass on the shared weights (OFA's dynamic forward)."""
        x = self.input_stem[0](x, arch.stem_mid)
        if not arch.stem_skip:
            x = self.input_stem[1](x, arch.stem_mid)
        x = self.max_pooling(self.input_stem[2](x, arch.stem_out))
        for block, width, expand in self._active(arch):
            x = block(x, width, expand)
        return self.classifier(torch.flatten(self.global_avg_pool(x), 1))

    @torch.no_grad()
    def extract(self, arch: ResNetArch) -> ResNets:
        """OFA's `get_active_subnet(preserve_weight=True)`, in eval mode."""
        stem = [self.input_stem[0].extract(arch.stem_mid, 3)]
        if not arch.stem_skip:
            stem.append(_nn.ResidualBlock(self.input_stem[1].conv.extract(arch.stem_mid, arch.stem_mid), nn.Identity()))
        stem.append(self.input_stem[2].extract(arch.stem_out, arch.stem_mid))
        blocks, feature = [], arch.stem_out
        for block, width, expand in self._active(arch):
            blocks.append(block.extract(feature, width, expand))
            feature = width
        return ResNets(stem, blocks, self.classifier.extract(feature)).eval()
