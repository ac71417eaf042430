"""Pipeline stages as file-in/file-out functions: the bodies of the KFP components.

Each stage validates the config it is handed (the process boundary), reads its
inputs from artifact paths, calls the same core functions as the in-process
loop, and writes its outputs. Measurements also land in the run's store, so a
run directory looks the same whether it came from `linas search` or a pipeline.

The search (its predictors and scipy) is imported by the stages that search, not by the
measuring ones: every task is a process of its own, and its imports are its start-up.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from linas_lib import lease
from linas_lib.api.documents import LatencyOutput, ObjectiveRecord, Population, check_document
from linas_lib.config import LinasConfig, config_from_json
from linas_lib.measurements import combine
from linas_lib.runs import RunStore


def _config(config_json: str) -> LinasConfig:
    return config_from_json(config_json)


def _space(config: LinasConfig):
    from linas_lib.supernets import supernet_space

    return supernet_space(config.supernet.name, **config.supernet.params)


def _write_json(path: str, obj: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj))


def _read_json(path: str) -> Any:
    return json.loads(Path(path).read_text())


def _population(path: str) -> Population:
    return Population.from_dict(_read_json(path))


# A pipeline run's parameters: the Kubeflow UI's `overrides` object and `--param` of submit and
# schedule. Each maps to one dotted config key; defaults, checks and resolution all read this table.
RUN_PARAMETERS: dict[str, tuple[str, type]] = {
    "seed": ("seed", int),
    "max_iterations": ("search.max_iterations", int),   # 1..the compiled iterations
    "population": ("search.population", int),           # 0: "auto"
    "inner_evaluations": ("search.inner.evaluations", int),
    "early_stop_threshold": ("search.early_stop.threshold", float),
    "early_stop_window": ("search.early_stop.window", int),
}


def run_parameter_defaults(config: LinasConfig) -> dict[str, Any]:
    """The compiled config's value of every run parameter."""
    values = {}
    for name, (key, _) in RUN_PARAMETERS.items():
        value: Any = config
        for part in key.split("."):
            value = getattr(value, part)
        values[name] = value
    values["max_iterations"] = config.search.iterations
    values["population"] = config.search.population if isinstance(config.search.population, int) else 0
    return values


def check_run_parameters(overrides: dict[str, Any]) -> dict[str, Any]:
    """Names and types of run parameters, checked; integral floats become ints (JSON
    objects in KFP carry every number as a double)."""
    out = {}
    for name, value in overrides.items():
        if name not in RUN_PARAMETERS:
            raise ValueError(f"{name}: not a run parameter; allowed: {', '.join(RUN_PARAMETERS)}")
        kind = RUN_PARAMETERS[name][1]
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}={value!r}: must be a finite number")
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        allowed = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise ValueError(f"{name}={value!r}: expected {'an integer' if kind is int else 'a number'}, "
                             f"got {type(value).__name__}")
        out[name] = kind(value)
    return out


def resolve_config(config_json: str, compiled_iterations: int, overrides: dict[str, Any] | None = None) -> str:
    """Apply a run's parameters (set in the Kubeflow UI) to the compiled config, validated.

    The graph has `compiled_iterations` iterations, so a parameter that needs more is
    refused, never silently capped: `max_iterations` is 1..compiled, and the evaluation
    budget is kept when `population` changes (iterations = budget / population), so a
    population too small to spend the budget in the compiled iterations is refused.
    """
    config = _config(config_json)
    values = run_parameter_defaults(config) | check_run_parameters(overrides or {})
    max_iterations, population = values["max_iterations"], values["population"]
    if not 1 <= max_iterations <= compiled_iterations:
        raise ValueError(
            f"max_iterations: must be 1..{compiled_iterations} (the iterations this pipeline was compiled with), "
            f"got {max_iterations}; recompile with a larger search.evaluations for more"
        )
    resolved = config.with_overrides(**{
        **{RUN_PARAMETERS[name][0]: value for name, value in values.items()},
        "search.population": population or "auto",
        "search.max_iterations": None,
    })
    needed = resolved.search.iterations
    if needed > compiled_iterations:
        start = max(population + 1, -(-resolved.search.evaluations // compiled_iterations))
        smallest = next(p for p in range(start, resolved.search.evaluations + 1)
                        if resolved.with_overrides(**{"search.population": p}).search.iterations <= compiled_iterations)
        raise ValueError(
            f"population: {population} needs {needed} iterations to spend the budget of "
            f"{resolved.search.evaluations} evaluations, and this pipeline has {compiled_iterations}; "
            f"use population >= {smallest}, or recompile with this population"
        )
    return resolved.with_overrides(**{"search.max_iterations": max_iterations}).to_json()


def report_refused(reason: str, html_path: str, markdown_path: str) -> None:
    """The exit task's report when the run was refused (its parameters, or another run
    holds the store): the reason, in the run view, at once (re-raising would only
    repeat it after every retry)."""
    import html

    for path, text in ((markdown_path, f"# Run refused\n\n{reason}\n"),
                       (html_path, f"<h1>Run refused</h1><p>{html.escape(reason)}</p>")):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def sample(config_json: str, store_uri: str, population_path: str, run_id: str = "", run_name: str = "") -> int:
    """The run starts (a finished run at `store_uri` is archived first) and asks for its
    initial population: uniform (seeded), or for a recurring run the previous run's
    measured fronts topped up at random; the fronts travel in the population so each
    latency task checks drift before trusting the cache."""
    from linas_lib.search.run import SearchRun

    config = _config(config_json)
    run = RunStore(store_uri)
    if run_id:  # a pipeline run: take the location before start_fresh deletes anything
        lease.acquire(run.store, run_id, lease.lease_ttl_s(), holder_name=run_name)
    population = SearchRun.start(config, _space(config), run).ask()
    _write_json(population_path, population.to_dict())
    return len(population)


def _supernet(config: LinasConfig, checkpoint: str):
    from linas_lib.supernets import load_supernet

    return load_supernet(config.supernet, checkpoint or None, progress=False)


def _cache(config: LinasConfig, store_uri: str, supernet, checkpoint: str):
    from linas_lib.cache import open_cache

    return open_cache(config, store_uri, supernet, checkpoint or config.supernet.checkpoint)


def evaluate_accuracy(
    config_json: str, checkpoint: str, population_path: str, output_path: str, shard: int = 0, shards: int = 1,
    store_uri: str | None = None,
) -> int:
    """Score shard `shard` of `shards` (every shards-th sub-network), so K pods split a population.

    With `store_uri`, the evaluation cache beside the run is consulted and fed, so a
    retried pod re-measures nothing that its earlier attempt finished."""
    from linas_lib.objectives import measure_quality

    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    config = _config(config_json)
    X = _population(population_path).encodings
    supernet = _supernet(config, checkpoint)
    wanted = supernet.quality_metric in config.objectives
    cache = _cache(config, store_uri, supernet, checkpoint) if store_uri else None
    rows = measure_quality(supernet, X[shard::shards], wanted, policy=config.measurement, cache=cache) \
        if len(X[shard::shards]) else []
    _write_json(output_path, rows)
    return len(rows)


def gather_accuracy(shard_paths: list[str], output_path: str) -> int:
    rows = [row for path in shard_paths for row in _read_json(path)]
    _write_json(output_path, rows)
    return len(rows)


def measure_latency(
    config_json: str, checkpoint: str, target_name: str, population_path: str, output_path: str,
    store_uri: str | None = None,
) -> None:
    """Latency of a population on one target; in a recurring run's first iteration the
    previous front is re-measured first, so drift is known before the cache is used."""
    from linas_lib.objectives import check_drift
    from linas_lib.objectives import measure_latency as measure

    config = _config(config_json)
    target = next((t for t in config.targets if t.name == target_name), None)
    if target is None:
        raise ValueError(f"target {target_name!r} is not in the config; targets: {[t.name for t in config.targets]}")
    population = _population(population_path)
    supernet = _supernet(config, checkpoint)
    cache = _cache(config, store_uri, supernet, checkpoint) if store_uri else None
    drift = None
    if population.previous_fronts:
        drift = check_drift(supernet, target, population.previous_fronts.get(target_name, {}),
                            config.recurring.drift_threshold, policy=config.measurement, cache=cache,
                            normalize=config.search.normalize_latency)
    rows = measure(supernet, population.encodings, target, config.search.normalize_latency, policy=config.measurement, cache=cache)
    _write_json(output_path, {"target": target_name, "rows": rows, "drift": drift})


def train_predictors(
    config_json: str,
    store_uri: str,
    population_path: str,
    accuracy_path: str,
    latency_paths: list[str],
    history_path: str | None,
    measurements_path: str,
    predictors_path: str,
    run_id: str = "",
) -> bool:
    """Tell the run this iteration's measurements (it records them, fits the predictors
    and says whether the search goes on); hand the table on as the next state."""
    from linas_lib.search import core
    from linas_lib.search.run import SearchRun

    config = _config(config_json)
    population = _population(population_path)
    # artifacts of other pods: checked as the documents they claim to be
    outputs = [check_document(LatencyOutput, _read_json(p), f"latency artifact {p}") for p in latency_paths]
    latency = {d["target"]: d["rows"] for d in outputs}
    drift = {d["target"]: d["drift"] for d in outputs if d.get("drift")}
    quality_rows = check_document(list[ObjectiveRecord], _read_json(accuracy_path), f"accuracy artifact {accuracy_path}")
    new = combine(iteration=population.iteration, run=config.name, quality_rows=quality_rows,
                  latency_rows=latency, predictions=population.predictions())
    store = RunStore(store_uri)
    if run_id:  # still ours? (a run whose lease expired must not overwrite the one that took over)
        lease.renew(store.store, run_id, lease.lease_ttl_s())
    run = SearchRun.restore(config, _space(config), pd.read_parquet(history_path) if history_path else None, store)
    try:
        go_on = run.tell(new, population, drift)
    finally:  # the next state, failed rows included
        Path(measurements_path).parent.mkdir(parents=True, exist_ok=True)
        run.frame.to_parquet(measurements_path, index=False)
    _write_json(predictors_path, core.describe_predictors(run.predictors))
    print(progress_line(config, population.iteration, new, run.frame), flush=True)
    if run.stop_reason:
        print(f"iteration {population.iteration}: {run.stop_reason}")
    return go_on


def progress_line(config, iteration: int, new: pd.DataFrame, frame: pd.DataFrame) -> str:
    """One fixed, greppable line per finished iteration (`linas: iteration N: ...`)."""
    from linas_lib.measurements import cache_counts
    from linas_lib.search import core

    cache = cache_counts(new)
    hv = core.hypervolume_history(config, frame)
    return (f"linas: iteration {iteration}: measured {len(new)}, failed {int((new['status'] != 'ok').sum())}, "
            f"cache {cache['hits']} hits, {cache['misses']} misses, hypervolume {hv[-1] if hv else 0.0:.4f}")


def run_moea(config_json: str, iteration: int, measurements_path: str, predictors_path: str, population_path: str) -> None:
    """Ask the run for its next population: it refits the predictors from the table
    (deterministic, so the models train_predictors fitted) rather than unpickling an
    artifact, so nothing read from the artifact store is executable. `predictors_path`
    is their description, for the record."""
    from linas_lib.search.run import SearchRun

    config = _config(config_json)
    run = SearchRun.restore(config, _space(config), pd.read_parquet(measurements_path))
    if run.iteration != iteration:
        raise ValueError(f"the measurement table ends at iteration {run.iteration - 1}; "
                         f"asked for iteration {iteration}")
    _write_json(population_path, run.ask().to_dict())


def report(
    config_json: str, store_uri: str, measurements_path: str | None, html_path: str, markdown_path: str,
    run_id: str = "",
) -> dict[str, float]:
    """Write the reports into the store and as artifacts; return the run's metrics.

    Without `measurements_path` the run's own measurement table in the store is used.
    """
    config = _config(config_json)
    run = RunStore(store_uri)
    if not run_id:
        return _report(config, run, measurements_path, html_path, markdown_path)
    try:  # the exit task: the lease ends with the run, whatever happened to it
        lease.renew(run.store, run_id, lease.lease_ttl_s())
    except lease.LeaseHeld as exc:  # this run never held the location: report why, touch nothing
        report_refused(str(exc), html_path, markdown_path)
        return {}
    try:
        return _report(config, run, measurements_path, html_path, markdown_path)
    finally:
        lease.release(run.store, run_id)


def _report(config, run, measurements_path, html_path, markdown_path) -> dict[str, float]:
    from linas_lib.report import write_reports
    from linas_lib.search.run import SearchRun

    frame = pd.read_parquet(measurements_path) if measurements_path else run.load_measurements()
    if frame.empty:
        raise ValueError(f"{run.uri} holds no measurements: the search failed before its first iteration was recorded")
    summary = SearchRun.restore(config, _space(config), frame, run).finish()
    html_text, md_text = write_reports(run, summary, frame)
    for path, text in ((html_path, html_text), (markdown_path, md_text)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    per_target = {f"hypervolume@{t}": v["hypervolume"][-1] for t, v in summary["targets"].items() if v["hypervolume"]}
    return {
        **per_target,
        "hypervolume": summary["hypervolume"][-1] if summary["hypervolume"] else 0.0,
        "evaluations": float(summary["evaluations"]),
        "pareto_size": float(len(summary["pareto"])),
        "failed": float(summary["failed"]),
        "cache_hits": float(summary["cache"]["hits"]),
        "cache_misses": float(summary["cache"]["misses"]),
    }

