"""`elastic_cnn` restricted to a pool of sub-networks measured for real (bench/data).

The suite's real-network problem. `bench/elastic_cnn_pool.py` measured every pooled
sub-network once through the ordinary path: test-split accuracy of the `make run`
checkpoint and ONNX Runtime CPU latency (batch 32, 1 thread). Searches then replay
those numbers, so every method and seed sees the same real measurements, in seconds.

The space is elastic_cnn's own 27 conditional genes; `PoolSpace` tells LINAS which
gene vectors are the same network, as any plugin may: every gene vector names its
nearest pooled network (L1 distance between canonical option indices, ties to the
earlier one). Enumeration and sampling therefore range over the pool, and the true
front is the pool's.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linas_lib.api.objective import ColumnKey, latency_column
from linas_lib.api.search_space import SearchSpace
from linas_lib.supernets import supernet_registry
from linas_lib.supernets import elastic_cnn

POOL = Path(__file__).resolve().parents[1] / "data" / "elastic_cnn_pool.json"
LATENCY = latency_column("cpu-ort")


@functools.lru_cache(maxsize=None)
def load_pool(path: str = str(POOL)) -> dict:
    doc = json.loads(Path(path).read_text())
    rows = doc["rows"]
    if not rows:
        raise ValueError(f"{path}: the pool is empty; run bench/elastic_cnn_pool.py first")
    return {"X": np.array([r["encoding"] for r in rows], dtype=np.int64),
            "accuracy": np.array([r["accuracy"] for r in rows]),
            "latency": np.array([r[LATENCY] for r in rows]),
            "digest": doc["checkpoint_digest"], "size": len(rows)}


class PoolSpace(SearchSpace):
    """elastic_cnn's genes; each gene vector names its nearest pooled network."""

    def pool(self) -> np.ndarray:
        return load_pool()["X"]

    @functools.cached_property
    def _members(self) -> dict[tuple, int]:
        members: dict[tuple, int] = {}
        for i, x in enumerate(self.pool()):
            members.setdefault(tuple(x.tolist()), i)
        return members

    def nearest(self, X: np.ndarray) -> np.ndarray:
        """Row index in the pool of each (canonical) gene vector's network."""
        X = np.atleast_2d(X)
        out = np.empty(len(X), dtype=np.int64)
        far = []
        for i, x in enumerate(X):
            j = self._members.get(tuple(x.tolist()))
            if j is None:
                far.append(i)
            else:
                out[i] = j
        pool = self.pool().astype(np.int16)
        for start in range(0, len(far), 512):  # bounded memory: 512 x pool x genes
            rows = np.asarray(far[start:start + 512])
            d = np.abs(X[rows].astype(np.int16)[:, None, :] - pool[None]).sum(axis=2)
            out[rows] = np.argmin(d, axis=1)  # first minimum: ties go to the earlier pooled network
        return out

    def canonicalize_valid(self, X: np.ndarray) -> np.ndarray:
        X = super().canonicalize_valid(X)
        return self.pool()[self.nearest(X)]

    @property
    def n_encodings(self) -> float:
        return float(len(self._members))

    def enumerate(self, limit: int) -> np.ndarray | None:
        return None if len(self._members) > limit else np.unique(self.pool(), axis=0)

    def sample(self, n, rng=None, exclude=()):
        """Uniform over the pooled networks (not over genes, whose cells differ in size)."""
        rng = np.random.default_rng(rng)
        unique = np.unique(self.pool(), axis=0)
        excluded = set(exclude)
        free = [i for i, k in enumerate(self.keys(unique)) if k not in excluded]
        if len(free) < n:
            raise ValueError(f"could not sample {n} distinct unseen networks from {self.name!r}: "
                             f"{len(free)} of {len(unique)} left")
        return unique[np.sort(rng.choice(free, size=n, replace=False))] if n else unique[:0]


@dataclass(frozen=True)
class Entry:
    """What `export_module` hands the `tabular` latency backend: a pooled latency."""

    latency_ms: float
    digest: str

    def table_latency(self) -> float:
        return self.latency_ms

    def table_source(self) -> dict[str, str]:
        return {"benchmark": "elastic_cnn_pool", "dataset": "animal_mnist", "package": "bench/data",
                "version": self.digest[:12]}


@supernet_registry.register("elastic_cnn_pool")
class ElasticCNNPool:
    quality_metric = "accuracy"
    fast_complexity = True  # elastic_cnn's closed form
    name = "elastic_cnn_pool"

    def __init__(self):
        self.space = self.search_space()
        self.checkpoint_digest = f"elastic_cnn_pool:{load_pool()['digest']}:{load_pool()['size']}"

    @staticmethod
    def search_space(**_) -> SearchSpace:
        base = elastic_cnn.build_space()
        return PoolSpace(base.variables, name="elastic_cnn_pool")

    def prepare(self, checkpoint, cache_dir):
        return self.checkpoint_digest

    def load(self, checkpoint=None):
        pass

    def _rows(self, encodings) -> np.ndarray:
        return self.space.nearest(self.space.canonicalize(encodings))

    def evaluate(self, encodings):
        pool, rows = load_pool(), self._rows(encodings)
        c = self.complexity(pool["X"][rows])
        return [{"accuracy": float(pool["accuracy"][r]), "macs": float(m), "params": float(p)}
                for r, m, p in zip(rows, c["macs"], c["params"])]

    def complexity(self, encodings):
        return elastic_cnn.complexity_of(self.space.canonicalize(encodings))

    def features(self, encodings):
        X = self.space.canonicalize(encodings)
        c = elastic_cnn.complexity_of(X)
        per_stage = 1 + 2 * max(elastic_cnn.DEPTHS)
        depth = sum(np.array(elastic_cnn.DEPTHS)[X[:, s * per_stage]] for s in range(len(elastic_cnn.STAGES)))
        return np.column_stack([np.log(c["macs"]), np.log(c["params"]), depth])

    def export_module(self, encoding, batch_size):
        row = self._rows(encoding)[0]
        return Entry(float(load_pool()["latency"][row]), load_pool()["digest"]), ()

    def true_front(self, objectives: list[str]) -> np.ndarray | None:
        """Every pooled network is measured, so the pool's front is the true one."""
        from linas_lib.pareto import non_dominated_mask

        pool = load_pool()
        columns = {"accuracy": pool["accuracy"], "latency": pool["latency"],
                   **elastic_cnn.complexity_of(pool["X"])}
        names = [ColumnKey.parse(o).kind for o in objectives]
        if not all(n in columns for n in names):
            return None
        V = np.column_stack([columns[n] for n in names])
        signs = np.array([-1.0 if n == "accuracy" else 1.0 for n in names])
        return V[non_dominated_mask(V * signs)]
