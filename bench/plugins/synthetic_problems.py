"""Two synthetic super-networks for the search benchmark suite (`bench/suite.py`).

Loaded as a `supernet.plugin_file`, as a user's own plugin would be. Every value is a
deterministic function of the network (a hash of its canonical encoding drives the
"measurement noise"), so a repeated measurement returns the same number, as a table
would, and searches are reproducible.

* `synthetic_mbv3`: an OFA-MobileNetV3-like space with 45 conditional genes: 5 stages,
  each an elastic depth {2, 3, 4} and per block a kernel {3, 5, 7} and expansion
  {3, 4, 6}; blocks beyond a stage's depth are hidden. MACs in closed form; latency
  from a roofline-style cost per block (compute, memory traffic, per-layer overhead,
  slow large depthwise kernels); accuracy saturates with capacity, with stage-dependent
  returns and interactions, plus 0.3 % noise.
* `aliased_cells`: a network of `depth` identical cells; each cell sums 6 parallel
  branches, one operation each (none, skip, conv1x1, conv3x3, conv5x5, pool). Summation
  commutes, so the order of the branch genes does not matter: 6^6 x 16 gene vectors
  name 7,392 networks. `canonicalize_valid` sorts the branch genes, which is how a
  plugin tells LINAS which encodings are the same network.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from linas_lib.api.objective import ColumnKey
from linas_lib.api.search_space import ActiveWhen, SearchSpace, Variable
from linas_lib.supernets import supernet_registry


def _noise(space: SearchSpace, X: np.ndarray, salt: str) -> np.ndarray:
    """Standard-normal noise, a fixed function of each network (its canonical key)."""
    out = np.empty(len(X))
    for i, key in enumerate(space.keys(X)):
        h = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big")
        u1, u2 = ((h >> 32) + 0.5) / 2**32, ((h & 0xFFFFFFFF) + 0.5) / 2**32
        out[i] = np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
    return out


@dataclass(frozen=True)
class Entry:
    """What `export_module` hands the `tabular` latency backend."""

    plugin: object
    encoding: tuple[int, ...]

    def table_latency(self) -> float:
        return float(self.plugin.values(np.array([self.encoding]))["latency"][0])

    def table_source(self) -> dict[str, str]:
        return {"benchmark": self.plugin.name, "dataset": "synthetic", "package": "bench/plugins", "version": "1"}


class _Synthetic:
    quality_metric = "accuracy"
    fast_complexity = True
    name = "synthetic"

    def __init__(self):
        self.space = self.search_space()
        self.checkpoint_digest = f"synthetic:{self.name}:1"

    def prepare(self, checkpoint, cache_dir):
        return f"synthetic:{self.name}"

    def load(self, checkpoint=None):
        pass

    def evaluate(self, encodings):
        v = self.values(encodings)
        return [{"accuracy": float(a), "macs": float(m), "params": float(p)}
                for a, m, p in zip(v["accuracy"], v["macs"], v["params"])]

    def complexity(self, encodings):
        v = self.values(encodings, noise=False)  # exact and cheap: no hashing
        return {"macs": v["macs"], "params": v["params"]}

    def export_module(self, encoding, batch_size):
        canon = self.space.canonicalize(encoding)[0]
        return Entry(self, tuple(int(g) for g in canon)), ()


# ---- an OFA-MobileNetV3-like space ------------------------------------------------------
STAGES = ((24, 56), (40, 28), (80, 14), (112, 14), (160, 7))  # (width, resolution)
DEPTHS, KERNELS, EXPANDS = (2, 3, 4), (3, 5, 7), (3, 4, 6)


@supernet_registry.register("synthetic_mbv3")
class SyntheticMBv3(_Synthetic):
    name = "synthetic_mbv3"

    @staticmethod
    def search_space(**_) -> SearchSpace:
        variables = []
        for s in range(len(STAGES)):
            variables.append(Variable(f"s{s}.depth", DEPTHS))
            for b in range(4):
                cond = ActiveWhen(f"s{s}.depth", b + 1) if b + 1 > 2 else None
                variables += [Variable(f"s{s}.b{b}.kernel", KERNELS, cond), Variable(f"s{s}.b{b}.expand", EXPANDS, cond)]
        return SearchSpace(variables, name="synthetic_mbv3")

    def values(self, encodings, noise: bool = True) -> dict[str, np.ndarray]:
        X = self.space.canonicalize(encodings)
        n = len(X)
        macs, params, lat = np.full(n, 12e6), np.full(n, 0.5e6), np.full(n, 0.8)
        capacity = np.zeros(n)
        cin = 16
        for s, (width, res) in enumerate(STAGES):
            depth = np.array(DEPTHS)[X[:, 9 * s]]
            for b in range(4):
                on = b < depth
                k = np.array(KERNELS)[X[:, 9 * s + 1 + 2 * b]]
                e = np.array(EXPANDS)[X[:, 9 * s + 2 + 2 * b]]
                c_in = cin if b == 0 else width
                mid = c_in * e
                m = res**2 * (c_in * mid + mid * k**2 + mid * width)
                macs += np.where(on, m, 0)
                params += np.where(on, c_in * mid + mid * k**2 + mid * width, 0)
                if not noise:  # complexity() only: the plugin's fast path, as a real one would have
                    continue
                traffic = res**2 * (c_in + 2 * mid + width) * 4e-6
                # large depthwise kernels run below peak; expansion 6 is memory bound on early stages
                ms = m * 2.2e-8 * (1 + 0.35 * (k == 7) + 0.12 * (k == 5)) + traffic * (0.9 if s < 2 else 0.4) + 0.05
                lat += np.where(on, ms, 0)
                # returns per stage: depth pays most in the middle stages, kernels late, width early
                gain = (0.9 + 0.5 * (s in (2, 3))) * np.log(e) * (1 + 0.25 * (k - 3) / 4 * (s >= 2))
                capacity += np.where(on, gain, 0)
            cin = width
        if not noise:
            return {"macs": macs, "params": params}
        # saturating returns, and the largest networks overfit a little (a front that bends back)
        acc = 0.80 - 0.22 * np.exp(-capacity / 14.0) - 0.0015 * np.clip(capacity - 38, 0, None) \
            + 0.003 * _noise(self.space, X, "acc")
        lat = lat * (1 + 0.02 * _noise(self.space, X, "lat"))
        return {"accuracy": acc, "latency": lat, "macs": macs, "params": params}


# ---- aliased cells -----------------------------------------------------------------------
OPS = ("none", "skip", "conv1x1", "conv3x3", "conv5x5", "pool")
OP_COST = np.array([0.0, 0.02, 1.0, 9.0, 25.0, 0.3])       # MACs per channel^2 (conv k^2)
OP_LAT = np.array([0.0, 0.004, 0.035, 0.11, 0.27, 0.02])    # ms per unit width^2/1024
OP_SKILL = np.array([0.0, 0.25, 0.55, 1.0, 1.15, 0.35])     # what an operation adds to the cell
WIDTHS, CELLS, BRANCHES = (16, 24, 32, 48), (1, 2, 3, 4), 6


class AliasedSpace(SearchSpace):
    """The branch genes of a cell commute: sorting them names the network."""

    def canonicalize_valid(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.int64, copy=True).reshape(-1, self.n_var)
        X[:, :BRANCHES] = np.sort(X[:, :BRANCHES], axis=1)
        return X


@supernet_registry.register("aliased_cells")
class AliasedCells(_Synthetic):
    name = "aliased_cells"

    @staticmethod
    def search_space(**_) -> SearchSpace:
        variables = [Variable(f"branch{i}", OPS) for i in range(BRANCHES)]
        variables += [Variable("width", WIDTHS), Variable("cells", CELLS)]
        return AliasedSpace(variables, name="aliased_cells")

    def true_front(self, objectives: list[str]) -> np.ndarray | None:
        """Every one of the 7,392 networks is known here, so the true front is too."""
        from linas_lib.pareto import non_dominated_mask

        kinds = [ColumnKey.parse(o).kind for o in objectives]
        if not all(k in ("accuracy", "latency", "macs", "params") for k in kinds):
            return None
        v = self.values(self.space.enumerate(10**7))
        V = np.column_stack([v[k] for k in kinds])
        signs = np.array([-1.0 if o == "accuracy" else 1.0 for o in objectives])
        return V[non_dominated_mask(V * signs)]

    def values(self, encodings, noise: bool = True) -> dict[str, np.ndarray]:
        X = self.space.canonicalize(encodings)
        ops = X[:, :BRANCHES]
        width = np.array(WIDTHS)[X[:, BRANCHES]].astype(float)
        cells = np.array(CELLS)[X[:, BRANCHES + 1]].astype(float)
        counts = np.stack([(ops == o).sum(axis=1) for o in range(len(OPS))], axis=1)
        distinct = (counts[:, 1:] > 0).sum(axis=1)
        # a cell needs one learned operation; diversity helps with diminishing returns; skip helps depth
        skill = (np.sqrt(counts) * OP_SKILL).sum(axis=1) + 0.15 * distinct
        has_conv = counts[:, 2:5].sum(axis=1) > 0
        depth_gain = np.log1p(cells) * (0.6 + 0.4 * (counts[:, 1] > 0))
        cap = skill * depth_gain * np.log2(width / 8)
        macs = cells * (counts * OP_COST).sum(axis=1) * width**2 * 32 * 32
        params = cells * (counts * OP_COST).sum(axis=1) * width**2
        if not noise:
            return {"macs": macs, "params": params}
        acc = np.where(has_conv, 0.93 - 0.45 * np.exp(-cap / 2.2), 0.10 + 0.05 * np.tanh(cap))
        acc = acc + 0.004 * _noise(self.space, X, "acc")
        lat = 0.05 + cells * ((counts * OP_LAT).sum(axis=1) * (width**2 / 1024) + 0.01 * (counts[:, 1:] > 0).sum(axis=1))
        lat = lat * (1 + 0.02 * _noise(self.space, X, "lat"))
        return {"accuracy": acc, "latency": lat, "macs": macs, "params": params}
