"""NSGA-II on plain numpy arrays: the default algorithm ("nsga2"), inner loop and validation.

The same algorithm as pymoo's NSGA2 with the integer operators of
`linas_lib.algos.pymoo_algos` (registered there as "nsga2_pymoo"), without pymoo's
per-individual Population objects, whose get/set calls dominated a 20,000-evaluation
inner search. Per generation:

1. binary tournament selection over concatenated random permutations (pymoo's
   TournamentSelection, pressure 2): lower non-domination rank wins, then larger
   crowding distance, then a fair coin;
2. SBX (eta 15, per-variable probability 0.5, as pymoo's `cross_sbx`) applied to
   a mating with probability `crossover`, otherwise the parents are copied; then
   polynomial mutation (eta 20, as pymoo's `mut_pm`) of each gene with probability
   `mutation`; each step followed by rounding repair to the option indices. Both
   operators are re-implemented on the crossing / mutating entries only, drawing
   the same distributions as pymoo's functions with far fewer numpy calls;
3. duplicate elimination on canonical encodings (row bytes) against the
   population and the offspring so far, re-mating the shortfall at most
   `mating_retries` times (pymoo's Mating loop, capped as "nsga2_pymoo" caps it);
4. survival of the merged population by non-dominated sorting (pymoo's
   NonDominatedSorting) and crowding distance (pymoo's definition, computed for all
   fronts in one pass); the splitting front is truncated by crowding with
   randomized tie-breaking (pymoo's randomized_argsort).

Everything random comes from one numpy Generator seeded by `seed`, so a run is
deterministic for a seed and given objective values.
"""
from __future__ import annotations

import math
import time

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from linas_lib.algos import algorithm_registry
from linas_lib.algos.base import BatchSearcher, check_objectives, round_to_space, row_keys

MATING_RETRIES = 5


def crowding_distance(F: np.ndarray, front_of: np.ndarray) -> np.ndarray:
    """pymoo's NSGA-II crowding distance of every row of F within its own front, in one pass.

    `front_of[i]` is row i's front; rows of a front are in the order the front lists
    them, which fixes how ties sort exactly as pymoo's per-front computation does.
    Fronts of at most two points get infinite distance; an objective on which a
    front is flat contributes nothing.
    """
    n, n_obj = F.shape
    cd = np.zeros(n)
    if n == 0:
        return cd
    boundary = np.empty(n + 1, dtype=bool)
    gaps = np.empty(n + 1)
    for m in range(n_obj):
        order = np.lexsort((F[:, m], front_of))  # by front, then value; stable like pymoo's mergesort
        f, g = F[order, m], front_of[order]
        boundary[0] = boundary[n] = True
        np.not_equal(g[1:], g[:-1], out=boundary[1:n])  # boundary[i]: a front starts at sorted row i
        np.subtract(f[1:], f[:-1], out=gaps[1:n])
        gaps[boundary] = np.inf
        starts = np.flatnonzero(boundary[:n])
        ends = np.flatnonzero(boundary[1:])
        norm = np.repeat(f[ends] - f[starts], ends - starts + 1)  # per front: max - min
        with np.errstate(divide="ignore", invalid="ignore"):
            contrib = (gaps[:n] + gaps[1:]) / norm
        contrib[norm == 0] = 0.0
        cd[order] += contrib
    cd /= n_obj
    sizes = np.bincount(front_of)
    cd[sizes[front_of] <= 2] = np.inf
    return cd


def sbx(P1: np.ndarray, P2: np.ndarray, xl: np.ndarray, xu: np.ndarray, eta: float, rng,
        prob_var: float = 0.5, eps: float = 1e-14) -> tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover of parent rows P1[i] x P2[i], as pymoo's `cross_sbx`.

    Each variable crosses with probability `prob_var` unless the parents agree on it;
    the two children of a crossed variable go to either child with equal probability
    (pymoo's exchange with prob_bin 0.5). Results are clipped to the bounds, not rounded.
    """
    C1, C2 = P1.astype(float), P2.astype(float)
    cross = (rng.random(P1.shape) < prob_var) & (np.abs(P1 - P2) > eps) & (xl != xu)
    rows, cols = np.nonzero(cross)
    if len(rows) == 0:
        return C1, C2
    a, b = C1[rows, cols], C2[rows, cols]
    y1, y2 = np.minimum(a, b), np.maximum(a, b)
    lo, hi = xl[cols], xu[cols]
    delta = y2 - y1
    u = rng.random(len(rows))
    power = 1.0 / (eta + 1.0)

    def betaq(beta):
        alpha = 2.0 - beta ** -(eta + 1.0)
        return np.where(u <= 1.0 / alpha, (u * alpha) ** power, (1.0 / (2.0 - u * alpha)) ** power)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c1 = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - lo) / delta) * delta)
        c2 = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (hi - y2) / delta) * delta)
    swap = rng.random(len(rows)) < 0.5
    C1[rows, cols] = np.clip(np.where(swap, c2, c1), lo, hi)
    C2[rows, cols] = np.clip(np.where(swap, c1, c2), lo, hi)
    return C1, C2


def polynomial_mutation(X: np.ndarray, xl: np.ndarray, xu: np.ndarray, eta: float, prob: float, rng) -> np.ndarray:
    """Polynomial mutation of each variable with probability `prob`, as pymoo's `mut_pm`."""
    Y = X.astype(float)
    mut = (rng.random(X.shape) < prob) & (xl != xu)
    rows, cols = np.nonzero(mut)
    if len(rows) == 0:
        return Y
    x, lo, hi = Y[rows, cols], xl[cols], xu[cols]
    span = hi - lo
    d1, d2 = (x - lo) / span, (hi - x) / span
    u = rng.random(len(rows))
    power = 1.0 / (eta + 1.0)
    low = u <= 0.5
    with np.errstate(invalid="ignore"):
        dq_low = (2.0 * u + (1.0 - 2.0 * u) * (1.0 - d1) ** (eta + 1.0)) ** power - 1.0
        dq_high = 1.0 - (2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - d2) ** (eta + 1.0)) ** power
    Y[rows, cols] = np.clip(x + np.where(low, dq_low, dq_high) * span, lo, hi)
    return Y


class NSGA2Searcher(BatchSearcher):
    def __init__(self, space, n_obj: int, budget: int, seed: int, population: int = 50, crossover: float = 0.9,
                 mutation: float = 0.02, eta_c: float = 15, eta_m: float = 20, mating_retries: int = MATING_RETRIES,
                 count_revisits: bool = True):
        super().__init__(space, n_obj, budget, count_revisits=count_revisits)
        if population < 2:
            raise ValueError(f"nsga2: population must be at least 2, got {population}")
        if not (0 <= crossover <= 1 and 0 <= mutation <= 1):
            raise ValueError(f"nsga2: crossover and mutation are probabilities, got {crossover} and {mutation}")
        self.population, self.crossover, self.mutation = int(population), float(crossover), float(mutation)
        self.eta_c, self.eta_m, self.mating_retries = float(eta_c), float(eta_m), int(mating_retries)
        self.rng = np.random.default_rng(seed)
        self.xl = np.zeros(space.n_var, dtype=float)
        self.xu = space.upper.astype(float)
        self.nds = NonDominatedSorting()
        self.generations = 0
        self.X: np.ndarray | None = None  # population: canonical encodings, values, rank, crowding
        self.F = self.rank = self.crowding = None
        self._keys: set[bytes] = set()

    # ---- BatchSearcher ----------------------------------------------------------
    def _propose(self) -> np.ndarray:
        if self.X is None:
            return self.space.sample(self.population, self.rng)
        return self._mate()

    def _accept(self, X: np.ndarray, F: np.ndarray) -> None:
        if self.X is not None:
            X, F = np.vstack([self.X, X]), np.vstack([self.F, F])
            self.generations += 1
        self._survive(X, np.asarray(F, dtype=float))

    # ---- NSGA-II ------------------------------------------------------------------
    def _survive(self, X: np.ndarray, F: np.ndarray) -> None:
        n_survive = min(self.population, len(X))
        fronts = self.nds.do(F, n_stop_if_ranked=n_survive)
        order = np.concatenate(fronts).astype(np.int64)
        front_of = np.repeat(np.arange(len(fronts)), [len(f) for f in fronts])
        crowding = crowding_distance(F[order], front_of)
        keep = []
        taken = 0
        start = 0
        for k, front in enumerate(fronts):
            idx = np.arange(start, start + len(front))
            start += len(front)
            if taken + len(front) > n_survive:
                n_remove = taken + len(front) - n_survive
                # pymoo's randomized_argsort(..., order="descending", method="numpy")
                perm = self.rng.permutation(len(front))
                sorted_ = perm[np.argsort(crowding[idx][perm], kind="quicksort")][::-1]
                idx = idx[sorted_[:-n_remove]]
            keep.append(idx)
            taken += len(idx)
            if taken >= n_survive:
                break
        sel = np.concatenate(keep)
        rows = order[sel]
        self.X, self.F = X[rows], F[rows]
        self.rank, self.crowding = front_of[sel], crowding[sel]
        self._keys = set(row_keys(self.X))

    def _tournament(self, n_select: int, rounds: int = 1) -> np.ndarray:
        """(rounds * n_select, 2) parent indices by binary tournaments on rank, then crowding, then a coin.

        As pymoo's TournamentSelection, each round's competitors are read off freshly
        concatenated random permutations of the population.
        """
        n = len(self.X)
        n_random = n_select * 2 * 2
        perms = [np.concatenate([self.rng.permutation(n) for _ in range(math.ceil(n_random / n))])[:n_random]
                 for _ in range(rounds)]
        P = np.concatenate(perms).reshape(-1, 2)
        a, b = P[:, 0], P[:, 1]
        ra, rb = self.rank[a], self.rank[b]
        ca, cb = self.crowding[a], self.crowding[b]
        coin = self.rng.random(len(P)) < 0.5
        winner = np.where(ra < rb, a, np.where(rb < ra, b, np.where(ca > cb, a, np.where(cb > ca, b,
                          np.where(coin, a, b)))))
        return winner.reshape(rounds * n_select, 2)

    def _variation(self, parents: np.ndarray) -> np.ndarray:
        """SBX + rounding, then polynomial mutation + rounding: (2, n_matings, n_var) canonical offspring."""
        n_matings, n_var = len(parents), self.space.n_var
        P1, P2 = self.X[parents[:, 0]], self.X[parents[:, 1]]
        C1, C2 = P1.astype(float), P2.astype(float)
        cross = self.rng.random(n_matings) < self.crossover  # per mating; the rest copy their parents
        if cross.any():
            C1[cross], C2[cross] = (np.rint(c) for c in sbx(P1[cross], P2[cross], self.xl, self.xu, self.eta_c,
                                                           self.rng))
        off = np.concatenate([C1, C2])  # pymoo's order: first children, then second children
        if self.mutation > 0:
            off = polynomial_mutation(off, self.xl, self.xu, self.eta_m, self.mutation, self.rng)
        return round_to_space(self.space, off).reshape(2, n_matings, n_var)

    def _mate(self) -> np.ndarray:
        """Up to `population` offspring, new to the population and to each other.

        pymoo's Mating loop: a round mates ceil(remaining / 2) tournament-selected
        pairs, drops duplicates and keeps at most what is still missing; at most
        `mating_retries` rounds. Every round is drawn up front at full size in one
        vectorized pass and round r uses only the matings it needs, which draws
        the same distribution as mating round by round, at the cost of one round.
        """
        target, rounds = self.population, max(1, self.mating_retries)
        per_round = math.ceil(target / 2)
        off = self._variation(self._tournament(per_round, rounds))  # (2, rounds * per_round, n_var)
        off = off.reshape(2, rounds, per_round, -1)
        t0 = time.perf_counter()
        keys = np.array(row_keys(off.reshape(-1, off.shape[-1])), dtype=object).reshape(2, rounds, per_round)
        seen = set(self._keys)
        chosen: list[np.ndarray] = []
        for r in range(rounds):
            n_remaining = target - len(chosen)
            m = math.ceil(n_remaining / 2)
            # the round's offspring in pymoo's order: first children of its matings, then second children
            kept = 0
            for c in range(2):
                for j in range(m):
                    if kept == n_remaining:
                        break
                    key = keys[c, r, j]
                    if key not in seen:
                        seen.add(key)
                        chosen.append(off[c, r, j])
                        kept += 1
            if len(chosen) >= target:
                break
        self.dedup_seconds += time.perf_counter() - t0
        if not chosen:
            return np.zeros((0, self.space.n_var), dtype=np.int64)
        return np.array(chosen, dtype=np.int64)


@algorithm_registry.register("nsga2")
def nsga2(space, n_obj, budget, seed, population: int = 50, crossover: float = 0.9, mutation: float = 0.02,
          mating_retries: int = MATING_RETRIES, count_revisits: bool = True):
    """Vectorized NSGA-II (see the module docstring); 1-2 objectives, 3-4 with a warning."""
    check_objectives("nsga2", n_obj, warn_above=2)
    return NSGA2Searcher(space, n_obj, budget, seed, population=population, crossover=crossover,
                         mutation=mutation, mating_retries=mating_retries, count_revisits=count_revisits)
