"""Pareto fronts and normalized hypervolume (pymoo's HV indicator).

The normalized hypervolume is the share of a fixed box that the front dominates, so
it lies in [0, 1] and compares across iterations, seeds and runs. The box goes from
the ideal corner (0: best of every objective) to the nadir corner (1: worst, which
is also the reference point); points outside it are clipped onto it, so a point
worse than the box adds nothing. Where the box comes from is the Normalization's
`basis` (see `linas_lib.search.core.normalization`): a tabular benchmark's true
front, the measured anchor networks (smallest and largest), or, lacking both, the
first population.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

REFERENCE = 1.1  # bench/reproduce.py's reference point over a 5 %-margin box (the paper-era protocol)


# Above this many rows the front comes from moocore's is_nondominated (same set, duplicates
# kept): pymoo's sorting ranks every row, seconds at 100,000 rows in 5 objectives.
FAST_FRONT_ROWS = 2000


def non_dominated_mask(F: np.ndarray) -> np.ndarray:
    """Rows of F (minimization) that no other row dominates."""
    F = np.asarray(F, dtype=float)
    if len(F) > FAST_FRONT_ROWS:
        from moocore import is_nondominated

        return np.asarray(is_nondominated(F, keep_weakly=True), dtype=bool)
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
    """Affine map of minimization-form objectives onto [0, 1]: lower is the ideal, upper the nadir."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    basis: str = "values"

    @classmethod
    def from_values(cls, F: np.ndarray, margin: float = 0.05, basis: str = "values") -> "Normalization":
        F = np.asarray(F, dtype=float)
        lo, hi = F.min(axis=0), F.max(axis=0)
        span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
        return cls(tuple((lo - margin * span).tolist()), tuple((hi + margin * span).tolist()), basis)

    def apply(self, F: np.ndarray) -> np.ndarray:
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        return (np.asarray(F, dtype=float) - lo) / (hi - lo)

    def to_dict(self) -> dict:
        return asdict(self)



def hypervolume(F: np.ndarray, norm: Normalization) -> float:
    """Share of the normalization's box dominated by the points F (minimization form), in [0, 1]."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return 0.0
    Z = np.clip(norm.apply(F), 0.0, 1.0)
    Z = Z[np.all(Z < 1.0, axis=1)]
    if len(Z) == 0:
        return 0.0
    if Z.shape[1] == 2:  # exact and fast: the staircase
        Z = Z[np.lexsort((Z[:, 1], Z[:, 0]))]
        area, best = 0.0, 1.0
        for f0, f1 in Z:
            if f1 < best:
                area += (1.0 - f0) * (best - f1)
                best = f1
        return float(area)
    return float(HV(ref_point=np.ones(Z.shape[1]))(Z))
