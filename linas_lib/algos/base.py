"""Integer-aware pieces every searcher shares: keys, objective checks, the batch archive.

`BatchSearcher` holds the ask/tell bookkeeping once. A subclass proposes canonical
integer encodings (`_propose`) and accepts their objective values (`_accept`); the
base class

* never hands the caller a network the searcher has already been told about, nor
  the same network twice in one batch: such proposals are answered from the
  searcher's archive of told values (a repeated prediction or a re-measurement
  would return the same number, so the algorithm's trajectory is unchanged);
* keeps the budget: with ``count_revisits=True`` (the default of the evolutionary
  algorithms) every proposal counts, as in pymoo's ``n_eval``, so a 20,000-evaluation
  inner search runs the same number of generations whether or not its offspring
  revisit earlier networks; with ``count_revisits=False`` only networks handed to
  the caller count, so a validation search measures `budget` distinct networks;
* times duplicate handling (`dedup_seconds`) and counts `revisits`, for benchmarks.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from linas_lib.api.objective import MAX_OBJECTIVES

# Rounds in a row whose every proposal was already known before a searcher with
# count_revisits=False gives up: the algorithm has converged onto what it has seen.
MAX_IDLE_ROUNDS = 100


def row_keys(X: np.ndarray) -> list[bytes]:
    """Hashable identity of each row of an int64 matrix (canonical rows: one per network)."""
    X = np.ascontiguousarray(X, dtype=np.int64)
    if X.shape[0] == 0:
        return []
    return X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel().tolist()


def round_to_space(space, X: np.ndarray) -> np.ndarray:
    """Rounding repair: real-valued genes -> canonical int64 option indices, clipped to range."""
    X = np.clip(np.rint(np.asarray(X, dtype=float)), 0, space.upper).astype(np.int64)
    return space.canonicalize_valid(X)


def check_objectives(algorithm: str, n_obj: int, *, min_obj: int = 1, warn_above: int | None = None,
                     why: str = "it decomposes the objective space along reference directions") -> None:
    """Objective-count suitability: errors outside what the algorithm supports, warnings beyond its design."""
    if not 1 <= n_obj <= MAX_OBJECTIVES:
        raise ValueError(f"algorithm {algorithm!r}: {n_obj} objectives; LINAS searches 1 to {MAX_OBJECTIVES}")
    if n_obj < min_obj:
        raise ValueError(
            f"algorithm {algorithm!r} needs at least {min_obj} objectives ({why}), got {n_obj}; "
            "for a single objective use 'nsga2', 'motpe' or 'random'"
        )
    if warn_above is not None and n_obj > warn_above:
        warnings.warn(
            f"algorithm {algorithm!r} is meant for up to {warn_above} objectives (crowding-based survival loses "
            f"selection pressure beyond that); with {n_obj} objectives the LINAS paper uses 'unsga3'",
            UserWarning,
            stacklevel=3,
        )


class BatchSearcher:
    """Ask/tell bookkeeping shared by the searchers; see the module docstring."""

    def __init__(self, space, n_obj: int, budget: int, count_revisits: bool = True,
                 max_idle_rounds: int = MAX_IDLE_ROUNDS):
        if budget < 1:
            raise ValueError(f"budget must be at least 1, got {budget}")
        self.space, self.n_obj, self.budget = space, int(n_obj), int(budget)
        self.count_revisits = bool(count_revisits)
        self.max_idle_rounds = max_idle_rounds
        self.spent = 0  # evaluations counted against the budget
        self.revisits = 0  # proposals answered from the archive
        self.dedup_seconds = 0.0  # time spent detecting duplicates, here and inside the algorithm
        self._index: dict[bytes, int] = {}  # archive: canonical key -> row of _values
        self._values = np.empty((256, self.n_obj))
        self._pending: tuple[np.ndarray, list[bytes], np.ndarray, np.ndarray] | None = None
        self._done = False

    # ---- for subclasses -----------------------------------------------------
    def _propose(self) -> np.ndarray:
        """Next canonical int64 candidates, (n, n_var); empty when the algorithm has nothing more."""
        raise NotImplementedError

    def _accept(self, X: np.ndarray, F: np.ndarray) -> None:
        """Objective values for every row `_propose` returned last, in its order."""
        raise NotImplementedError

    # ---- the Searcher protocol ----------------------------------------------
    def ask(self) -> np.ndarray:
        if self._pending is not None:
            raise RuntimeError("ask() called again before tell() answered the previous batch")
        idle = 0
        while self.has_next():
            X = self._propose()
            if len(X) == 0:
                self._done = True
                break
            t0 = time.perf_counter()
            keys = row_keys(X)
            new, batch = [], set()
            for i, key in enumerate(keys):
                if key not in self._index and key not in batch:
                    batch.add(key)
                    new.append(i)
            self.dedup_seconds += time.perf_counter() - t0
            self.revisits += len(X) - len(new)
            self.spent += len(X) if self.count_revisits else len(new)
            if new:
                new_idx = np.asarray(new, dtype=np.int64)
                out = X[new_idx]
                self._pending = (X, keys, new_idx, out)
                return out
            self._accept(X, self._lookup(keys))
            idle += 1
            if not self.count_revisits and idle >= self.max_idle_rounds:
                self._done = True
        return np.zeros((0, self.space.n_var), dtype=np.int64)

    def tell(self, encodings: np.ndarray, objectives: np.ndarray) -> None:
        if self._pending is None:
            raise RuntimeError("tell() must answer the batch returned by the last ask()")
        X, keys, new_idx, asked = self._pending
        F = np.asarray(objectives, dtype=float)
        if encodings is asked:  # the batch as handed out (unchanged, as the protocol expects)
            told_keys = [keys[i] for i in new_idx]
        else:
            told_keys = row_keys(self.space.canonicalize(encodings))
        if F.shape != (len(told_keys), self.n_obj):
            raise ValueError(f"tell(): expected objectives of shape ({len(told_keys)}, {self.n_obj}), got {F.shape}")
        self._pending = None
        self._store(told_keys, F)
        if any(keys[i] not in self._index for i in new_idx):
            # The caller evaluated only part of the batch, which it does when its own
            # budget runs out: the values are archived, and the search ends here.
            self._done = True
            return
        self._accept(X, self._lookup(keys))

    def has_next(self) -> bool:
        return not self._done and self.spent < self.budget

    # ---- archive --------------------------------------------------------------
    def known(self, X: np.ndarray) -> np.ndarray:
        """Which canonical rows of X the searcher has been told about."""
        return np.array([k in self._index for k in row_keys(X)], dtype=bool)

    def _store(self, keys: list[bytes], F: np.ndarray) -> None:
        n = len(self._index)
        if n + len(keys) > len(self._values):
            grown = np.empty((max(2 * len(self._values), n + len(keys)), self.n_obj))
            grown[:n] = self._values[:n]
            self._values = grown
        for key, f in zip(keys, F):
            if key not in self._index:  # the first value told stays, as the measurement table keeps it
                self._values[len(self._index)] = f
                self._index[key] = len(self._index)

    def _lookup(self, keys: list[bytes]) -> np.ndarray:
        return self._values[[self._index[k] for k in keys]]
