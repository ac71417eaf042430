"""Multi-objective TPE (MOTPE) through optuna's ask/tell interface.

One ask() is a batch of `population` trials (optuna's TPESampler with its default
constant liar, so a batch asked before any tell spreads out instead of repeating
one proposal). Genes are suggested define-by-run with `trial.suggest_int(name, 0,
cardinality - 1)`, and only while they are active: a block hidden by its stage's
depth is never suggested, so every trial is already a canonical encoding and TPE
models only genes that exist.

A proposal whose network the searcher already knows (told earlier, or asked
earlier in the same batch) is never handed out again: a known one is told its known
value at once, one pending in the batch is told the same value as its twin when the
batch is told, and TPE is asked again, at most `max_retries` times per slot; after
that the slot is filled with a uniformly random unseen network, enqueued as a trial
so TPE learns from it too. The budget counts distinct networks handed out.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from linas_lib.algos import algorithm_registry
from linas_lib.algos.base import check_objectives, row_keys

DEFAULT_PRIOR_WEIGHT = 1.0  # optuna's default; passing it explicitly is deprecated since optuna 4.9


class MOTPESearcher:
    def __init__(self, space, n_obj: int, budget: int, seed: int, population: int = 50,
                 prior_weight: float = DEFAULT_PRIOR_WEIGHT, n_ei_candidates: int = 24, n_startup_trials: int = 10,
                 max_retries: int = 20):
        import optuna
        from optuna.samplers import TPESampler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if population < 1:
            raise ValueError(f"motpe: population must be at least 1, got {population}")
        self.space, self.n_obj, self.budget = space, int(n_obj), int(budget)
        self.population, self.max_retries = int(population), int(max_retries)
        self._rng = np.random.default_rng(seed)
        kwargs = dict(n_ei_candidates=n_ei_candidates, n_startup_trials=n_startup_trials, seed=seed)
        if prior_weight != DEFAULT_PRIOR_WEIGHT:
            kwargs["prior_weight"] = prior_weight
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning / FutureWarning chatter
            self.sampler = TPESampler(**kwargs)
        self.study = optuna.create_study(directions=["minimize"] * self.n_obj, sampler=self.sampler)
        self._known: dict[bytes, np.ndarray] = {}
        self._pending: dict[bytes, object] | None = None
        self._twins: list[tuple[object, bytes]] = []
        self.spent = 0
        self.revisits = 0
        self.dedup_seconds = 0.0
        self._done = False

    # ---- proposals ----------------------------------------------------------------
    def _suggest(self, trial) -> np.ndarray:
        x = np.zeros(self.space.n_var, dtype=np.int64)
        cards = self.space.cardinalities
        for i, var in enumerate(self.space.variables):
            if var.active_when is not None and not self.space.active_mask(x)[0, i]:
                continue  # hidden by a parent gene that is already fixed (parents come first)
            x[i] = trial.suggest_int(var.name, 0, int(cards[i]) - 1)
        return x

    def _random_unseen(self, exclude: set[bytes]) -> np.ndarray | None:
        for _ in range(50):
            X = self.space.canonicalize(self._rng.integers(0, self.space.cardinalities, size=(64, self.space.n_var)))
            for row, key in zip(X, row_keys(X)):
                if key not in exclude:
                    return row
        return None

    def ask(self) -> np.ndarray:
        if self._pending is not None:
            raise RuntimeError("ask() called again before tell() answered the previous batch")
        n = min(self.population, self.budget - self.spent) if not self._done else 0
        batch: dict[bytes, object] = {}
        rows: list[np.ndarray] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(n):
                row = self._fill_slot(batch)
                if row is None:
                    self._done = True  # the space holds nothing unseen any more
                    break
                rows.append(row)
        self._pending = batch
        self.spent += len(rows)
        return np.array(rows, dtype=np.int64).reshape(len(rows), self.space.n_var)

    def _fill_slot(self, batch: dict[bytes, object]) -> np.ndarray | None:
        for _ in range(self.max_retries):
            trial = self.study.ask()
            x = self._suggest(trial)
            t0 = time.perf_counter()
            key = row_keys(x[None])[0]
            known, twin = key in self._known, key in batch
            self.dedup_seconds += time.perf_counter() - t0
            if not known and not twin:
                batch[key] = trial
                return x
            self.revisits += 1
            if known:
                self.study.tell(trial, self._known[key].tolist())
            else:
                self._twins.append((trial, key))
        t0 = time.perf_counter()
        x = self._random_unseen(set(self._known) | set(batch))
        self.dedup_seconds += time.perf_counter() - t0
        if x is None:
            return None
        self.study.enqueue_trial({v.name: int(g) for v, g, a in
                                  zip(self.space.variables, x, self.space.active_mask(x)[0]) if a})
        trial = self.study.ask()
        got = self._suggest(trial)
        batch[row_keys(got[None])[0]] = trial
        return got

    def tell(self, encodings: np.ndarray, objectives: np.ndarray) -> None:
        if self._pending is None:
            raise RuntimeError("tell() must answer the batch returned by the last ask()")
        pending, self._pending = self._pending, None
        F = np.asarray(objectives, dtype=float)
        told = self.space.canonicalize(encodings) if len(encodings) else np.zeros((0, self.space.n_var), np.int64)
        if F.shape != (len(told), self.n_obj):
            raise ValueError(f"tell(): expected objectives of shape ({len(told)}, {self.n_obj}), got {F.shape}")
        for key, f in zip(row_keys(told), F):
            self._known.setdefault(key, f)
        from optuna.trial import TrialState

        for key, trial in pending.items():
            if key in self._known:
                self.study.tell(trial, self._known[key].tolist())
            else:  # not evaluated: the caller's budget ran out
                self.study.tell(trial, state=TrialState.FAIL)
                self._done = True
        for trial, key in self._twins:
            if key in self._known:
                self.study.tell(trial, self._known[key].tolist())
            else:
                self.study.tell(trial, state=TrialState.FAIL)
        self._twins = []

    def has_next(self) -> bool:
        return not self._done and self.spent < self.budget


@algorithm_registry.register("motpe")
def motpe(space, n_obj, budget, seed, population: int = 50, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
          n_ei_candidates: int = 24, n_startup_trials: int = 10, max_retries: int = 20):
    """Optuna MOTPE (TPESampler: prior weight 1.0, 24 EI candidates); 1-5 objectives."""
    check_objectives("motpe", n_obj)
    return MOTPESearcher(space, n_obj, budget, seed, population=population, prior_weight=prior_weight,
                         n_ei_candidates=n_ei_candidates, n_startup_trials=n_startup_trials, max_retries=max_retries)
