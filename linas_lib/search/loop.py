"""In-process searches: LINAS (Algorithm 1 of the paper) and validation-only.

`measure(iteration, X, predictions)` returns measurement-table rows for the
encodings X; the real one runs the super-network, tests pass a cheap function.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from linas_lib.algos import algorithm_params, build_searcher
from linas_lib.measurements import concat, objective_matrix
from linas_lib.runs import RunStore, population_doc, predictions_by_id
from linas_lib.search import core

MeasureFn = Callable[[int, np.ndarray, "dict[str, dict[str, float]] | None"], pd.DataFrame]


def run_linas(config, space, measure: MeasureFn, run: RunStore | None = None, progress: bool = True) -> dict[str, Any]:
    objectives = config.resolved_objectives()
    frame = concat()
    if run:
        run.save_config(config)
    bar = tqdm(range(config.search.iterations), desc=f"LINAS {config.name}", disable=not progress, unit="iter")
    for iteration in bar:
        if iteration == 0:
            X, F = core.initial_population(space, config.search.population_at(0), config.seed), None
        else:
            X, F = core.next_population(config, space, frame, predictors, iteration)
        population = population_doc(space, iteration, X, F, objectives)
        if run:
            run.save_population(population)
        frame = concat(frame, measure(iteration, X, predictions_by_id(population)))
        predictors = core.fit_predictors(config, space, frame, iteration + 1)
        if run:
            run.save_measurements(frame)  # after every iteration: a crash loses at most one population
            run.save_predictors(iteration, predictors)
        hv = core.hypervolume_history(config, frame)
        bar.set_postfix(evaluations=len(frame), hv=f"{hv[-1]:.4f}" if hv else "n/a")
        if progress:
            tqdm.write(f"iteration {iteration}: {len(frame)} measured, hypervolume {hv[-1]:.4f}")
        go_on, reason = core.should_continue(config, frame, iteration)
        if not go_on:
            if progress and reason.startswith("early"):
                tqdm.write(reason)
            break
    bar.close()
    summary = core.summarize(config, frame)
    if run:
        run.save_results(summary)
    return summary


def run_validation(config, space, measure: MeasureFn, run: RunStore | None = None, progress: bool = True) -> dict[str, Any]:
    """Every candidate the algorithm asks for is measured for real."""
    objectives = config.resolved_objectives()
    search = config.search
    accepted = algorithm_params(search.algorithm)
    params = {k: v for k, v in {"population": search.population}.items() if k in accepted}
    if "count_revisits" in accepted:
        # real measurements: only networks never measured count against the budget
        params["count_revisits"] = False
    params.update(search.algorithm_params)
    searcher = build_searcher(search.algorithm, space, len(objectives), search.evaluations, config.seed, **params)
    frame, iteration = concat(), 0
    if run:
        run.save_config(config)
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
    summary = core.summarize(config, frame)
    if run:
        run.save_results(summary)
    return summary


def _told_values(new: pd.DataFrame, objectives, space, X: np.ndarray) -> np.ndarray:
    """Measured values in X's order; a failed measurement is told as the worst seen."""
    row_of = {key: i for i, key in enumerate(space.keys(X))}
    F = np.full((len(X), len(objectives)), np.nan)
    ok = new[new["status"] == "ok"]
    if len(ok):
        F[[row_of[k] for k in ok["subnet_id"]]] = objective_matrix(ok, objectives)
    worst = np.nanmax(F, axis=0) if np.isfinite(F).any() else np.zeros(len(objectives))
    return np.where(np.isnan(F), worst, F)
