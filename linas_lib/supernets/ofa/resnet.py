"""OFA ResNet50 (`ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0`) as the plugin "ofa_resnet50".

Genes, in OFA's terms (`set_active_subnet(d=..., e=..., w=...)`):
  stem.depth      {0, 2}: 2 keeps the stem's residual 3x3 conv, 0 skips it (OFA samples
                  d[0] from {min, max}; 1 would mean "skip" as well)
  stem.mid_width  width multiplier of the first two stem convs. OFA's list is {0.65, 0.8,
                  1.0}, but 0.65 and 0.8 both give 24 channels, so the space keeps one of
                  them: every network has exactly one encoding
  stem.width      {0.65, 0.8, 1.0}: width multiplier of the last stem conv
  s{i}.depth      {0, 1, 2}: blocks on top of the base depth (2, 2, 4, 2) of stage i
  s{i}.width      {0.65, 0.8, 1.0}: width multiplier of stage i
  s{i}.b{j}.expand {0.2, 0.25, 0.35}: bottleneck ratio of block j (blocks beyond the base
                  depth exist only when the stage is deep enough)
29 genes in all (18 blocks at the largest depth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linas_lib.api.search_space import ActiveWhen, SearchSpace, Variable
from linas_lib.supernets import supernet_registry
from linas_lib.supernets.ofa.common import OFASupernet, make_divisible

DEPTHS = (0, 1, 2)
EXPANDS = (0.2, 0.25, 0.35)
WIDTH_MULTS = (0.65, 0.8, 1.0)
BASE_DEPTHS = (2, 2, 4, 2)
STAGE_WIDTHS = (256, 512, 1024, 2048)
STRIDES = (1, 2, 2, 2)
STEM_DEPTHS = (0, 2)
OFA_NET_ID = "ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0"


def input_channels() -> list[int]:
    return [make_divisible(64 * w) for w in WIDTH_MULTS]


def mid_input_channels() -> list[int]:
    return [make_divisible(c // 2) for c in input_channels()]


def stage_widths() -> list[list[int]]:
    return [[make_divisible(width * w) for w in WIDTH_MULTS] for width in STAGE_WIDTHS]


def _distinct(mults, channels) -> tuple[float, ...]:
    """Multipliers that give distinct channel counts (the first of each)."""
    seen, keep = set(), []
    for m, c in zip(mults, channels):
        if c not in seen:
            seen.add(c)
            keep.append(m)
    return tuple(keep)


@dataclass(frozen=True)
class ResNetArch:
    stem_skip: bool
    stem_mid: int  # channels
    stem_out: int
    depths: tuple[int, ...]  # extra blocks per stage
    widths: tuple[int, ...]  # channels per stage
    expands: tuple[float, ...]  # one per block of the full network (18)
    ofa: dict  # OFA's set_active_subnet arguments


def build_space() -> SearchSpace:
    variables = [
        Variable("stem.depth", STEM_DEPTHS),
        Variable("stem.mid_width", _distinct(WIDTH_MULTS, mid_input_channels())),
        Variable("stem.width", WIDTH_MULTS),
    ]
    for s, base in enumerate(BASE_DEPTHS):
        variables += [Variable(f"s{s}.depth", DEPTHS), Variable(f"s{s}.width", WIDTH_MULTS)]
        for b in range(base + max(DEPTHS)):
            cond = ActiveWhen(f"s{s}.depth", b - base + 1) if b >= base else None
            variables.append(Variable(f"s{s}.b{b}.expand", EXPANDS, cond))
    return SearchSpace(variables, name="ofa_resnet50")


def decode(space: SearchSpace, encoding: np.ndarray) -> ResNetArch:
    values = space.decode(encoding)
    w_index = lambda m: WIDTH_MULTS.index(m)  # noqa: E731
    mids, ins, widths = mid_input_channels(), input_channels(), stage_widths()
    depths = tuple(int(values[f"s{s}.depth"]) for s in range(len(BASE_DEPTHS)))
    w = [w_index(values["stem.mid_width"]), w_index(values["stem.width"])]
    w += [w_index(values[f"s{s}.width"]) for s in range(len(BASE_DEPTHS))]
    expands = tuple(
        float(values.get(f"s{s}.b{b}.expand", EXPANDS[0]))
        for s, base in enumerate(BASE_DEPTHS) for b in range(base + max(DEPTHS))
    )
    stem_depth = int(values["stem.depth"])
    return ResNetArch(
        stem_skip=stem_depth != max(DEPTHS),
        stem_mid=mids[w[0]],
        stem_out=ins[w[1]],
        depths=depths,
        widths=tuple(widths[s][w[2 + s]] for s in range(len(BASE_DEPTHS))),
        expands=expands,
        ofa={"d": [stem_depth, *depths], "e": list(expands), "w": w},
    )


@supernet_registry.register("ofa_resnet50")
class OFAResNet50Supernet(OFASupernet):
    """OFA's ResNet50 super-network; weights: `ofa_resnet50_d0-1-2_e0.2-0.25-0.35_w0.65-0.8-1.0`."""

    name = "ofa_resnet50"
    ofa_net_id = OFA_NET_ID
    default_resolution = 224

    @classmethod
    def build_space(cls) -> SearchSpace:
        return build_space()

    def decode(self, encoding: np.ndarray) -> ResNetArch:
        return decode(self.space, encoding)

    def ofa_config(self, encoding: np.ndarray) -> dict[str, list]:
        return dict(self.decode(self.space.canonicalize(encoding)[0]).ofa)

    def _new_network(self):
        from linas_lib.supernets.ofa._resnet_net import OFAResNets

        return OFAResNets(n_classes=self.n_classes)
