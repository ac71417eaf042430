"""OFAMobileNetV3 in torch, parameter for parameter as `ofa`'s (imported lazily)."""
from __future__ import annotations

import torch
from torch import nn

from linas_lib.supernets.ofa import _nn
from linas_lib.supernets.ofa.common import make_divisible
from linas_lib.supernets.ofa.mbv3 import (
    ACTS, BASE_WIDTHS, DEPTHS, EXPANDS, KERNELS, N_STAGES, SE, STRIDES, MBv3Arch,
)


class MobileNetV3(nn.Module):
    """A static sub-network, laid out like `ofa`'s MobileNetV3 (same state-dict keys)."""

    def __init__(self, first_conv, blocks, final_expand_layer, feature_mix_layer, classifier):
        super().__init__()
        self.first_conv = first_conv
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = final_expand_layer
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix_layer = feature_mix_layer
        self.classifier = classifier

    def forward(self, x):
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.feature_mix_layer(self.global_avg_pool(self.final_expand_layer(x)))
        return self.classifier(torch.flatten(x, 1))


class OFAMobileNetV3(nn.Module):
    """The elastic super-network: depth per stage, kernel and expansion ratio per block."""

    def __init__(self, n_classes: int = 1000, width_mult: float = 1.0):
        super().__init__()
        widths = [make_divisible(w * width_mult) for w in BASE_WIDTHS[:-2]]
        final_expand_width = make_divisible(BASE_WIDTHS[-2] * width_mult)
        last_channel = make_divisible(BASE_WIDTHS[-1] * width_mult)
        self.first_conv = _nn.conv_layer(3, widths[0], 3, 2, act="h_swish")
        first = _nn.mbconv_layer(widths[0], widths[1], 3, STRIDES[0], widths[0], ACTS[0], SE[0], expand=False)
        blocks = [_nn.ResidualBlock(first, nn.Identity() if widths[0] == widths[1] else None)]
        self.block_group_info: list[list[int]] = []
        feature = widths[1]
        for width, stride, act, se in zip(widths[2:], STRIDES[1:], ACTS[1:], SE[1:]):
            self.block_group_info.append(list(range(len(blocks), len(blocks) + max(DEPTHS))))
            for i in range(max(DEPTHS)):
                s = stride if i == 0 else 1
                layer = _nn.DynamicMBConvLayer(feature, width, KERNELS, EXPANDS, s, act, se)
                blocks.append(_nn.ResidualBlock(layer, nn.Identity() if s == 1 and feature == width else None))
                feature = width
        assert len(self.block_group_info) == N_STAGES
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = _nn.conv_layer(feature, final_expand_width, 1, act="h_swish")
        self.feature_mix_layer = _nn.conv_layer(final_expand_width, last_channel, 1, act="h_swish", use_bn=False)
        self.classifier = _nn.linear_layer(last_channel, n_classes)

    def _active(self, arch: MBv3Arch):
        """(block, kernel, expand) of every active elastic block, in order."""
        for stage, depth in enumerate(arch.depths):
            for idx in self.block_group_info[stage][:depth]:
                yield self.blocks[idx], arch.kernels[idx - 1], arch.expands[idx - 1]

    def forward(self, x, arch: MBv3Arch):
        """The sub-network's forward pass on the shared weights (OFA's dynamic forward)."""
        x = self.blocks[0](self.first_conv(x))
        for block, kernel, expand in self._active(arch):
            x = block(x, kernel, expand)
        x = self.feature_mix_layer(self.final_expand_layer(x).mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))

    @torch.no_grad()
    def extract(self, arch: MBv3Arch) -> MobileNetV3:
        """OFA's `get_active_subnet(preserve_weight=True)`, in eval mode."""
        import copy

        blocks = [copy.deepcopy(self.blocks[0])]
        for block, kernel, expand in self._active(arch):
            blocks.append(_nn.ResidualBlock(block.conv.extract(kernel, expand), copy.deepcopy(block.shortcut)))
        net = MobileNetV3(
            copy.deepcopy(self.first_conv), blocks, copy.deepcopy(self.final_expand_layer),
            copy.deepcopy(self.feature_mix_layer), copy.deepcopy(self.classifier),
        )
        return net.eval()
