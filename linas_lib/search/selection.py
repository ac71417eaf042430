"""Choosing the next population from the inner search's candidates, by name.

* `ehvi_rank` (default): half the batch by the predicted front (rank and crowding), the
  other half by EHVI given that half. On the benchmark suite neither pure strategy won
  everywhere: rank and crowding exploits good predictors best (NAS-Bench-201, where the
  inner search sees every network), EHVI gains where predictors are unsure (the
  45-gene space); the mix was best or within noise of best on every problem tried.
* `ehvi`: greedy batch expected hypervolume improvement over the *measured*
  front. Each candidate's predicted objectives are a Gaussian (the predictors'
  bootstrap mean and spread; exact objectives have no spread). The candidate with the
  largest Monte-Carlo EHVI is taken, then assumed to land on its mean (the "kriging
  believer"), so the next pick must improve elsewhere: the batch spreads along the
  front by itself. When nothing promises an improvement any more, the rest is filled
  by distance to what is measured and chosen, among the best-ranked candidates.
* `rank_crowding`: the paper's choice: non-domination rank of the predicted values,
  then crowding distance.

A strategy takes plain arrays, all in minimization form, and returns indices.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from linas_lib.pareto import non_dominated_mask, rank_and_crowding
from linas_lib.registry import Registry

Selector = Callable[..., np.ndarray]
NEEDS_UNCERTAINTY = {"ehvi", "ehvi_rank"}  # their predictors are fitted as bootstrap ensembles
selection_registry: Registry[Selector] = Registry("selection strategy", group="linas.selections")

REFERENCE = 1.1          # of the measured front's box, as for the hypervolume
MAX_CANDIDATES = 500     # scored by EHVI; the rest are ranked out before
SAMPLES_2D = 16          # Monte-Carlo draws per candidate (2 objectives: exact HVI per draw)
SAMPLES_ND, BOX_POINTS = 4, 2048   # 3+ objectives: HVI itself is a Monte-Carlo volume


def select(name: str, mean: np.ndarray, std: np.ndarray, measured: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of `n` rows of `mean` (candidates' predicted objectives, min-form)."""
    n = min(n, len(mean))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(selection_registry.get(name)(mean, std, measured, n, seed), dtype=np.int64)


def selection_names() -> list[str]:
    return selection_registry.names()


@selection_registry.register("rank_crowding")
def rank_crowding_selection(mean, std, measured, n, seed) -> np.ndarray:
    return rank_and_crowding(mean)[:n]


@selection_registry.register("ehvi_rank")
def ehvi_rank_selection(mean, std, measured, n, seed) -> np.ndarray:
    """Half the batch by predicted rank and crowding (the predicted front, spread), the other
    half by EHVI given those: exploitation of the predictors plus improvement under uncertainty."""
    first = rank_and_crowding(mean)[: n - n // 2]
    if n // 2 == 0:
        return first
    rest = np.setdiff1d(np.arange(len(mean)), first)
    believed = np.vstack([np.asarray(measured, float).reshape(-1, mean.shape[1]), mean[first]])
    more = ehvi_selection(mean[rest], std[rest], believed, n // 2, seed)
    return np.concatenate([first, rest[more]])


# ---- hypervolume improvement ------------------------------------------------------
def _front(Z: np.ndarray, ref: float) -> np.ndarray:
    Z = Z[np.all(Z < ref, axis=1)]
    return Z[non_dominated_mask(Z)] if len(Z) else Z


# EHVI picks above which hvi_2d sums the staircase by prefix sums (O(log F) a point instead
# of O(F)): a batch of hundreds grows the believed front to hundreds of points. Smaller
# batches keep the direct sum, and so their exact choices.
FAST_HVI_BATCH = 100


def hvi_2d(points: np.ndarray, front: np.ndarray, ref: float = REFERENCE) -> np.ndarray:
    """Exact hypervolume improvement of each point (..., 2) over a 2-D front, vectorized.

    The region the front leaves free is a staircase: below height u_j on [start_j, end_j).
    A point (a, b) adds the part of that staircase right of a and above b.
    """
    P = front[np.argsort(front[:, 0])] if len(front) else np.zeros((0, 2))
    starts = np.concatenate([[-np.inf], P[:, 0]])
    ends = np.concatenate([P[:, 0], [ref]])
    heights = np.concatenate([[ref], P[:, 1]])
    a, b = points[..., :1], points[..., 1:2]
    width = np.clip(ends - np.maximum(starts, a), 0.0, None)
    height = np.clip(heights - b, 0.0, None)
    return (width * height).sum(axis=-1)


def _hvi_2d_prefix(points: np.ndarray, front: np.ndarray, ref: float) -> np.ndarray:
    """hvi_2d by prefix sums over the staircase (the same value, rounded differently).

    Segment k of the non-dominated front, sorted by the first objective, spans
    [x_k, x_{k+1}) (the last ends at ref) at height y_k; before x_0 the height is ref. A
    point (a, b) gains on the segments that end right of a (k >= ka) and lie above b
    (k < kb, heights fall): the sum of w_k (y_k - b) over them, less the part of segment
    ka left of a.
    """
    shape = points.shape[:-1]
    a, b = points[..., 0].reshape(-1), points[..., 1].reshape(-1)
    if len(front) == 0:
        return (np.clip(ref - a, 0.0, None) * np.clip(ref - b, 0.0, None)).reshape(shape)
    P = front[np.argsort(front[:, 0], kind="stable")]
    x, y = P[:, 0], P[:, 1]
    end = np.append(x[1:], ref)
    w = end - x
    sum_w = np.concatenate([[0.0], np.cumsum(w)])
    sum_wy = np.concatenate([[0.0], np.cumsum(w * y)])
    ka = np.searchsorted(end, a, side="right")
    kb = np.searchsorted(-y, -b, side="left")
    k = np.minimum(ka, len(x) - 1)
    body = (sum_wy[kb] - sum_wy[ka]) - b * (sum_w[kb] - sum_w[ka]) - np.clip(a - x[k], 0.0, None) * (y[k] - b)
    gain = np.where(ka < kb, body, 0.0) + np.clip(x[0] - a, 0.0, None) * np.clip(ref - b, 0.0, None)
    return np.clip(gain, 0.0, None).reshape(shape)


class _BoxSample:
    """Uniform points in a box for Monte-Carlo hypervolume improvement (3+ objectives)."""

    def __init__(self, low: np.ndarray, ref: float, rng: np.random.Generator):
        self.low = low
        self.Z = low + rng.random((BOX_POINTS, len(low))) * (ref - low)
        self.volume = float(np.prod(ref - low))

    def free(self, front: np.ndarray) -> np.ndarray:
        if len(front) == 0:
            return np.ones(len(self.Z), dtype=bool)
        return ~np.any(np.all(front[:, None, :] <= self.Z[None, :, :], axis=2), axis=0)

    def hvi(self, points: np.ndarray, free: np.ndarray) -> np.ndarray:
        Zf = self.Z[free]
        flat = points.reshape(-1, points.shape[-1])
        dominated = np.all(flat[:, None, :] <= Zf[None, :, :], axis=2).sum(axis=1)
        return (dominated * self.volume / len(self.Z)).reshape(points.shape[:-1])


@selection_registry.register("ehvi")
def ehvi_selection(mean, std, measured, n, seed, max_candidates: int = MAX_CANDIDATES) -> np.ndarray:
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    measured = np.asarray(measured, float).reshape(-1, mean.shape[1])
    m = mean.shape[1]
    if len(measured) < 2:
        return rank_and_crowding(mean)[:n]
    # normalize by the measured values' box: improvements are judged where we stand
    lo, hi = measured.min(axis=0), measured.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    M, S = (mean - lo) / span, std / span

    # the most promising candidates by their optimistic value (mean - std)
    pool = rank_and_crowding(M - S)[:max_candidates]
    M, S = M[pool], S[pool]
    rng = np.random.default_rng(seed)
    draws = SAMPLES_2D if m == 2 else SAMPLES_ND
    Y = M[None] + S[None] * rng.standard_normal((draws, *M.shape))
    front = _front((measured - lo) / span, REFERENCE)
    box = None if m == 2 else _BoxSample(np.minimum(Y.min(axis=(0, 1)), 0.0), REFERENCE, rng)

    chosen: list[int] = []
    left = np.ones(len(pool), dtype=bool)
    hvi = hvi_2d if n <= FAST_HVI_BATCH else functools.partial(_hvi_2d_prefix, ref=REFERENCE)
    while len(chosen) < n:
        if m == 2:
            gain = hvi(Y[:, left], front).mean(axis=0)
        else:
            gain = box.hvi(Y[:, left], box.free(front)).mean(axis=0)
        idx = np.flatnonzero(left)
        best = int(np.argmax(gain))
        if gain[best] <= 1e-12:
            break
        chosen.append(int(idx[best]))
        left[idx[best]] = False
        front = _front(np.vstack([front, M[idx[best]][None]]), REFERENCE)  # kriging believer
    if len(chosen) < n:
        chosen += _spread_fill(M, left, np.vstack([front, M[chosen]]) if chosen else front, n - len(chosen))
    return pool[np.asarray(chosen, dtype=np.int64)]


def _spread_fill(M: np.ndarray, left: np.ndarray, taken: np.ndarray, k: int) -> list[int]:
    """`k` more by predicted rank, each as far as possible from what is measured or chosen."""
    idx = np.flatnonzero(left)
    order = idx[rank_and_crowding(M[idx])][: max(4 * k, k)]
    picked: list[int] = []
    ref = taken if len(taken) else M[order[:1]]
    dist = np.min(np.linalg.norm(M[order][:, None, :] - ref[None, :, :], axis=2), axis=1)
    free = np.ones(len(order), dtype=bool)
    for _ in range(min(k, len(order))):
        j = int(np.argmax(np.where(free, dist, -np.inf)))
        picked.append(int(order[j]))
        free[j] = False
        dist = np.minimum(dist, np.linalg.norm(M[order] - M[order[j]], axis=1))
    return picked
