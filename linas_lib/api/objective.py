"""Objectives: what is measured about a sub-network, and which way is better.

Every value column of the measurement table is named by a `ColumnKey`: one format
(`str(key)`) and one parse (`ColumnKey.parse`), so no module builds or splits
column names by hand.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["max", "min"]

# Variants of a measured kind: spread, tail, CPU time, normalized value, timing count.
STATISTICS = ("cv", "p90", "cpu", "norm", "timings")
PREDICTED = "pred:"
# Conditions recorded beside a measurement (the host's load), never optimized.
CONTEXT_KINDS = ("load_1m",)
# What one search takes: a quality and up to four latency targets (the config checks it,
# every algorithm accepts it).
MAX_OBJECTIVES = 5


@dataclass(frozen=True)
class ColumnKey:
    """The parts of a value column's name: ``[pred:]kind[_statistic][@target]``.

    ``accuracy``; ``latency@cpu-ort`` (a target's median latency, ms);
    ``latency_cv@cpu-ort``; ``accuracy@cpu-int8`` (an INT8 target's quality);
    ``hr@10`` (a metric whose own name holds '@': target names start with a letter,
    so '10' is no target); ``pred:latency@cpu-ort`` (predicted before measuring).
    """

    kind: str
    target: str | None = None
    statistic: str | None = None
    predicted: bool = False

    def __post_init__(self) -> None:
        if self.statistic is not None and self.statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {self.statistic!r}; allowed: {', '.join(STATISTICS)}")

    def __str__(self) -> str:
        base = f"{self.kind}_{self.statistic}" if self.statistic else self.kind
        name = f"{base}@{self.target}" if self.target else base
        return PREDICTED + name if self.predicted else name

    @property
    def name(self) -> str:
        return str(self)

    @classmethod
    @functools.lru_cache(maxsize=4096)
    def parse(cls, name: str) -> "ColumnKey":
        predicted = name.startswith(PREDICTED)
        plain = name.removeprefix(PREDICTED)
        base, at, target = plain.rpartition("@")
        if not at or not target[:1].isalpha():
            base, target = plain, None
        kind, _, statistic = base.rpartition("_")
        if not kind or statistic not in STATISTICS:
            kind, statistic = base, None
        return cls(kind, target or None, statistic or None, predicted)

    @property
    def is_measured_value(self) -> bool:
        """A quantity of its own (accuracy, latency@t, macs), not a statistic of one, a logged
        prediction or a condition of the measurement."""
        return not self.predicted and self.statistic is None and self.kind not in CONTEXT_KINDS

    def prediction(self) -> "ColumnKey":
        """The column that logs this one's value as predicted before measuring."""
        return dataclasses.replace(self, predicted=True)

    def with_statistic(self, statistic: str | None) -> "ColumnKey":
        return dataclasses.replace(self, statistic=statistic)


@dataclass(frozen=True)
class Objective:
    """One column of the measurement table that the search optimizes.

    `name` is the column (a `ColumnKey`'s text), e.g. ``accuracy`` or
    ``latency@cpu-ort``; searches minimize internally, so maximized objectives are
    negated.
    """

    name: str
    direction: Direction
    unit: str = ""

    @functools.cached_property
    def key(self) -> ColumnKey:
        return ColumnKey.parse(self.name)

    @property
    def target(self) -> str | None:
        """The hardware target this objective is measured on (None: the sub-network's own)."""
        return self.key.target

    @property
    def sign(self) -> float:
        return -1.0 if self.direction == "max" else 1.0

    def to_min(self, values: np.ndarray) -> np.ndarray:
        return self.sign * np.asarray(values, dtype=float)

    def from_min(self, values: np.ndarray) -> np.ndarray:
        return self.sign * np.asarray(values, dtype=float)


def column(kind: str, target: str | None = None, statistic: str | None = None) -> str:
    """A value column's name from its parts."""
    return str(ColumnKey(kind, target, statistic))


def latency_column(target: str) -> str:
    """The measurement-table column of a hardware target's (median) latency."""
    return column("latency", target)


def prediction_column(name: str) -> str:
    """The column that logs objective `name` as predicted before measuring."""
    return str(ColumnKey.parse(name).prediction())


def is_prediction(name: str) -> bool:
    return ColumnKey.parse(str(name)).predicted


def to_min_matrix(objectives: list[Objective], columns: dict[str, np.ndarray]) -> np.ndarray:
    """Stack measured columns into an (n, n_obj) matrix in minimization form."""
    return np.column_stack([o.to_min(columns[o.name]) for o in objectives])
