"""Pareto fronts and normalized hypervolume (pymoo's HV indicator).

Objectives are normalized with bounds fixed once per run (from the first measured
population unless the config gives them), and the reference point is 1.1 in
normalized space, so the hypervolume of different iterations is comparable.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

REFERENCE = 1.1


def non_dominated_mask(F: np.ndarray) -> np.ndarray:
    """Rows of F (minimization) that no other row dominates."""
    F = np.asarray(F, dtype=float)
    mask = np.zeros(len(F), dtype=bool)
    if len(F):
        mask[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    return mask


def rank_and_crowding(F: np.ndarray) -> np.ndarray:
    """Indices of F ordered best first: by non-domination rank, then crowding."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance

    order: list[int] = []
    for front in NonDominatedSorting().do(np.asarray(F, dtype=float)):
        front = np.asarray(front)
        crowding = calc_crowding_distance(F[front]) if len(front) > 2 else np.full(len(front), np.inf)
        order.extend(front[np.argsort(-crowding, kind="stable")].tolist())
    return np.asarray(order, dtype=np.int64)


@dataclass(frozen=True)
class Normalization:
    """Affine map of minimization-form objectives onto [0, 1]."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @classmethod
    def from_values(cls, F: np.ndarray, margin: float = 0.05) -> "Normalization":
        F = np.asarray(F, dtype=float)
        lo, hi = F.min(axis=0), F.max(axis=0)
        span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
        return cls(tuple((lo - margin * span).tolist()), tuple((hi + margin * span).tolist()))

    def apply(self, F: np.ndarray) -> np.ndarray:
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        return (np.asarray(F, dtype=float) - lo) / (hi - lo)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(tuple(d["lower"]), tuple(d["upper"]))


def hypervolume(F: np.ndarray, norm: Normalization) -> float:
    """Normalized hypervolume of the points F (minimization form)."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return 0.0
    ref = np.full(F.shape[1], REFERENCE)
    return float(HV(ref_point=ref)(norm.apply(F)))
