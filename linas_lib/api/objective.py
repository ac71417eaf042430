"""Objectives: what is measured about a sub-network, and which way is better."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class Objective:
    """One column of the measurement table that the search optimizes.

    `name` is the column, e.g. ``accuracy`` or ``latency@cpu-ort`` for a target's
    latency; searches minimize internally, so maximized objectives are negated.
    """

    name: str
    direction: Direction
    unit: str = ""

    @property
    def sign(self) -> float:
        return -1.0 if self.direction == "max" else 1.0

    def to_min(self, values: np.ndarray) -> np.ndarray:
        return self.sign * np.asarray(values, dtype=float)

    def from_min(self, values: np.ndarray) -> np.ndarray:
        return self.sign * np.asarray(values, dtype=float)


def latency_column(target: str) -> str:
    """The measurement-table column of a hardware target's latency."""
    return f"latency@{target}"


def to_min_matrix(objectives: list[Objective], columns: dict[str, np.ndarray]) -> np.ndarray:
    """Stack measured columns into an (n, n_obj) matrix in minimization form."""
    return np.column_stack([o.to_min(columns[o.name]) for o in objectives])
