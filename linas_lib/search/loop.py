"""In-process searches: LINAS (Algorithm 1 of the paper) and validation-only.

`measure(iteration, X, predictions)` returns measurement-table rows for the
encodings X; the real one runs the super-network, tests pass a cheap function.
A measure that has `check_drift(previous_fronts)` takes part in recurring runs.

Every step is deterministic given the seed and the measured values, and every
measurement is persisted as it is taken (the evaluation cache) and every finished
iteration in the run's table. So a run killed at any point resumes by recomputing
its state from the table and continuing: the measurements of the interrupted
iteration come back from the cache, nothing is measured twice, and the result is
the one an uninterrupted run would have given.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from linas_lib.algos import algorithm_params, build_searcher
from linas_lib.measurements import check_iteration_measured, concat, objective_matrix
from linas_lib.runs import MEASUREMENTS, RunStateError, RunStore, population_doc, predictions_by_id
from linas_lib.search import core, recurring

MeasureFn = Callable[[int, np.ndarray, "dict[str, dict[str, float]] | None"], pd.DataFrame]


@dataclass
class _Start:
    frame: pd.DataFrame
    iteration: int = 0
    initial: np.ndarray | None = None  # a recurring run's warm-start population
    previous: pd.DataFrame | None = None
    drift: dict[str, Any] = field(default_factory=dict)


def _config_differences(saved: dict, current: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """What differs between the config a run was started with and this one. A setting the
    saved config lacks (it predates the field) counts only when this one is not its default."""
    if defaults is None:
        import json

        from linas_lib.config import LinasConfig

        defaults = json.loads(LinasConfig().to_json())
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_differences(a, b, f"{prefix}{key}.", default if isinstance(default, dict) else {})
        elif key not in saved and key in (defaults or {}) and b == default:
            continue
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _begin(config, space, measure, run: RunStore | None, resume: bool) -> _Start:
    """A resumed run's state from its store; a fresh run's warm start from the previous run."""
    if resume:
        if run is None or not run.exists():
            raise RunStateError(f"cannot resume: {run.uri if run else 'no run location'} holds no run "
                                "(no config.json); start it without --resume")
        import json

        differences = _config_differences(run.load_config_dict(), json.loads(config.to_json()))
        if differences:
            raise RunStateError(f"cannot resume {run.uri}: the config differs from the one it was started with: "
                                + "; ".join(differences[:5]))
        frame = _without_failed_last_iteration(run.load_measurements(recover=True))
        previous = run.load_previous()
        start = int(frame["iteration"].max()) + 1 if len(frame) else 0
        state = _Start(frame, start, previous=previous[1] if previous else None, drift=run.load_drift() or {})
        if start == 0 and previous and config.recurring.warm_start:
            state.initial = recurring.warm_start_population(config, space, recurring.previous_fronts(config, previous[1]))
        return state
    state = _Start(concat())
    if run is None:
        return state
    run.start_fresh(config)
    previous = run.load_previous()
    if previous and config.recurring.warm_start:
        state.previous = previous[1]
        fronts = recurring.previous_fronts(config, previous[1])
        if hasattr(measure, "check_drift"):
            state.drift = measure.check_drift(fronts)
            run.save_drift(state.drift)
        state.initial = recurring.warm_start_population(config, space, fronts)
    return state


def _without_failed_last_iteration(frame: pd.DataFrame) -> pd.DataFrame:
    """A run stopped because every measurement of its last iteration failed resumes by
    measuring that iteration again (failures are not cached: they are attempted anew)."""
    if len(frame):
        last = frame[frame["iteration"] == frame["iteration"].max()]
        if not (last["status"] == "ok").any():
            return frame[frame["iteration"] < last["iteration"].iloc[0]].reset_index(drop=True)
    return frame


def _finish(config, frame: pd.DataFrame, state: _Start, run: RunStore | None) -> dict[str, Any]:
    summary = core.summarize(config, frame, previous=state.previous, drift=state.drift)
    if run:
        run.save_results(summary)
    return summary


def run_linas(
    config, space, measure: MeasureFn, run: RunStore | None = None, progress: bool = True, resume: bool = False
) -> dict[str, Any]:
    objectives = config.resolved_objectives()
    state = _begin(config, space, measure, run, resume)
    frame = state.frame
    go_on = state.iteration == 0 or core.should_continue(config, frame, state.iteration - 1)[0]
    predictors = core.fit_predictors(config, space, frame, state.iteration) if state.iteration and go_on else None
    bar = tqdm(range(state.iteration, config.search.iterations if go_on else state.iteration),
               desc=f"LINAS {config.name}", disable=not progress, unit="iter")
    for iteration in bar:
        if iteration == 0:
            X = state.initial if state.initial is not None else \
                core.initial_population(space, config.search.population_at(0), config.seed)
            F = None
        else:
            X, F = core.next_population(config, space, frame, predictors, iteration)
        population = population_doc(space, iteration, X, F, objectives)
        if run:
            run.save_population(population)
        frame = concat(frame, measure(iteration, X, predictions_by_id(population)))
        _save_then_check(frame, iteration, run)
        predictors = core.fit_predictors(config, space, frame, iteration + 1)
        if run:
            run.save_predictors(iteration, predictors)
        hv = core.hypervolume_history(config, frame)
        bar.set_postfix(evaluations=len(frame), hv=f"{hv[-1]:.4f}" if hv else "n/a")
        if progress:
            tqdm.write(f"iteration {iteration}: {len(frame)} measured, hypervolume {hv[-1]:.4f}" if hv else
                       f"iteration {iteration}: {len(frame)} measured, none successfully")
        go_on, reason = core.should_continue(config, frame, iteration)
        if not go_on:
            if progress and reason.startswith("early"):
                tqdm.write(reason)
            break
    bar.close()
    return _finish(config, frame, state, run)


def _save_then_check(frame: pd.DataFrame, iteration: int, run: RunStore | None) -> None:
    """The table is saved before anything can raise, so failed rows and their reasons are kept;
    an iteration whose every measurement failed stops the search, saying why."""
    if run:
        run.save_measurements(frame)  # after every iteration; single measurements live in the cache
    check_iteration_measured(frame, iteration, f"{run.uri}/{MEASUREMENTS}" if run else "the measurement table")


def run_validation(
    config, space, measure: MeasureFn, run: RunStore | None = None, progress: bool = True, resume: bool = False
) -> dict[str, Any]:
    """Every candidate the algorithm asks for is measured for real.

    The algorithm's state lives in memory, so a resumed run replays it from the start:
    every measurement it already took comes back from the evaluation cache.
    """
    objectives = config.resolved_objectives()
    search = config.search
    if resume:
        _begin(config, space, measure, run, resume=True)  # the same checks as LINAS
    accepted = algorithm_params(search.algorithm)
    params = {k: v for k, v in {"population": search.fixed_population}.items() if k in accepted}
    if "count_revisits" in accepted:
        # real measurements: only networks never measured count against the budget
        params["count_revisits"] = False
    params.update(search.algorithm_params)
    searcher = build_searcher(search.algorithm, space, len(objectives), search.evaluations, config.seed, **params)
    frame, iteration = concat(), 0
    if run and not resume:
        run.start_fresh(config)
    bar = tqdm(total=search.evaluations, desc=f"{search.algorithm} {config.name}", disable=not progress, unit="eval")
    while searcher.has_next() and len(frame) < search.evaluations:
        X = searcher.ask()[: search.evaluations - len(frame)]
        if len(X) == 0:
            break
        if run:
            run.save_population(population_doc(space, iteration, X, None, objectives))
        new = measure(iteration, X, None)
        frame = concat(frame, new)
        F = _told_values(new, objectives, space, X)
        searcher.tell(X, F)
        if run:
            run.save_measurements(frame)
        bar.update(len(X))
        iteration += 1
    bar.close()
    return _finish(config, frame, _Start(frame), run)


def _told_values(new: pd.DataFrame, objectives, space, X: np.ndarray) -> np.ndarray:
    """Measured values in X's order; a failed measurement is told as the worst seen."""
    row_of = {key: i for i, key in enumerate(space.keys(X))}
    F = np.full((len(X), len(objectives)), np.nan)
    ok = new[new["status"] == "ok"]
    if len(ok):
        F[[row_of[k] for k in ok["subnet_id"]]] = objective_matrix(ok, objectives)
    worst = np.nanmax(F, axis=0) if np.isfinite(F).any() else np.zeros(len(objectives))
    return np.where(np.isnan(F), worst, F)
