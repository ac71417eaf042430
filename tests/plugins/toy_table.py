"""A tabular plugin: 27 networks whose every value is a look-up (docs/plugins.md, "A tabular
plugin of your own"). It subclasses `TabularSupernet`, so `export_module` hands the `tabular`
latency backend a table entry, and `prepare`/`load` take no weights."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linas_lib.api.search_space import SearchSpace, Variable
from linas_lib.api.tabular import TabularSupernet
from linas_lib.supernets import supernet_registry

from toy_table_data import DEPTHS, KERNELS, WIDTHS, make_table  # the module beside this file


@dataclass(frozen=True)
class Row:
    accuracy: float
    latency_ms: float
    params: float


def build_space() -> SearchSpace:
    return SearchSpace([Variable("width", WIDTHS), Variable("depth", DEPTHS), Variable("kernel", KERNELS)],
                       name="toy_table")


@supernet_registry.register("toy_table")
class ToyTable(TabularSupernet):
    quality_metric = "accuracy"
    table_name = "toy_table"
    fast_complexity = True  # params come from the table: exact, never predicted

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.space = build_space()
        self._rows: dict[tuple[int, ...], Row] | None = None

    @classmethod
    def search_space(cls, **_) -> SearchSpace:
        return build_space()

    def load_table(self) -> None:
        self._rows = {key: Row(*values) for key, values in make_table(self.seed).items()}

    def table_version(self) -> str:
        return f"seed{self.seed}"

    def _row(self, encoding) -> Row:
        if self._rows is None:
            self.load_table()
        return self._rows[tuple(int(g) for g in encoding)]

    def evaluate(self, encodings):
        rows = [self._row(e) for e in self.space.canonicalize(encodings)]
        return [{"accuracy": r.accuracy, "params": r.params} for r in rows]

    def complexity(self, encodings):
        return {"params": np.array([self._row(e).params for e in self.space.canonicalize(encodings)])}

    def table_latency(self, encoding) -> float:
        return self._row(self.space.canonicalize(encoding)[0]).latency_ms
