"""OFA MobileNetV3 (`ofa_mbv3_d234_e346_k357_w1.0`) as the plugin "ofa_mbv3".

45 genes: per stage (5) a depth {2, 3, 4}, then per block (4 per stage) a kernel
{3, 5, 7} and an expansion ratio {3, 4, 6}; the genes of blocks 3 and 4 of a stage exist
only when the stage is that deep. The first conv and first block, the final expand
layer, feature mix layer and classifier are fixed, as in OFA.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linas_lib.api.search_space import ActiveWhen, SearchSpace, Variable
from linas_lib.supernets import supernet_registry
from linas_lib.supernets.ofa.common import OFASupernet

DEPTHS = (2, 3, 4)
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
N_STAGES = 5
# first conv, first block, 5 elastic stages, final expand, feature mix
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STRIDES = (1, 2, 2, 2, 1, 2)  # first block, then the 5 stages
ACTS = ("relu", "relu", "relu", "h_swish", "h_swish", "h_swish")
SE = (False, False, True, False, True, True)
N_BLOCKS = N_STAGES * max(DEPTHS)


@dataclass(frozen=True)
class MBv3Arch:
    """OFA's ``set_active_subnet(ks=..., e=..., d=...)``: 20 kernels, 20 ratios, 5 depths."""

    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]


def build_space() -> SearchSpace:
    variables: list[Variable] = []
    for s in range(N_STAGES):
        variables.append(Variable(f"s{s}.depth", DEPTHS))
        for b in range(max(DEPTHS)):
            cond = ActiveWhen(f"s{s}.depth", b + 1) if b + 1 > min(DEPTHS) else None
            variables.append(Variable(f"s{s}.b{b}.kernel", KERNELS, cond))
            variables.append(Variable(f"s{s}.b{b}.expand", EXPANDS, cond))
    return SearchSpace(variables, name="ofa_mbv3")


def decode(space: SearchSpace, encoding: np.ndarray) -> MBv3Arch:
    """Inactive blocks get the smallest options; they are not part of the network."""
    values = space.decode(encoding)
    depths = tuple(int(values[f"s{s}.depth"]) for s in range(N_STAGES))
    pick = lambda s, b, gene, default: int(values.get(f"s{s}.b{b}.{gene}", default))  # noqa: E731
    blocks = [(s, b) for s in range(N_STAGES) for b in range(max(DEPTHS))]
    return MBv3Arch(
        depths,
        tuple(pick(s, b, "kernel", KERNELS[0]) for s, b in blocks),
        tuple(pick(s, b, "expand", EXPANDS[0]) for s, b in blocks),
    )


@supernet_registry.register("ofa_mbv3")
class OFAMobileNetV3Supernet(OFASupernet):
    """OFA's MobileNetV3 super-network; weights: `ofa_mbv3_d234_e346_k357_w1.0` (or w1.2 with width_mult=1.2)."""

    name = "ofa_mbv3"
    ofa_net_id = "ofa_mbv3_d234_e346_k357_w1.0"
    default_resolution = 224

    def __init__(self, width_mult: float = 1.0, **params):
        if width_mult not in (1.0, 1.2):
            raise ValueError(f"ofa_mbv3: width_mult must be 1.0 or 1.2 (the released OFA networks), got {width_mult}")
        self.width_mult = float(width_mult)
        self.ofa_net_id = f"ofa_mbv3_d234_e346_k357_w{self.width_mult:.1f}"
        super().__init__(**params)

    @classmethod
    def build_space(cls) -> SearchSpace:
        return build_space()

    def decode(self, encoding: np.ndarray) -> MBv3Arch:
        return decode(self.space, encoding)

    def ofa_config(self, encoding: np.ndarray) -> dict[str, list]:
        arch = self.decode(self.space.canonicalize(encoding)[0])
        return {"ks": list(arch.kernels), "e": list(arch.expands), "d": list(arch.depths)}

    def _new_network(self):
        from linas_lib.supernets.ofa._mbv3_net import OFAMobileNetV3

        return OFAMobileNetV3(n_classes=self.n_classes, width_mult=self.width_mult)
