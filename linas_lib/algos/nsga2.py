"""NSGA-II on plain numpy arrays: the default algorithm ("nsga2"), inner loop and validation.

The same algorithm as pymoo's NSGA2 with the integer operators of
`linas_lib.algos.pymoo_algos` (registered there as "nsga2_pymoo"), without pymoo's
per-individual Population objects, whose get/set calls dominated a 20,000-evaluation
inner search. Per generation:

1. binary tournament selection over concatenated random permutations (pymoo's
   TournamentSelection, pressure 2): lower non-domination rank wins, then larger
   crowding distance, then a fair coin;
2. SBX (pymoo's `cross_sbx`, eta 15, per-variable probability 0.5) applied to a
   mating with probability `crossover`, otherwise the parents are copied; then
   polynomial mutation (pymoo's `mut_pm`, eta 20) of each gene with probability
   `mutation`; each step followed by rounding repair to the option indices;
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
from pymoo.operators.crossover.sbx import cross_sbx
from pymoo.operators.mutation.pm import mut_pm
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
    sizes = np.bincount(front_of)
    for m in range(n_obj):
        order = np.lexsort((F[:, m], front_of))  # by front, then value; stable like mergesort
        f, g = F[order, m], front_of[order]
        first = np.r_[True, g[1:] != g[:-1]]
        last = np.r_[g[1:] != g[:-1], True]
        norm = (f[last] - f[first])[np.cumsum(first) - 1]  # per front: max - min
        prev = np.where(first, np.inf, f - np.r_[f[:1], f[:-1]])
        nxt = np.where(last, np.inf, np.r_[f[1:], f[-1:]] - f)
        with np.errstate(divide="ignore", invalid="ignore"):
            contrib = np.where(norm > 0, (prev + nxt) / norm, 0.0)
        cd[order] += contrib
    cd /= n_obj
    cd[sizes[front_of] <= 2] = np.inf
    return cd


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

    def _tournament(self, n_select: int) -> np.ndarray:
        """(n_select, 2) parent indices by binary tournaments on rank, then crowding, then a coin."""
        n = len(self.X)
        n_random = n_select * 2 * 2
        perms = [self.rng.permutation(n) for _ in range(math.ceil(n_random / n))]
        P = np.concatenate(perms)[:n_random].reshape(-1, 2)
        a, b = P[:, 0], P[:, 1]
        ra, rb = self.rank[a], self.rank[b]
        ca, cb = self.crowding[a], self.crowding[b]
        coin = self.rng.random(len(P)) < 0.5
        winner = np.where(ra < rb, a, np.where(rb < ra, b, np.where(ca > cb, a, np.where(cb > ca, b,
                          np.where(coin, a, b)))))
        return winner.reshape(n_select, 2)

    def _variation(self, parents: np.ndarray) -> np.ndarray:
        """SBX + rounding, polynomial mutation + rounding; offspring as canonical int64 rows."""
        n_matings = len(parents)
        X = np.swapaxes(self.X[parents], 0, 1).astype(float)  # (2, n_matings, n_var)
        Q = X.copy()
        cross = self.rng.random(n_matings) < self.crossover
        if cross.any():
            col = np.ones((n_matings, 1))
            C = cross_sbx(X, self.xl, self.xu, self.eta_c * col, 0.5 * col, 0.5 * col, random_state=self.rng)
            Q[:, cross] = np.rint(C[:, cross])
        off = Q.reshape(-1, self.space.n_var)
        if self.mutation > 0:
            n = len(off)
            off = mut_pm(off, self.xl, self.xu, np.full(n, self.eta_m), np.full(n, self.mutation),
                         at_least_once=False, random_state=self.rng)
        return round_to_space(self.space, off)

    def _mate(self) -> np.ndarray:
        """`population` offspring that are new to the population and to each other (or fewer)."""
        target = self.population
        chosen: list[np.ndarray] = []
        seen = set(self._keys)
        n_have = 0
        for _ in range(max(1, self.mating_retries)):
            n_remaining = target - n_have
            off = self._variation(self._tournament(math.ceil(n_remaining / 2)))
            t0 = time.perf_counter()
            keep = []
            for i, key in enumerate(row_keys(off)):
                if key not in seen:
                    seen.add(key)
                    keep.append(i)
            self.dedup_seconds += time.perf_counter() - t0
            off = off[keep[:n_remaining]]
            chosen.append(off)
            n_have += len(off)
            if n_have >= target:
                break
        return np.vstack(chosen)


@algorithm_registry.register("nsga2")
def nsga2(space, n_obj, budget, seed, population: int = 50, crossover: float = 0.9, mutation: float = 0.02,
          mating_retries: int = MATING_RETRIES, count_revisits: bool = True):
    """Vectorized NSGA-II (see the module docstring); 1-2 objectives, 3-4 with a warning."""
    check_objectives("nsga2", n_obj, warn_above=2)
    return NSGA2Searcher(space, n_obj, budget, seed, population=population, crossover=crossover,
                         mutation=mutation, mating_retries=mating_retries, count_revisits=count_revisits)
