"""Torch building blocks of the OFA networks, named as in the `ofa` package.

Imported only when a network is built, so search-only stages never import torch.

Every module keeps the attribute names of the corresponding `ofa` class
(`DynamicConv2d.conv`, `DynamicBatchNorm2d.bn`, `DynamicSeparableConv2d.7to5_matrix`,
`ResidualBlock.conv/shortcut`, ...), so an OFA super-network state dict loads as is.
The elastic ("dynamic") modules can run a chosen sub-network directly (used to check
extraction) and `extract` a static module of it with copied weights, which is what
gets scored and exported. Static modules use OFA's static names too
(`first_conv.conv.weight`, `blocks.3.conv.depth_conv.bn.running_mean`, ...).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from linas_lib.supernets.ofa.common import make_divisible


def activation(name: str | None) -> nn.Module | None:
    """OFA's activations; h_swish/h_sigmoid are exactly torch's Hardswish/Hardsigmoid."""
    if name is None:
        return None
    return {"relu": nn.ReLU, "h_swish": nn.Hardswish, "h_sigmoid": nn.Hardsigmoid}[name](inplace=True)


def copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    c = dst.num_features
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.momentum, dst.eps = src.momentum, src.eps


# ---- static layers (OFA: ConvLayer, MBConvLayer, ResidualBlock, LinearLayer, ...) -------
def conv_layer(cin: int, cout: int, kernel: int, stride: int = 1, act: str | None = "relu",
               use_bn: bool = True, bias: bool = False) -> nn.Sequential:
    """OFA's ConvLayer (weight -> bn -> act): keys `conv.weight`, `bn.*`."""
    layers: list[tuple[str, nn.Module]] = [("conv", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=bias))]
    if use_bn:
        layers.append(("bn", nn.BatchNorm2d(cout)))
    if act is not None:
        layers.append(("act", activation(act)))
    return nn.Sequential(OrderedDict(layers))


def linear_layer(cin: int, cout: int) -> nn.Sequential:
    """OFA's LinearLayer without dropout: keys `linear.weight`, `linear.bias`."""
    return nn.Sequential(OrderedDict([("linear", nn.Linear(cin, cout))]))


class SEModule(nn.Module):
    """Squeeze-and-excitation with OFA's names (`fc.reduce`, `fc.expand`) and hard sigmoid."""

    REDUCTION = 4

    def __init__(self, channels: int, mid: int | None = None):
        super().__init__()
        mid = mid or make_divisible(channels // self.REDUCTION)
        self.fc = nn.Sequential(OrderedDict([
            ("reduce", nn.Conv2d(channels, mid, 1, bias=True)),
            ("relu", nn.ReLU(inplace=True)),
            ("expand", nn.Conv2d(mid, channels, 1, bias=True)),
            ("h_sigmoid", nn.Hardsigmoid(inplace=True)),
        ]))

    def forward(self, x):
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class MBConvLayer(nn.Module):
    """A static inverted-bottleneck block (OFA's MBConvLayer): `inverted_bottleneck`
    (1x1 conv, bn, act; absent at expansion ratio 1), `depth_conv` (depthwise conv, bn,
    act, optional `se`) and `point_linear` (1x1 conv, bn)."""

    def __init__(self, inverted_bottleneck: nn.Sequential | None, depth_conv: nn.Sequential,
                 point_linear: nn.Sequential):
        super().__init__()
        self.inverted_bottleneck = inverted_bottleneck
        self.depth_conv = depth_conv
        self.point_linear = point_linear

    def forward(self, x):
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


def mbconv_layer(cin: int, cout: int, kernel: int, stride: int, mid: int, act: str, use_se: bool,
                 expand: bool = True) -> MBConvLayer:
    depth = [
        ("conv", nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)),
        ("bn", nn.BatchNorm2d(mid)),
        ("act", activation(act)),
    ]
    if use_se:
        depth.append(("se", SEModule(mid)))
    return MBConvLayer(conv_layer(cin, mid, 1, act=act) if expand else None,
                       nn.Sequential(OrderedDict(depth)), conv_layer(mid, cout, 1, act=None))


def sequential(**modules: nn.Module | None) -> nn.Sequential:
    return nn.Sequential(OrderedDict((k, v) for k, v in modules.items() if v is not None))


class ResidualBlock(nn.Module):
    """OFA's ResidualBlock: `conv(x) + shortcut(x)`, or `conv(x)` without a shortcut."""

    def __init__(self, conv: nn.Module, shortcut: nn.Module | None):
        super().__init__()
        self.conv = conv
        self.shortcut = shortcut

    def forward(self, x, *args):
        y = self.conv(x, *args)
        return y if self.shortcut is None else y + x


class ResNetBottleneckBlock(nn.Module):
    """A static bottleneck block (OFA's ResNetBottleneckBlock): conv1 (1x1), conv2 (3x3,
    stride), conv3 (1x1, no act), `downsample` (identity, or 'avgpool_conv': average
    pooling at stride > 1, 1x1 conv, bn) and a final ReLU after the sum."""

    def __init__(self, conv1: nn.Sequential, conv2: nn.Sequential, conv3: nn.Sequential, downsample: nn.Module):
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.downsample = conv1, conv2, conv3, downsample
        self.final_act = nn.ReLU(inplace=True)

    def forward(self, x):
        residual = self.downsample(x)
        return self.final_act(self.conv3(self.conv2(self.conv1(x))) + residual)


# ---- elastic layers (OFA: DynamicConv2d, DynamicBatchNorm2d, DynamicSeparableConv2d, ...) --
class DynamicConv2d(nn.Module):
    """Leading-channel slice of a dense convolution."""

    def __init__(self, max_in: int, max_out: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.kernel_size, self.stride = kernel, stride
        self.conv = nn.Conv2d(max_in, max_out, kernel, stride, bias=False)

    def filter(self, out_channels: int, in_channels: int):
        return self.conv.weight[:out_channels, :in_channels]

    def forward(self, x, out_channels: int):
        return F.conv2d(x, self.filter(out_channels, x.size(1)).contiguous(), None, self.stride, self.kernel_size // 2)

    @torch.no_grad()
    def extract(self, out_channels: int, in_channels: int) -> nn.Conv2d:
        conv = nn.Conv2d(in_channels, out_channels, self.kernel_size, self.stride, self.kernel_size // 2, bias=False)
        conv.weight.copy_(self.filter(out_channels, in_channels))
        return conv


class DynamicBatchNorm2d(nn.Module):
    """Leading-channel slice of a batch norm (statistics included)."""

    def __init__(self, max_features: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(max_features)

    def forward(self, x):
        bn, c = self.bn, x.size(1)
        if c == bn.num_features:
            return bn(x)
        factor = 0.0
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked += 1
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            bn.training or not bn.track_running_stats, factor, bn.eps)

    @torch.no_grad()
    def extract(self, features: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(features)
        copy_bn(bn, self.bn)
        return bn


class DynamicSeparableConv2d(nn.Module):
    """Elastic depthwise kernel: centre crop of the largest kernel, then OFA's learned
    kernel transformation (`7to5_matrix`, `5to3_matrix`: a linear map of the cropped
    k*k kernel, identity at initialisation), applied step by step from the largest size."""

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], stride: int = 1):
        super().__init__()
        self.kernel_sizes = tuple(sorted(set(kernel_sizes)))
        self.stride = stride
        k = self.kernel_sizes[-1]
        self.conv = nn.Conv2d(max_channels, max_channels, k, stride, groups=max_channels, bias=False)
        for small, large in zip(self.kernel_sizes[:-1], self.kernel_sizes[1:]):
            self.register_parameter(f"{large}to{small}_matrix", nn.Parameter(torch.eye(small * small)))

    def filter(self, channels: int, kernel: int):
        weight = self.conv.weight[:channels]
        source = self.kernel_sizes[-1]
        if kernel == source:
            return weight
        for target in reversed(self.kernel_sizes[:-1]):
            start = (source - target) // 2
            crop = weight[:, :, start : start + target, start : start + target].contiguous()
            matrix = getattr(self, f"{source}to{target}_matrix")
            weight = F.linear(crop.view(-1, target * target), matrix).view(channels, 1, target, target)
            source = target
            if target == kernel:
                return weight
        raise ValueError(f"kernel size {kernel} is not one of {self.kernel_sizes}")

    def forward(self, x, kernel: int):
        c = x.size(1)
        return F.conv2d(x, self.filter(c, kernel).contiguous(), None, self.stride, kernel // 2, 1, c)

    @torch.no_grad()
    def extract(self, channels: int, kernel: int) -> nn.Conv2d:
        conv = nn.Conv2d(channels, channels, kernel, self.stride, kernel // 2, groups=channels, bias=False)
        conv.weight.copy_(self.filter(channels, kernel))
        return conv


class DynamicSE(SEModule):
    """SE whose reduce/expand convolutions are sliced to the active channels."""

    def forward(self, x):
        c = x.size(1)
        mid = make_divisible(c // self.REDUCTION)
        reduce, expand = self.fc.reduce, self.fc.expand
        y = F.adaptive_avg_pool2d(x, 1)
        y = F.relu(F.conv2d(y, reduce.weight[:mid, :c].contiguous(), reduce.bias[:mid]))
        y = F.conv2d(y, expand.weight[:c, :mid].contiguous(), expand.bias[:c])
        return x * F.hardsigmoid(y)

    @torch.no_grad()
    def extract(self, channels: int) -> SEModule:
        mid = make_divisible(channels // self.REDUCTION)
        se = SEModule(channels, mid)
        se.fc.reduce.weight.copy_(self.fc.reduce.weight[:mid, :channels])
        se.fc.reduce.bias.copy_(self.fc.reduce.bias[:mid])
        se.fc.expand.weight.copy_(self.fc.expand.weight[:channels, :mid])
        se.fc.expand.bias.copy_(self.fc.expand.bias[:channels])
        return se


def _act_fn(name: str):
    return {"relu": F.relu, "h_swish": F.hardswish}[name]


class DynamicMBConvLayer(nn.Module):
    """OFA's DynamicMBConvLayer: elastic kernel and expansion ratio (fixed in/out width)."""

    def __init__(self, cin: int, cout: int, kernel_sizes, expand_ratios, stride: int, act: str, use_se: bool):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = cin, cout, stride
        self.act, self.use_se = act, use_se
        max_mid = make_divisible(round(cin * max(expand_ratios)))
        self.inverted_bottleneck = nn.Sequential(OrderedDict([
            ("conv", DynamicConv2d(cin, max_mid)), ("bn", DynamicBatchNorm2d(max_mid)), ("act", activation(act)),
        ]))
        depth = [
            ("conv", DynamicSeparableConv2d(max_mid, kernel_sizes, stride)),
            ("bn", DynamicBatchNorm2d(max_mid)),
            ("act", activation(act)),
        ]
        if use_se:
            depth.append(("se", DynamicSE(max_mid)))
        self.depth_conv = nn.Sequential(OrderedDict(depth))
        self.point_linear = nn.Sequential(OrderedDict([
            ("conv", DynamicConv2d(max_mid, cout)), ("bn", DynamicBatchNorm2d(cout)),
        ]))

    def mid_channels(self, expand: float) -> int:
        return make_divisible(round(self.in_channels * expand))

    def forward(self, x, kernel: int, expand: float):
        mid, act = self.mid_channels(expand), _act_fn(self.act)
        x = act(self.inverted_bottleneck.bn(self.inverted_bottleneck.conv(x, mid)))
        x = act(self.depth_conv.bn(self.depth_conv.conv(x, kernel)))
        if self.use_se:
            x = self.depth_conv.se(x)
        return self.point_linear.bn(self.point_linear.conv(x, self.out_channels))

    @torch.no_grad()
    def extract(self, kernel: int, expand: float) -> MBConvLayer:
        mid = self.mid_channels(expand)
        ib, dc, pl = self.inverted_bottleneck, self.depth_conv, self.point_linear
        return MBConvLayer(
            sequential(conv=ib.conv.extract(mid, self.in_channels), bn=ib.bn.extract(mid), act=activation(self.act)),
            sequential(conv=dc.conv.extract(mid, kernel), bn=dc.bn.extract(mid), act=activation(self.act),
                       se=dc.se.extract(mid) if self.use_se else None),
            sequential(conv=pl.conv.extract(self.out_channels, mid), bn=pl.bn.extract(self.out_channels)),
        )


class DynamicConvLayer(nn.Module):
    """OFA's DynamicConvLayer: elastic output width (keys `conv.conv.weight`, `bn.bn.*`)."""

    def __init__(self, max_in: int, max_out: int, kernel: int, stride: int = 1):
        super().__init__()
        self.kernel_size, self.stride = kernel, stride
        self.conv = DynamicConv2d(max_in, max_out, kernel, stride)
        self.bn = DynamicBatchNorm2d(max_out)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, out_channels: int):
        return F.relu(self.bn(self.conv(x, out_channels)))

    @torch.no_grad()
    def extract(self, out_channels: int, in_channels: int) -> nn.Sequential:
        return sequential(conv=self.conv.extract(out_channels, in_channels), bn=self.bn.extract(out_channels),
                          act=nn.ReLU(inplace=True))


class DynamicResNetBottleneckBlock(nn.Module):
    """OFA's DynamicResNetBottleneckBlock: elastic output width and expansion ratio."""

    def __init__(self, max_in: int, max_out: int, max_expand: float, stride: int, identity: bool):
        super().__init__()
        self.stride, self.identity = stride, identity
        max_mid = bottleneck_mid(max_out, max_expand)
        self.conv1 = nn.Sequential(OrderedDict([
            ("conv", DynamicConv2d(max_in, max_mid)), ("bn", DynamicBatchNorm2d(max_mid)),
            ("act", nn.ReLU(inplace=True)),
        ]))
        self.conv2 = nn.Sequential(OrderedDict([
            ("conv", DynamicConv2d(max_mid, max_mid, 3, stride)), ("bn", DynamicBatchNorm2d(max_mid)),
            ("act", nn.ReLU(inplace=True)),
        ]))
        self.conv3 = nn.Sequential(OrderedDict([
            ("conv", DynamicConv2d(max_mid, max_out)), ("bn", DynamicBatchNorm2d(max_out)),
        ]))
        if identity:
            self.downsample = nn.Identity()
        else:
            self.downsample = nn.Sequential(OrderedDict([
                ("avg_pool", nn.AvgPool2d(stride, stride, 0, ceil_mode=True)),
                ("conv", DynamicConv2d(max_in, max_out)),
                ("bn", DynamicBatchNorm2d(max_out)),
            ]))
        self.final_act = nn.ReLU(inplace=True)

    def forward(self, x, out_channels: int, expand: float):
        mid = bottleneck_mid(out_channels, expand)
        if self.identity:
            residual = x
        else:
            residual = self.downsample.bn(self.downsample.conv(self.downsample.avg_pool(x), out_channels))
        h = F.relu(self.conv1.bn(self.conv1.conv(x, mid)))
        h = F.relu(self.conv2.bn(self.conv2.conv(h, mid)))
        h = self.conv3.bn(self.conv3.conv(h, out_channels))
        return F.relu(h + residual)

    @torch.no_grad()
    def extract(self, in_channels: int, out_channels: int, expand: float) -> ResNetBottleneckBlock:
        mid = bottleneck_mid(out_channels, expand)

        def part(src, cout, cin, act=True):
            return sequential(conv=src.conv.extract(cout, cin), bn=src.bn.extract(cout),
                              act=nn.ReLU(inplace=True) if act else None)

        if self.identity:
            downsample = nn.Identity()
        else:
            pool = nn.AvgPool2d(self.stride, self.stride, 0, ceil_mode=True) if self.stride > 1 else None
            downsample = sequential(avg_pool=pool, conv=self.downsample.conv.extract(out_channels, in_channels),
                                    bn=self.downsample.bn.extract(out_channels))
        return ResNetBottleneckBlock(
            part(self.conv1, mid, in_channels), part(self.conv2, mid, mid), part(self.conv3, out_channels, mid, False),
            downsample,
        )


def bottleneck_mid(out_channels: int, expand: float) -> int:
    """OFA rounds `out * expand` in float32 (torch.round) before making it divisible by 8."""
    import numpy as np

    return make_divisible(float(np.round(np.float32(out_channels) * np.float32(expand))))


class DynamicLinear(nn.Module):
    def __init__(self, max_in: int, out: int):
        super().__init__()
        self.linear = nn.Linear(max_in, out)

    def forward(self, x):
        return F.linear(x, self.linear.weight[:, : x.size(1)].contiguous(), self.linear.bias)


class DynamicLinearLayer(nn.Module):
    """OFA's DynamicLinearLayer (keys `linear.linear.weight`, `linear.linear.bias`)."""

    def __init__(self, max_in: int, out: int):
        super().__init__()
        self.linear = DynamicLinear(max_in, out)

    def forward(self, x):
        return self.linear(x)

    @torch.no_grad()
    def extract(self, in_features: int) -> nn.Sequential:
        layer = linear_layer(in_features, self.linear.linear.out_features)
        layer.linear.weight.copy_(self.linear.linear.weight[:, :in_features])
        layer.linear.bias.copy_(self.linear.linear.bias)
        return layer


# ---- initialisation and batch-norm recalibration -----------------------------------------
@torch.no_grad()
def init_he_fout(net: nn.Module, seed: int) -> None:
    """OFA's `init_models(net, 'he_fout')`, seeded; kernel transforms stay the identity."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.normal_(0, math.sqrt(2.0 / n), generator=gen)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.fill_(1)
            m.bias.zero_()
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.size(1))
            m.weight.uniform_(-bound, bound, generator=gen)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, DynamicSeparableConv2d):
            for name, p in m.named_parameters(recurse=False):
                if name.endswith("_matrix"):
                    p.copy_(torch.eye(p.size(0)))


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches) -> None:
    """Fresh batch-norm statistics: reset, cumulative average over `batches`, eval mode."""
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    seen = 0
    for x in batches:
        module(x)
        seen += 1
    if seen == 0:
        raise ValueError("batch-norm recalibration got no input batches")
    for m in bns:
        m.momentum = 0.1
    module.eval()
