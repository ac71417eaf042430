"""One search run as an ask/tell object: the LINAS engine both paths drive.

`SearchRun` holds a run's whole state: the config, the measurement table and the next
iteration (plus, for a recurring run, the previous run's table and the drift of its
front). `ask()` gives the next population to measure and `tell(measurements)` records
it and decides whether the search goes on. Measuring is the caller's: the in-process
loop (`linas_lib.search.loop`) measures in this process, the KFP pipeline in pods.

    run = SearchRun.start(config, space, store)      # or SearchRun.resume(...)
    while not run.finished:
        population = run.ask()
        run.tell(measure(population))
    summary = run.finish()

Every step is deterministic given the config and the measured values, so the state
is just the table: a KFP stage rebuilds the run from the table it is handed
(`SearchRun.restore`), calls `ask()` or `tell()`, and hands the table on; a killed
in-process run resumes from its store's table. Predictors are refitted from the
table rather than stored as pickles.

Who proposes the next population is the mode's: LINAS (and one-shot) search the
predictors trained on the table; validation-only search asks its algorithm (pymoo,
optuna...), whose in-memory state a restored run rebuilds by replaying the table.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from linas_lib.api.documents import Population, PreviousFronts
from linas_lib.measurements import IterationFailedError, check_iteration_measured, concat, objective_matrix
from linas_lib.runs import MEASUREMENTS, RunStateError, RunStore
from linas_lib.search import core, recurring

log = logging.getLogger("linas.search")


def config_differences(saved: dict, current: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """Dotted keys whose values differ between the config a run was started with and this
    one, as 'key: old -> new'. A setting the saved config lacks (it predates the field)
    counts only when this one is not its default."""
    if defaults is None:
        from linas_lib.config import LinasConfig

        defaults = json.loads(LinasConfig().to_json())
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.", default if isinstance(default, dict) else {})
        elif key not in saved and key in (defaults or {}) and b == default:
            continue
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def without_failed_last_iteration(frame: pd.DataFrame) -> pd.DataFrame:
    """A run stopped because every measurement of its last iteration failed resumes by
    measuring that iteration again (failures are not cached: they are attempted anew)."""
    if len(frame):
        last = frame[frame["iteration"] == frame["iteration"].max()]
        if not (last["status"] == "ok").any():
            return frame[frame["iteration"] < last["iteration"].iloc[0]].reset_index(drop=True)
    return frame


class _PredictorProposer:
    """LINAS and one-shot: the initial population, then the best unmeasured networks of
    the inner search on predictors fitted to every measurement so far."""

    def __init__(self, run: "SearchRun"):
        self.run = run
        self.predictors: dict[str, Any] | None = None  # fitted after the last told iteration
        self.fitted_for: int | None = None

    def propose(self, iteration: int, fronts: PreviousFronts) -> tuple[np.ndarray, np.ndarray | None]:
        run = self.run
        if iteration == 0:
            if fronts:
                return recurring.warm_start_population(run.config, run.space, fronts), None
            return core.initial_population(run.space, run.config.search.population_at(0), run.config.seed), None
        return core.next_population(run.config, run.space, run.frame, self.fitted(iteration), iteration)

    def fitted(self, iteration: int) -> dict[str, Any]:
        if self.fitted_for != iteration:  # a restored run: refit (deterministic, so the same models)
            self.predictors = core.fit_predictors(self.run.config, self.run.space, self.run.frame, iteration)
            self.fitted_for = iteration
        return self.predictors

    def told(self, population: Population, new: pd.DataFrame) -> tuple[bool, str]:
        run = self.run
        predictors = self.fitted(population.iteration + 1)
        if run.store:
            run.store.save_predictors(population.iteration, predictors)
        return core.should_continue(run.config, run.frame, population.iteration)

    def replay(self) -> None:
        pass  # the table is the whole state


class _SearcherProposer:
    """Validation-only search: the algorithm asks, every candidate is measured for real."""

    def __init__(self, run: "SearchRun"):
        from linas_lib.algos import algorithm_params, build_searcher

        self.run = run
        search = run.config.search
        accepted = algorithm_params(search.algorithm)
        params = {k: v for k, v in {"population": search.fixed_population}.items() if k in accepted}
        if "count_revisits" in accepted:
            params["count_revisits"] = False  # real measurements: only new networks count against the budget
        params.update(search.algorithm_params)
        self.searcher = build_searcher(search.algorithm, run.space, len(run.objectives), search.evaluations,
                                       run.config.seed, **params)

    def _remaining(self) -> int:
        return self.run.config.search.evaluations - len(self.run.frame)

    def propose(self, iteration: int, fronts: PreviousFronts) -> tuple[np.ndarray, None]:
        return self.searcher.ask()[: self._remaining()], None

    def _tell_searcher(self, X: np.ndarray, new: pd.DataFrame) -> None:
        self.searcher.tell(X, told_values(new, self.run.objectives, self.run.space, X))

    def told(self, population: Population, new: pd.DataFrame) -> tuple[bool, str]:
        self._tell_searcher(population.encodings, new)
        if self._remaining() <= 0:
            return False, "evaluation budget spent"
        if not self.searcher.has_next():
            return False, f"{self.run.config.search.algorithm} finished"
        return True, ""

    def replay(self) -> None:
        """Rebuild the algorithm's in-memory state by telling it the table, iteration by
        iteration (it asks for the same networks: seeded). A table that departs from what
        it asks keeps only the agreeing iterations; the rest come back from the cache."""
        run, frame = self.run, self.run.frame
        for i in sorted(frame["iteration"].unique()) if len(frame) else []:
            rows = frame[frame["iteration"] == i]
            X = self.searcher.ask()[: run.config.search.evaluations - int((frame["iteration"] < i).sum())]
            if set(run.space.keys(X)) != set(rows["subnet_id"]):
                log.warning("%s: the table departs from %s's own choices at iteration %d; continuing from there",
                            run.config.name, run.config.search.algorithm, i)
                run.frame = frame[frame["iteration"] < i].reset_index(drop=True)
                return
            self._tell_searcher(X, rows)


def told_values(new: pd.DataFrame, objectives, space, X: np.ndarray) -> np.ndarray:
    """Measured values in X's order; a failed measurement is told as the worst seen."""
    row_of = {key: i for i, key in enumerate(space.keys(X))}
    F = np.full((len(X), len(objectives)), np.nan)
    ok = new[(new["status"] == "ok") & new["subnet_id"].isin(row_of)]
    if len(ok):
        F[[row_of[k] for k in ok["subnet_id"]]] = objective_matrix(ok, objectives)
    worst = np.nanmax(F, axis=0) if np.isfinite(F).any() else np.zeros(len(objectives))
    return np.where(np.isnan(F), worst, F)


class SearchRun:
    """The state of one search and the two calls that advance it."""

    def __init__(self, config, space, frame: pd.DataFrame | None = None, *, store: RunStore | None = None,
                 previous: pd.DataFrame | None = None, drift: dict[str, Any] | None = None,
                 hardware: dict[str, Any] | None = None):
        self.config, self.space, self.store = config, space, store
        self.objectives = config.resolved_objectives()
        self.frame = concat() if frame is None else frame
        self.previous = previous  # a recurring run's predecessor's table (warm start only)
        self.drift: dict[str, Any] = dict(drift or {})
        # target -> cache scope -> recorded fingerprint: what the report says about the hardware
        self.hardware: dict[str, dict[str, Any]] = {t: dict(s) for t, s in (hardware or {}).items()}
        self.finished, self.stop_reason = False, ""
        self._asked: Population | None = None
        validation = config.search.mode == "validation"
        self._proposer = _SearcherProposer(self) if validation else _PredictorProposer(self)
        self._proposer.replay()  # may cut the table where it departs from the algorithm
        self.iteration = int(self.frame["iteration"].max()) + 1 if len(self.frame) else 0
        if self.iteration and not validation:
            self.finished = not core.should_continue(config, self.frame, self.iteration - 1)[0]
        elif validation and len(self.frame) >= config.search.evaluations:
            self.finished = True

    # ---- construction ----------------------------------------------------------
    @classmethod
    def start(cls, config, space, store: RunStore | None = None) -> "SearchRun":
        """A fresh run (at `store`: a finished run there is archived first, and a recurring
        run with warm start begins from its front)."""
        if store is None:
            return cls(config, space)
        store.start_fresh(config)
        return cls(config, space, store=store, previous=cls._previous(config, store))

    @classmethod
    def resume(cls, config, space, store: RunStore | None) -> "SearchRun":
        """The run at `store`, continued where its table ends; refused if the config changed."""
        if store is None or not store.exists():
            raise RunStateError(f"cannot resume: {store.uri if store else 'no run location'} holds no run "
                                "(no config.json); start it without --resume")
        differences = config_differences(store.load_config_dict(), json.loads(config.to_json()))
        if differences:
            raise RunStateError(f"cannot resume {store.uri}: the config differs from the one it was started with: "
                                + "; ".join(differences[:5]))
        frame = without_failed_last_iteration(store.load_measurements(recover=True))
        return cls(config, space, frame, store=store, previous=cls._previous(config, store),
                   drift=store.load_drift(), hardware=store.load_hardware())

    @classmethod
    def restore(cls, config, space, frame: pd.DataFrame | None, store: RunStore | None = None) -> "SearchRun":
        """The run whose table is `frame` (a KFP stage's input artifact): the same state
        the in-process run had after telling those measurements."""
        previous = cls._previous(config, store) if store else None
        return cls(config, space, frame, store=store, previous=previous,
                   drift=store.load_drift() if store else None, hardware=store.load_hardware() if store else None)

    @staticmethod
    def _previous(config, store: RunStore) -> pd.DataFrame | None:
        # validation-only search starts where its algorithm does: no warm start, no comparison
        if not config.recurring.warm_start or config.search.mode == "validation":
            return None
        return store.load_previous()

    # ---- ask / tell ------------------------------------------------------------
    def ask(self) -> Population:
        """The next population to measure (the same one on every call until told); an empty
        one when the algorithm has nothing left to ask, which finishes the run."""
        if self.finished:
            raise RunStateError(f"{self.config.name}: the search has finished ({self.stop_reason or 'done'})")
        if self._asked is None:
            fronts = {}
            if self.iteration == 0 and self.previous is not None and not self.drift:
                fronts = recurring.previous_fronts(self.config, self.previous)
            X, F = self._proposer.propose(self.iteration, fronts)
            self._asked = Population.of(self.space, self.iteration, X, F, self.objectives, fronts)
            if not len(self._asked):
                self.finished, self.stop_reason = True, f"{self.config.search.algorithm} has nothing left to ask"
        return self._asked

    def tell(self, measurements: pd.DataFrame, population: Population | None = None,
             drift: dict[str, Any] | None = None) -> bool:
        """Record one iteration's measurements (and a recurring run's drift); True to go on.

        The hardware fingerprints `combine()` attaches to them (`attrs["hardware"]`) are kept
        per target and cache scope, for the summary (a frame without them adds none).

        The table is saved before anything can raise, so failed rows and their reasons
        are kept; an iteration whose every measurement failed stops the search, saying why.
        """
        population = population or self._asked
        if population is None:
            raise RunStateError("tell() before ask(): which population were these measurements of?")
        if population.iteration != self.iteration:
            raise RunStateError(f"measurements of iteration {population.iteration} told to a run at iteration "
                                f"{self.iteration}")
        self.frame = concat(self.frame, measurements)
        if drift:
            self.drift.update(drift)
        hardware = {t: {scope: fp for scope, fp in scopes.items() if scope not in self.hardware.get(t, {})}
                    for t, scopes in measurements.attrs.get("hardware", {}).items()}  # from combine()
        for target, scopes in hardware.items():
            self.hardware.setdefault(target, {}).update(scopes)
        saved = MEASUREMENTS
        if self.store:
            self.store.save_population(population.to_dict())
            saved = self.store.save_measurements(self.frame)
            if drift:
                self.store.save_drift(self.drift)
            if any(hardware.values()):
                self.store.save_hardware(self.hardware)
        if self.config.search.mode != "validation":  # there, a failure is told as the worst value seen
            where = f"{self.store.uri}/{saved}" if self.store else "the measurement table"
            try:
                check_iteration_measured(self.frame, population.iteration, where)
            except IterationFailedError as exc:
                self.finished, self.stop_reason = True, str(exc)
                raise
        go_on, self.stop_reason = self._proposer.told(population, measurements)
        self.iteration, self._asked = population.iteration + 1, None
        self.finished = not go_on
        return go_on

    @property
    def predictors(self) -> dict[str, Any] | None:
        """LINAS: the predictors fitted to the table (what the next ask() searches)."""
        if not isinstance(self._proposer, _PredictorProposer) or not self.iteration:
            return None
        return self._proposer.fitted(self.iteration)

    # ---- results ---------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return core.summarize(self.config, self.frame, previous=self.previous, drift=self.drift,
                              fingerprints=self.hardware)

    def finish(self) -> dict[str, Any]:
        """The run's summary, saved (summary.json marks a finished run)."""
        summary = self.summary()
        if self.store:  # the saved summary carries its finished_at, which the report shows
            self.store.compact_measurements(self.frame)  # a finished run's table is one file
            summary = self.store.save_results(summary)
        return summary

    def state(self) -> dict[str, Any]:
        """What the table does not say, as JSON (the table is the store's or the artifact's)."""
        return {"name": self.config.name, "iteration": self.iteration, "finished": self.finished,
                "stop_reason": self.stop_reason, "drift": self.drift, "evaluations": int(len(self.frame))}
