"""A base class for tabular super-networks: benchmarks whose every "measurement" is a look-up.

A tabular plugin has no weights and no runnable sub-networks: quality, complexity and
latency come from a table (NAS-Bench-201, HW-NAS-Bench, your own sweep). Subclass
`TabularSupernet`, build `self.space` in `__init__`, and implement

* `search_space(cls, **params)` (classmethod) and `evaluate(encodings)`, as any plugin;
* `table_latency(encoding) -> float`: the table's latency in milliseconds;
* optionally `table_source()` (where the numbers come from: benchmark, dataset,
  package and version), `table_version()` (what identifies the table's contents: the
  evaluation cache keys on it), `load_table()` (read the table once, on `load`),
  `describe(encoding)` (a readable name of one entry), `complexity`, `true_front`.

`export_module` hands the `tabular` latency backend a `TableEntry` (never a torch
module), whose fingerprint names the table instead of this host, so a tabular
latency never passes for one measured here. `prepare`/`load` accept no checkpoint but
the table's own marker, `table:<table_name>`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from linas_lib.api.search_space import SearchSpace

TABLE_PREFIX = "table:"


@dataclass(frozen=True)
class TableEntry:
    """What a tabular plugin's `export_module` hands to latency backends: a row of the
    table, not a runnable module. The `tabular` backend asks it for `table_latency()`
    (ms) and `table_source()`."""

    plugin: Any
    encoding: tuple[int, ...]

    def table_latency(self) -> float:
        return float(self.plugin.table_latency(self.encoding))

    def table_source(self) -> dict[str, str]:
        return dict(self.plugin.table_source())

    def __repr__(self) -> str:
        return f"TableEntry({self.plugin.table_name}, {self.plugin.describe(self.encoding)})"


class TabularSupernet:
    """Base class of a super-network that is a table (see the module's docstring)."""

    quality_metric = "accuracy"
    table_name = "table"  # e.g. "nasbench201/cifar10": the checkpoint marker and the entries' name
    space: SearchSpace
    checkpoint_digest: str | None = None  # set by load(): the table marker and version

    @classmethod
    def search_space(cls, **params: Any) -> SearchSpace:
        raise NotImplementedError(f"{cls.__name__}: implement the search_space(**params) classmethod")

    # ---- what a subclass supplies -------------------------------------------------------
    def evaluate(self, encodings: Any) -> list[dict[str, float]]:
        raise NotImplementedError(f"{type(self).__name__}: implement evaluate(encodings)")

    def table_latency(self, encoding: Any) -> float:
        raise NotImplementedError(f"{type(self).__name__}: implement table_latency(encoding) (milliseconds)")

    def table_source(self) -> dict[str, str]:
        return {"benchmark": self.table_name, "version": self.table_version()}

    def table_version(self) -> str:
        """Identifies the table's contents (a package version, a file digest); the cache keys on it."""
        return "1"

    def load_table(self) -> None:
        """Read the table (called by `load`); a plugin may also read it lazily on first use."""

    def describe(self, encoding: Any) -> str:
        return str([int(g) for g in encoding])

    # ---- the plugin protocol, for a table ---------------------------------------------------
    @property
    def table_marker(self) -> str:
        return TABLE_PREFIX + self.table_name

    def prepare(self, checkpoint: str | None, cache_dir: str) -> str:
        if checkpoint and checkpoint != self.table_marker:
            raise ValueError(f"{self.table_name}: a table has no weights; checkpoint must be unset, got {checkpoint!r}")
        return self.table_marker

    def load(self, checkpoint: str | None = None) -> None:
        if checkpoint and checkpoint != self.table_marker:
            raise ValueError(f"{self.table_name}: {checkpoint!r} is not this table (expected {self.table_marker!r})")
        self.load_table()
        self.checkpoint_digest = f"{self.table_marker}:{self.table_version()}"

    def export_module(self, encoding: Any, batch_size: int) -> tuple[TableEntry, tuple]:
        canon = self.space.canonicalize(encoding)[0]
        return TableEntry(self, tuple(int(g) for g in canon)), ()
