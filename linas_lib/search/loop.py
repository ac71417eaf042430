"""In-process searches: the `SearchRun` engine driven by a measuring function.

`measure(iteration, X, predictions)` returns measurement-table rows for the
encodings X; the real one runs the super-network, tests pass a cheap function.
A measure that has `check_drift(previous_fronts)` takes part in recurring runs.

Every measurement is persisted as it is taken (the evaluation cache) and every
finished iteration in the run's table, and every step is deterministic given the
seed and the measured values. So a run killed at any point resumes from its table:
the measurements of the interrupted iteration come back from the cache, nothing is
measured twice, and the result is the one an uninterrupted run would have given.
The KFP pipeline drives the same engine stage by stage (`linas_lib.stages`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from linas_lib.runs import RunStore
from linas_lib.search import core
from linas_lib.search.run import SearchRun

MeasureFn = Callable[[int, np.ndarray, "dict[str, dict[str, float]] | None"], pd.DataFrame]


def drive(run: SearchRun, measure: MeasureFn, progress: bool = True) -> dict[str, Any]:
    """ask, measure, tell until the run finishes; then its summary."""
    linas = run.config.search.mode != "validation"
    total = run.config.search.iterations if linas else run.config.search.evaluations
    bar = tqdm(total=total, initial=run.iteration if linas else len(run.frame), disable=not progress,
               desc=f"{'LINAS' if linas else run.config.search.algorithm} {run.config.name}",
               unit="iter" if linas else "eval")
    while not run.finished:
        population = run.ask()
        if not len(population):
            break
        drift = None
        if population.previous_fronts and hasattr(measure, "check_drift"):
            drift = measure.check_drift(population.previous_fronts)  # before the cache is trusted
        run.tell(measure(population.iteration, population.encodings, population.predictions()), population, drift)
        if linas:
            hv = core.hypervolume_history(run.config, run.frame)
            bar.set_postfix(evaluations=len(run.frame), hv=f"{hv[-1]:.4f}" if hv else "n/a")
            if progress:
                tqdm.write(f"iteration {population.iteration}: {len(run.frame)} measured, hypervolume {hv[-1]:.4f}"
                           if hv else f"iteration {population.iteration}: {len(run.frame)} measured, none successfully")
                if run.stop_reason.startswith("early"):
                    tqdm.write(run.stop_reason)
        bar.update(1 if linas else len(population))
    if linas:
        bar.n = run.iteration  # an early stop ends the bar where the search ended
    bar.close()
    return run.finish()


def _open(config, space, run: RunStore | None, resume: bool) -> SearchRun:
    return SearchRun.resume(config, space, run) if resume else SearchRun.start(config, space, run)


def run_linas(
    config, space, measure: MeasureFn, run: RunStore | None = None, progress: bool = True, resume: bool = False
) -> dict[str, Any]:
    """LINAS (Algorithm 1 of the paper), or one-shot: predictors, inner MOEA, measure the best."""
    return drive(_open(config, space, run, resume), measure, progress)


def run_validation(
    config, space, measure: MeasureFn, run: RunStore | None = None, progress: bool = True, resume: bool = False
) -> dict[str, Any]:
    """Every candidate the algorithm asks for is measured for real. A resumed run rebuilds
    the algorithm's state by replaying the table (SearchRun), then goes on."""
    return drive(_open(config, space, run, resume), measure, progress)
