"""Recurring re-searches: start from the previous run's measured front, and notice drift.

A run started where a finished run of the same config lives archives that run, then
re-measures its per-target Pareto fronts on the target. Unchanged latencies mean the
evaluation cache can be trusted and the old front seeds the new population; drifted
ones (or a changed hardware fingerprint) mark the target's cached latencies stale.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from linas_lib.measurements import latency_column, latency_scopes, objective_matrix
from linas_lib.pareto import Normalization, hypervolume
from linas_lib.search import core


def previous_fronts(config, frame: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Per target of `config`: subnet_id -> {encoding, latency, scope} on the previous run's front."""
    scopes = latency_scopes(frame)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for target, objectives in core.target_views(config).items():
        col = latency_column(target)
        if col not in frame or any(o.name not in frame for o in objectives):
            continue  # the previous run did not measure this target
        front = core.pareto_front(config, frame, objectives)
        out[target] = {row["subnet_id"]: {"encoding": json.loads(row["encoding"]), "latency": float(row[col]),
                                          "scope": scopes.get(target)}
                       for row in front.to_dict("records")}
    return out


def warm_start_population(config, space, fronts: dict[str, dict[str, dict[str, Any]]]) -> np.ndarray:
    """The previous fronts' sub-networks (evenly thinned if too many), topped up at random."""
    n = config.search.population_at(0)
    seen: dict[str, list[int]] = {}
    for front in fronts.values():
        for key, entry in front.items():
            seen.setdefault(key, entry["encoding"])
    X = np.asarray(list(seen.values()), dtype=np.int64).reshape(len(seen), space.n_var)
    if len(X) > n:
        X = X[np.unique(np.linspace(0, len(X) - 1, n).round().astype(int))]
    if len(X) < n:
        X = np.vstack([X, core.initial_population(space, n - len(X), config.seed, exclude=set(space.keys(X)))])
    return space.canonicalize(X)


def compare_fronts(config, previous: pd.DataFrame, current: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per target: both fronts' hypervolumes under one normalization, and how many sub-networks they share."""
    out = {}
    for target, objectives in core.target_views(config).items():
        if any(o.name not in previous for o in objectives):
            continue
        old, new = (core.pareto_front(config, f, objectives) for f in (previous, current))
        F_old, F_new = objective_matrix(old, objectives), objective_matrix(new, objectives)
        if not len(F_old) or not len(F_new):
            continue
        norm = Normalization.from_values(np.vstack([F_old, F_new]))
        out[target] = {"previous_hypervolume": hypervolume(F_old, norm), "hypervolume": hypervolume(F_new, norm),
                       "previous_size": len(old), "size": len(new),
                       "shared": int(new["subnet_id"].isin(old["subnet_id"]).sum())}
    return out
