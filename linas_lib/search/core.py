"""The LINAS steps as plain functions over encodings and measurement tables.

`SearchRun` (linas_lib.search.run) composes them into the one engine that both the
in-process loop and the Kubeflow stages drive; tests/test_one_engine.py checks that
both paths measure the same sub-networks.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from linas_lib.algos import build_searcher
from linas_lib.api.documents import Summary
from linas_lib.api.objective import Objective, is_prediction, prediction_column
from linas_lib.measurements import encodings, objective_matrix, successful
from linas_lib.pareto import FAST_FRONT_ROWS, Normalization, hypervolume, non_dominated_mask, rank_and_crowding
from linas_lib.predictors import build_predictor
from linas_lib.search.problem import search_problem

# 2: encodings as lists, cache state as fields, ISO-8601 times, units (1: JSON strings, packed
# cache strings, epoch floats)
SUMMARY_FORMAT = "linas-summary/2"

# Candidates for the next population come from the inner search's most recent
# evaluations: they are the best-converged, and non-dominated sorting of all
# 20,000 would cost more than the search itself.
RECENT_CANDIDATES = 4000


def iteration_seed(seed: int, iteration: int) -> int:
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


def initial_population(space, n: int, seed: int, exclude: set[str] = frozenset()) -> np.ndarray:
    """The space's anchors (smallest and largest network, when it has them), then uniform samples.

    The anchors span the trade-off for the first predictors and fix the hypervolume's
    bounds the same way for every seed (see `normalization`)."""
    anchors = space.anchors()
    anchors = anchors[[k not in exclude for k in space.keys(anchors)]][:n] if len(anchors) else anchors
    rest = space.sample(n - len(anchors), iteration_seed(seed, 0), exclude=set(exclude) | set(space.keys(anchors)))
    return np.vstack([anchors, rest]) if len(anchors) else rest


class ExactObjective:
    """An objective the plugin computes exactly and cheaply (MACs, params): a "predictor"
    that is never wrong, so the search uses the value itself."""

    def __init__(self, problem, name: str):
        self.problem, self.name = problem, name

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.problem.exact(np.asarray(X, dtype=np.int64))[self.name]

    def predict_dist(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value = self.predict(X)
        return value, np.zeros(len(value))


def _estimator(config, space, objective: Objective, iteration: int, problem):
    spec = config.predictor_for(objective.name, iteration)
    estimator = build_predictor(spec.name, space, **spec.params)
    if problem.has_features and "derived" in estimator.get_params() and "derived" not in spec.params:
        estimator.set_params(derived=problem.derived_features)
    from linas_lib.search.selection import NEEDS_UNCERTAINTY

    if config.search.selection in NEEDS_UNCERTAINTY:
        from linas_lib.predictors.ensemble import BootstrapEnsemble

        estimator = BootstrapEnsemble(estimator, n_members=config.search.ensemble,
                                      random_state=iteration_seed(config.seed, iteration) % (2**31))
    return estimator


def fit_predictors(config, space, frame: pd.DataFrame, iteration: int = 1) -> dict[str, Any]:
    """One fitted estimator per objective, trained on every successful measurement;
    objectives the plugin computes exactly get an `ExactObjective` instead.

    `iteration` is the one the predictors will propose, which picks the schedule entry.
    Deterministic given the table, so a pipeline stage refits rather than unpickles.
    """
    problem = search_problem(config, space)
    predictors: dict[str, Any] = {}
    table = successful(frame).reset_index(drop=True)
    measured = len(table)
    table = training_sample(table, config.search.training_records, iteration_seed(config.seed, iteration))
    X = encodings(table) if len(table) else None  # parsed once for every objective
    for objective in config.resolved_objectives():
        if objective.name in problem.exact_names:
            predictors[objective.name] = ExactObjective(problem, objective.name)
            continue
        ok = successful(table, [objective.name])
        if len(ok) < 2:
            raise ValueError(f"need at least 2 successful measurements of {objective.name} to train a predictor, "
                             f"have {len(ok)}")
        estimator = _estimator(config, space, objective, iteration, problem)
        rows = X[table.index.get_indexer(ok.index)]
        predictors[objective.name] = estimator.fit(rows, ok[objective.name].to_numpy())
        predictors[objective.name].training_records_ = {"measured": measured, "used": len(table)}
    return predictors


def training_sample(table: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` rows, uniformly. A predictor of a few hundred coefficients (one-hot
    ridge, 300 Nystrom landmarks) is settled long before 100,000 records: each record more
    costs fitting time without changing its predictions (bench/scale.py: --training-check)."""
    if limit is None or len(table) <= limit:
        return table
    keep = np.sort(np.random.default_rng(seed).choice(len(table), limit, replace=False))
    return table.iloc[keep].reset_index(drop=True)


def describe_predictors(predictors: dict[str, Any]) -> dict[str, Any]:
    """The fitted predictors as plain data, for the run's record and the report."""
    out: dict[str, Any] = {}
    for name, p in predictors.items():
        if isinstance(p, ExactObjective):
            out[name] = {"exact": True}
            continue
        center = getattr(p, "center_", p)
        entry: dict[str, Any] = {"model": type(center).__name__, "exact": False}
        if hasattr(p, "training_records_"):
            entry["training_records"] = p.training_records_
        if hasattr(center, "resolved_params"):
            entry["hyperparameters"] = {k: (list(v) if isinstance(v, tuple) else v)
                                        for k, v in center.resolved_params().items()}
        features = getattr(center, "features_", None)
        if features is not None and hasattr(features, "kind_"):
            entry["features"] = features.kind_
        scaling = getattr(center, "scaling_", None)
        if scaling is not None:  # exact, or how the cost was kept linear above the size threshold
            entry["scaling"] = scaling
        if hasattr(p, "members_"):
            entry["ensemble"] = {"members": len(p.members_)}
            if hasattr(p, "member_records_"):
                entry["ensemble"].update(member_records=p.member_records_, spread_scale=p.spread_scale_)
        out[name] = entry
    return out


def predict(predictors: dict[str, Any], objectives: list[Objective], X: np.ndarray) -> np.ndarray:
    """(n, n_obj) predicted values in minimization form, one batched call per objective."""
    return np.column_stack([o.to_min(predictors[o.name].predict(X)) for o in objectives])


def predict_dist(predictors: dict[str, Any], objectives: list[Objective], X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (mean, std) in minimization form; a predictor without uncertainty has std 0."""
    means, stds = [], []
    for o in objectives:
        p = predictors[o.name]
        mean, std = p.predict_dist(X) if hasattr(p, "predict_dist") else (p.predict(X), np.zeros(len(X)))
        means.append(o.to_min(mean))
        stds.append(np.asarray(std, dtype=float))
    return np.column_stack(means), np.column_stack(stds)


# A space with at most this many gene vectors is enumerated instead of searched: the
# "inner search" then sees every network, exactly, for less than an MOEA run costs.
ENUMERATE_LIMIT = 50_000
PREDICT_CHUNK = 8192


def enumerate_limit(config, iteration: int) -> int:
    return min(ENUMERATE_LIMIT, config.search.inner_at(iteration).evaluations)


def inner_enumerates(config, space, iteration: int) -> bool:
    """Whether the inner search sees every network (a small space) rather than an MOEA's sample."""
    return space.n_encodings <= enumerate_limit(config, iteration)


def run_inner_search(
    config, space, predictors: dict[str, Any], seed: int, iteration: int = 1, constraint=None,
    objectives: list[Objective] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The MOEA on predictors alone; returns every (encoding, prediction) it evaluated.

    `objectives` defaults to all of the config's. With a constraint group, predictions
    that violate it are pushed behind every feasible point, so the algorithm's own
    ranking keeps to the feasible region. A space small enough (`ENUMERATE_LIMIT`,
    and no larger than the inner budget) is enumerated instead.
    """
    inner = config.search.inner_at(iteration)
    objectives = objectives or config.resolved_objectives()
    every = space.enumerate(enumerate_limit(config, iteration))
    if every is not None:
        F = np.vstack([predict(predictors, objectives, every[i:i + PREDICT_CHUNK])
                       for i in range(0, len(every), PREDICT_CHUNK)])
        return every, F
    searcher = build_searcher(inner.algorithm, space, len(objectives), inner.evaluations, seed, **inner.algorithm_params())
    column = [o.name for o in objectives].index(constraint.objective) if constraint else None
    seen_X, seen_F = [], []
    while searcher.has_next():
        X = searcher.ask()
        if len(X) == 0:
            break
        F = predict(predictors, objectives, X)
        told = F
        if constraint is not None:
            excess = np.maximum(objectives[column].from_min(F[:, column]) - constraint.max, 0.0)
            told = np.where(excess[:, None] > 0, F + PENALTY * (1.0 + excess[:, None]), F)
        searcher.tell(X, told)
        seen_X.append(X)
        seen_F.append(F)
    return np.vstack(seen_X), np.vstack(seen_F)


PENALTY = 1e6


def unmeasured_candidates(space, X: np.ndarray, F: np.ndarray, exclude: set[str],
                          recent: int | None = RECENT_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """Distinct canonical encodings not in `exclude`, newest first kept (later generations
    are better converged); at most `recent` of the most recent evaluations of an MOEA,
    all of them (`recent=None`) when the inner search enumerated the space."""
    if recent is not None:
        X, F = X[-recent:], F[-recent:]
    X = space.canonicalize(X)
    keys = space.keys(X)
    keep, chosen = [], set()
    for i in range(len(X) - 1, -1, -1):
        if keys[i] not in exclude and keys[i] not in chosen:
            chosen.add(keys[i])
            keep.append(i)
    keep = np.asarray(keep[::-1], dtype=np.int64)
    return X[keep], F[keep]


def select_unmeasured(
    space, X: np.ndarray, F: np.ndarray, exclude: set[str], n: int, seed: int,
    strategy: str = "rank_crowding", predictors: dict[str, Any] | None = None,
    objectives: list[Objective] | None = None, measured: np.ndarray | None = None,
    recent: int | None = RECENT_CANDIDATES,
) -> np.ndarray:
    """The best `n` distinct, not-yet-measured encodings by the selection `strategy`.

    `rank_crowding` ranks the inner search's predictions; `ehvi` also needs the
    predictors (for their uncertainty) and the measured values (min-form) of the
    objectives searched. Tops up with random unmeasured sub-networks when too few.
    """
    from linas_lib.search.selection import select

    Xc, Fc = unmeasured_candidates(space, X, F, exclude, recent)
    if len(Xc) == 0:
        picked = np.zeros((0, space.n_var), np.int64)
    elif strategy == "rank_crowding" or predictors is None:
        picked = Xc[select("rank_crowding", Fc, np.zeros_like(Fc), np.zeros((0, Fc.shape[1])), n, seed)]
    else:
        mean, std = predict_dist(predictors, objectives, Xc)
        picked = Xc[select(strategy, mean, std, measured, n, seed)]
    if len(picked) < n:
        extra = space.sample(n - len(picked), seed, exclude=set(exclude) | set(space.keys(picked)))
        picked = np.vstack([picked, extra])
    return space.canonicalize(picked)


def search_groups(config) -> list[tuple[list[Objective], Any]]:
    """How the next population is shared out: (objectives searched, constraint) per group.

    Constraint groups each search all objectives under their own latency budget (as
    OFA does); with several hardware targets each target's front gets its own search
    (quality against that target's latency), so every target's front is covered.
    """
    objectives = config.resolved_objectives()
    if config.search.constraints:
        return [(objectives, c) for c in config.search.constraints]
    latency = [o for o in objectives if o.key.kind == "latency"]
    if len(latency) > 1:
        rest = [o for o in objectives if o not in latency]
        return [(rest + [o], None) for o in latency]
    return [(objectives, None)]


def next_population(config, space, frame: pd.DataFrame, predictors, iteration: int) -> tuple[np.ndarray, np.ndarray]:
    """LINAS steps 3-4: search the predictors, keep the best unmeasured; also return their predictions."""
    seed = iteration_seed(config.seed, iteration)
    exclude = set(frame["subnet_id"].tolist())  # tolist: iterating an arrow column costs 6x
    n = config.search.population_at(iteration)
    groups = search_groups(config)
    shares = [n // len(groups) + (i < n % len(groups)) for i in range(len(groups))]
    chosen = []
    for g, ((objectives, group), share) in enumerate(zip(groups, shares)):
        if share == 0:
            continue
        X, F = run_inner_search(config, space, predictors, seed + g, iteration, group, objectives)
        if group is not None:
            column = [o.name for o in objectives].index(group.objective)
            feasible = objectives[column].from_min(F[:, column]) <= group.max
            X, F = X[feasible], F[feasible]
        ok = successful(frame, [o.name for o in objectives])
        measured = objective_matrix(ok, objectives)
        if group is not None:
            measured = measured[objectives[column].from_min(measured[:, column]) <= group.max]
        enumerated = inner_enumerates(config, space, iteration)
        picked = select_unmeasured(space, X, F, exclude, share, seed + g, config.search.selection,
                                   predictors, objectives, measured, None if enumerated else RECENT_CANDIDATES)
        exclude |= set(space.keys(picked))
        chosen.append(picked)
    population = np.vstack(chosen)
    return population, predict(predictors, config.resolved_objectives(), population)


def should_continue(config, frame: pd.DataFrame, iteration: int) -> tuple[bool, str]:
    """After measuring `iteration`: is there a next one? Budget first, then early stop."""
    if iteration + 1 >= config.search.iterations:
        return False, "evaluation budget spent"
    stop = config.search.early_stop
    hv = hypervolume_history(config, frame)
    if stop.threshold > 0 and len(hv) > stop.window and hv[-1] - hv[-1 - stop.window] < stop.threshold:
        return False, f"early stop: hypervolume gained {hv[-1] - hv[-1 - stop.window]:.4g} < {stop.threshold} " \
                      f"over the last {stop.window} iterations"
    return True, ""


# ---- analytics derived from the measurement table ----------------------------
def target_views(config) -> dict[str, list[Objective]]:
    """Per hardware target, the objectives as that target sees them: every
    non-latency objective plus that target's latency."""
    objectives = config.resolved_objectives()
    latency = [o for o in objectives if o.key.kind == "latency"]
    rest = [o for o in objectives if o not in latency]
    return {o.target: rest + [o] for o in latency}


def normalization(config, frame: pd.DataFrame, objectives: list[Objective] | None = None) -> Normalization:
    """The hypervolume's fixed box, from the best basis there is:

    1. `bounds`: the plugin's `objective_bounds` (a tabular benchmark's true front);
    2. `anchors`: the measured smallest and largest networks (in every run's first
       population, see `initial_population`): the same box for every seed and run;
    3. `first population`: min/max of the first iteration, 5 % margin (differs by seed).
    """
    objectives = objectives or config.resolved_objectives()
    names = [o.name for o in objectives]
    problem = search_problem(config)
    if problem.bounds and all(n in problem.bounds for n in names):
        best = np.array([o.to_min(problem.bounds[o.name][0]) for o in objectives], dtype=float)
        worst = np.array([o.to_min(problem.bounds[o.name][1]) for o in objectives], dtype=float)
        return Normalization(tuple(np.minimum(best, worst).tolist()), tuple(np.maximum(best, worst).tolist()),
                             "bounds")
    space = getattr(problem.plugin, "space", None)
    anchors = space.anchors() if space is not None else np.zeros((0, 0))
    if len(anchors) >= 2:
        rows = successful(frame[frame["subnet_id"].isin(space.keys(anchors))], names)
        F = objective_matrix(rows, objectives)
        if len(F) >= 2 and np.all(F.max(axis=0) > F.min(axis=0)):
            return Normalization(tuple(F.min(axis=0).tolist()), tuple(F.max(axis=0).tolist()), "anchors")
    first = frame[frame["iteration"] == frame["iteration"].min()]
    F = objective_matrix(first, objectives)
    if len(F) == 0:
        F = objective_matrix(frame, objectives)
    return Normalization.from_values(F, basis="first population")


def hypervolume_optimum(config, objectives: list[Objective] | None = None) -> float | None:
    """The true front's normalized hypervolume, where the plugin knows its true front."""
    objectives = objectives or config.resolved_objectives()
    plugin = search_problem(config).plugin
    if not hasattr(plugin, "true_front"):
        return None
    front = plugin.true_front([o.name for o in objectives])
    if front is None:
        return None
    F = np.column_stack([o.to_min(front[:, i]) for i, o in enumerate(objectives)])
    empty = pd.DataFrame({"iteration": [0], "subnet_id": [""], "status": ["failed"]})
    return hypervolume(F, normalization(config, empty, objectives))


def hypervolume_history(config, frame: pd.DataFrame, objectives: list[Objective] | None = None) -> list[float]:
    """The hypervolume of everything measured up to each iteration."""
    objectives = objectives or config.resolved_objectives()
    if successful(frame).empty:
        return []
    norm = normalization(config, frame, objectives)
    iterations = sorted(frame["iteration"].unique())
    if len(frame) <= FAST_FRONT_ROWS:  # as always: the whole table up to each iteration
        return [hypervolume(objective_matrix(frame[frame["iteration"] <= it], objectives), norm) for it in iterations]
    # A running front: each iteration's rows join the front so far, so the history costs one
    # pass over the table instead of one per iteration (dominated rows add no volume).
    ok = successful(frame, [o.name for o in objectives])
    F, rows_at = objective_matrix(ok, objectives), ok["iteration"].to_numpy()
    front, out = F[:0], []
    for it in iterations:
        candidates = np.vstack([front, F[rows_at == it]])
        front = candidates[non_dominated_mask(candidates)] if len(candidates) else candidates
        out.append(hypervolume(front, norm))
    return out


def pareto_front(config, frame: pd.DataFrame, objectives: list[Objective] | None = None) -> pd.DataFrame:
    objectives = objectives or config.resolved_objectives()
    ok = successful(frame, [o.name for o in objectives])
    front = ok[non_dominated_mask(objective_matrix(ok, objectives))]
    first = objectives[0]
    return front.sort_values(first.name, ascending=first.direction == "min")


def transferability(config, frame: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """How the sub-networks on one target's measured front fare on every other target.

    `tau`: Kendall rank correlation of their latencies on the two targets; `shared`:
    the fraction of them that is also on the other target's front.
    """
    views = target_views(config)
    fronts = {t: pareto_front(config, frame, objs) for t, objs in views.items()}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for source, front in fronts.items():
        table[source] = {}
        for other, other_front in fronts.items():
            a, b = front[views[source][-1].name].to_numpy(), front[views[other][-1].name].to_numpy()
            tau = float(kendalltau(a, b).statistic) if len(front) > 1 else float("nan")
            shared = float(front["subnet_id"].isin(other_front["subnet_id"]).mean()) if len(front) else float("nan")
            table[source][other] = {"tau": tau, "shared": shared}
    return table


def prospective_quality(config, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """How well the previous iteration's predictors predicted what was then measured."""
    out = []
    ok = successful(frame)
    for it, rows in ok.groupby("iteration", sort=True):  # one pass, not a filter per iteration
        entry: dict[str, Any] = {"iteration": int(it)}
        for o in config.resolved_objectives():
            col = prediction_column(o.name)
            if col not in rows or rows[col].isna().all():
                continue
            sub = rows[rows[col].notna()]
            actual, predicted = sub[o.name].to_numpy(), sub[col].to_numpy()
            entry[o.name] = {
                "mape": float(np.mean(np.abs(predicted - actual) / np.maximum(np.abs(actual), 1e-12)) * 100),
                "kendall_tau": float(kendalltau(actual, predicted).statistic) if len(sub) > 1 else float("nan"),
                "n": int(len(sub)),
            }
        if len(entry) > 1:
            out.append(entry)
    return out


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not np.isfinite(value) else value  # NaN is not JSON


def plain_records(front: pd.DataFrame, space=None) -> list[dict[str, Any]]:
    """Measured rows as plain JSON: the encoding a list (and, with `space`, decoded per gene),
    cache state as fields, an ISO-8601 time."""
    from linas_lib.measurements import cache_fields, iso_time

    skip = {"run", "subnet_id", "iteration", "status", "error", "targets", "encoding", "cache", "timestamp"}
    values = [c for c in front.columns if c not in skip and not is_prediction(c)]
    out = []
    for row in front.to_dict("records"):
        record = {"subnet_id": row["subnet_id"], "iteration": int(row["iteration"]),
                  "encoding": [int(g) for g in json.loads(row["encoding"])]}
        if space is not None and len(record["encoding"]) == space.n_var:  # what the sub-network is
            record["architecture"] = {k: _plain(v) for k, v in space.decode(record["encoding"]).items()}
        record.update({k: _plain(row[k]) for k in values})
        record["cache"], record["cache_scopes"] = cache_fields(row.get("cache"))
        record["measured_at"] = iso_time(row.get("timestamp"))
        out.append(record)
    return out


def units(config, frame: pd.DataFrame) -> dict[str, str]:
    """The unit of every value column of the table, plus the times' format."""
    from linas_lib.measurements import FIXED_COLUMNS, column_unit
    from linas_lib.supernets import supernet_class

    plugin = supernet_class(config.supernet.name)
    quality = {plugin.quality_metric: plugin.quality_unit} if getattr(plugin, "quality_unit", None) else None
    columns = [c for c in frame.columns if c not in FIXED_COLUMNS and not is_prediction(c)]
    out = {c: column_unit(c, quality) for c in columns}
    return {**{c: u for c, u in out.items() if u}, "measured_at": "ISO-8601 UTC", "finished_at": "ISO-8601 UTC"}


def hardware(
    config, frame: pd.DataFrame, recorded: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per latency target, what the config fixes about its hardware, the cache scope its
    latencies were measured under (a digest of the fingerprint the evaluation cache keys
    them by), the full fingerprint recorded with them (`recorded`: target -> scope ->
    fingerprint: host CPU, cores, OS, backend version...) and the host's load while timing."""
    from linas_lib.measurements import latency_scopes, load_column, successful

    scopes, recorded = latency_scopes(frame), recorded or {}
    out = {}
    for t in config.latency_targets:
        entry = {"backend": t.backend, "device": t.device, "precision": t.precision, "batch_size": t.batch_size,
                 "threads": t.threads, "node": dict(t.node_fingerprint)}
        if t.name in scopes:
            entry["scope"] = scopes[t.name]
            if scopes[t.name] in recorded.get(t.name, {}):
                entry["fingerprint"] = recorded[t.name][scopes[t.name]]
        others = sorted(set(recorded.get(t.name, {})) - {scopes.get(t.name)})
        if others:  # e.g. pods of one target on nodes of different CPUs: say so
            entry["other_scopes"] = others
        load = successful(frame, [load_column(t.name)]).get(load_column(t.name))
        if load is not None and len(load):
            entry["load_1m"] = {"median": float(load.median()), "max": float(load.max())}
        out[t.name] = entry
    return out


def _decoder(config):
    """The search space alone (no weights), to decode encodings; None when it cannot be built."""
    from linas_lib.supernets import supernet_space

    try:
        return supernet_space(config.supernet.name, **config.supernet.params)
    except Exception:  # a plugin whose space needs more than its params: the report shows encodings
        return None


def noisy_targets(config, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Targets with latencies whose CV stayed above `measurement.max_latency_cv` after re-timing:
    how many, of how many, how spread, and the host's load when they were timed."""
    from linas_lib.measurements import cv_column, latency_column, load_column

    limit = config.measurement.max_latency_cv
    out: dict[str, dict[str, Any]] = {}
    for target in config.latency_targets if limit is not None else []:
        ok = successful(frame, [latency_column(target.name)])
        if cv_column(target.name) not in ok or ok.empty:
            continue
        cv = ok[cv_column(target.name)].to_numpy(dtype=float)
        noisy = np.isfinite(cv) & (cv > limit)
        if not noisy.any():
            continue
        entry: dict[str, Any] = {"noisy": int(noisy.sum()), "measured": int(np.isfinite(cv).sum()),
                                 "max_latency_cv": limit, "median_cv": float(np.nanmedian(cv)),
                                 "max_cv": float(np.nanmax(cv)), "noisy_subnets": ok["subnet_id"][noisy].tolist()}
        if load_column(target.name) in ok:
            load = ok[load_column(target.name)].to_numpy(dtype=float)
            if np.isfinite(load).any():
                entry["median_load_1m"] = float(np.nanmedian(load))
        out[target.name] = entry
    return out


def noisy_warnings(summary: dict[str, Any]) -> list[str]:
    """One line per noisy target of a summary, for the CLI."""
    lines = []
    for target, n in (summary.get("noisy_targets") or {}).items():
        load = f", median load average {n['median_load_1m']:.1f}" if "median_load_1m" in n else ""
        lines.append(f"warning: target {target}: {n['noisy']} of {n['measured']} latencies stayed noisy after "
                     f"re-timing (CV above measurement.max_latency_cv {n['max_latency_cv']:.0%}, up to "
                     f"{n['max_cv']:.0%}{load}): the host was busy or its timing noisy, so their ranking is "
                     "uncertain; measure on a quieter machine for a front to rely on")
    return lines


def summarize(
    config, frame: pd.DataFrame, previous: pd.DataFrame | None = None, drift: dict[str, Any] | None = None,
    fingerprints: dict[str, dict[str, Any]] | None = None,
) -> Summary:
    """Everything the report shows; `previous` (a recurring run's predecessor's table) and
    `drift` (its re-measured front) add the comparison with the previous run, `fingerprints`
    (target -> cache scope -> recorded fingerprint) each target's full fingerprint."""
    from linas_lib.measurements import cache_counts
    from linas_lib.search.recurring import compare_fronts

    objectives = config.resolved_objectives()
    space = _decoder(config)
    pareto = plain_records(pareto_front(config, frame), space)
    has_data = not successful(frame).empty
    targets = {
        target: {"objectives": [o.name for o in objs], "hypervolume": hypervolume_history(config, frame, objs),
                 "pareto": plain_records(pareto_front(config, frame, objs), space) if has_data else []}
        for target, objs in target_views(config).items()
    }
    unit = units(config, frame)
    return {
        "format": SUMMARY_FORMAT,
        "name": config.name,
        "mode": config.search.mode,
        "objectives": [{"name": o.name, "direction": o.direction, "unit": unit.get(o.name, o.unit)} for o in objectives],
        "units": unit,
        "evaluations": int(len(frame)),
        "successful": int(len(successful(frame))),
        "failed": int((frame["status"] != "ok").sum()),
        "iterations": int(frame["iteration"].nunique()) if len(frame) else 0,
        "hypervolume": hypervolume_history(config, frame),
        "normalization": normalization(config, frame).to_dict() if has_data else None,
        "hypervolume_optimum": hypervolume_optimum(config),
        "predictor_quality": prospective_quality(config, frame),
        "pareto": pareto,
        "targets": targets,
        "transferability": transferability(config, frame) if has_data and len(targets) > 1 else {},
        "cache": cache_counts(frame),
        "noisy_targets": noisy_targets(config, frame),
        "hardware": hardware(config, frame, fingerprints),
        "drift": drift or {},
        "previous": compare_fronts(config, previous, frame) if previous is not None and has_data else {},
    }
