"""Predictor quality as in the LINAS paper's appendix C: learning curves on a fixed test set.

For every objective column of a measurement table, a fixed test set is held out
and each predictor is trained on random subsets of the remaining pool, for several
training-set sizes and many trials; the mean (and std) MAPE and Kendall tau over
the trials describe how much data each predictor needs.

`evaluate_predictor_quality` is the computation (a plain function of a DataFrame);
`write_outputs` renders predictor_quality.json and the plots; `add_cli` registers
`linas predictors evaluate MEASUREMENTS --out DIR`.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from linas_lib.api.objective import ColumnKey
from linas_lib.measurements import FIXED_COLUMNS, OK, encodings
from linas_lib.predictors import build_predictor, predictor_names

DEFAULT_TRAIN_SIZES = tuple(range(100, 1001, 100))
DEFAULT_TEST_SIZE = 500
DEFAULT_TRIALS = 100
MEASUREMENTS_FILE = "measurements.parquet"
PAIRWISE_TAU_MAX_N = 2000
PREFERRED_ORDER = ("ridge", "svr_rbf", "svr_linear", "stacked")  # bases first, their stack last



# ---- metrics -------------------------------------------------------------------
def mape(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean absolute percentage error (%) of each row of `predicted` against `actual`."""
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    return np.mean(np.abs(predicted - actual) / np.maximum(np.abs(actual), 1e-12), axis=1) * 100.0


def kendall_tau(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row of `predicted` against `actual` (scipy's default variant).

    All rows share `actual`, so its pair signs are computed once and every row costs
    one vectorized pass over the n(n-1)/2 pairs. NaN where either side is constant.
    """
    actual = np.asarray(actual, dtype=np.float64)
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    n = len(actual)
    if n < 2:
        return np.full(len(predicted), np.nan)
    if n > PAIRWISE_TAU_MAX_N:  # the pair arrays would be large: scipy's O(n log n) per row
        from scipy.stats import kendalltau

        return np.array([kendalltau(actual, p).statistic for p in predicted], dtype=np.float64)
    i, j = np.triu_indices(n, k=1)
    sa = np.sign(actual[i] - actual[j])
    n_pairs = len(i)
    untied_a = n_pairs - np.count_nonzero(sa == 0)
    out = np.empty(len(predicted))
    for row, p in enumerate(predicted):
        sp = np.sign(p[i] - p[j])
        untied_p = n_pairs - np.count_nonzero(sp == 0)
        denom = np.sqrt(float(untied_a) * float(untied_p))
        out[row] = float(sa @ sp) / denom if denom > 0 else np.nan
    return out


# ---- table -> problem ------------------------------------------------------------
def objective_columns(frame: pd.DataFrame) -> list[str]:
    """The measured objectives among a table's value columns.

    Every float column other than the fixed ones, latency statistics
    (latency_cv@..., latency_p90@..., latency_norm@..., which is latency@t over a
    constant), logged predictions (pred:...) and the host's load: the quality metric (accuracy, hr@10, accuracy@<int8 target>, ...),
    latency@<target>, macs and params.
    """
    return [
        c for c in frame.columns
        if c not in FIXED_COLUMNS and ColumnKey.parse(str(c)).is_measured_value and pd.api.types.is_float_dtype(frame[c])
    ]


def _split_sizes(n: int, test_size: int, train_sizes: Sequence[int]) -> tuple[int, list[int], list[str]]:
    notes = []
    if n < 6:
        raise ValueError(f"predictor quality needs at least 6 usable measurements, the table has {n}")
    n_test = min(int(test_size), n // 3)
    if n_test < test_size:
        notes.append(f"only {n} usable records: the test set has {n_test} records (min({test_size}, n//3)) "
                     f"instead of {test_size}")
    pool = n - n_test
    sizes = sorted({int(s) for s in train_sizes if 2 <= int(s) <= pool})
    dropped = sorted({int(s) for s in train_sizes} - set(sizes))
    if dropped:
        notes.append(f"training sizes {dropped} dropped: the training pool has {pool} records")
    if not sizes:
        sizes = [pool]
        notes.append(f"no requested training size fits the pool; using the whole pool ({pool})")
    return n_test, sizes, notes


_WARM: set = set()


def _warm_up(space, predictors: Sequence[str]) -> None:
    """Fit each predictor once on a few records, so fit times exclude first-call costs."""
    key = (getattr(space, "name", id(space)), tuple(predictors))
    if key in _WARM:
        return
    rng = np.random.default_rng(0)
    X = space.canonicalize(rng.integers(0, space.cardinalities, size=(40, space.n_var)))
    y = rng.standard_normal(len(X))
    for name in predictors:
        build_predictor(name, space).fit(X, y).predict(X[:5])
    _WARM.add(key)


def _trial(seed: int, trial: int, space, X_pool, Y_pool, X_test, Y_test, sizes, predictors,
           share_bases: bool, keep_predictions: bool) -> dict[str, Any]:
    """One trial: every predictor x objective x size on nested random subsets of the pool."""
    _warm_up(space, predictors)
    rng = np.random.default_rng([seed, trial])
    order = rng.permutation(len(X_pool))
    n_pred, n_obj, n_size = len(predictors), Y_pool.shape[1], len(sizes)
    predictions = np.empty((n_pred, n_obj, n_size, len(X_test)))
    fit_s = np.full((n_pred, n_obj, n_size), np.nan)
    shared = {"ridge", "svr_rbf"} & set(predictors) if share_bases and "stacked" in predictors else set()
    for s, size in enumerate(sizes):
        idx = order[:size]
        for o in range(n_obj):
            y = Y_pool[idx, o]
            for p, name in enumerate(predictors):
                if name in shared:
                    continue
                start = time.perf_counter()
                model = build_predictor(name, space).fit(X_pool[idx], y)
                fit_s[p, o, s] = time.perf_counter() - start
                predictions[p, o, s] = model.predict(X_test)
                if name == "stacked" and shared:
                    for base, values in model.base_predictions(X_test).items():
                        if base in shared:
                            predictions[predictors.index(base), o, s] = values
    out = {
        "mape": np.stack([mape(Y_test[:, o], predictions[:, o].reshape(-1, len(X_test))).reshape(n_pred, n_size)
                          for o in range(n_obj)], axis=1),
        "tau": np.stack([kendall_tau(Y_test[:, o], predictions[:, o].reshape(-1, len(X_test))).reshape(n_pred, n_size)
                         for o in range(n_obj)], axis=1),
        "fit_s": fit_s,
    }
    if keep_predictions:
        out["predictions"] = predictions[:, :, -1]  # (predictor, objective, test) at the largest size
    return out


def evaluate_predictor_quality(
    frame: pd.DataFrame,
    space,
    *,
    objectives: Sequence[str] | None = None,
    predictors: Sequence[str] | None = None,
    train_sizes: Sequence[int] = DEFAULT_TRAIN_SIZES,
    test_size: int = DEFAULT_TEST_SIZE,
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    n_jobs: int = 1,
    share_bases: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Learning curves (MAPE %, Kendall tau) of each predictor on each objective.

    Uses the rows with status 'ok' and finite values for every chosen objective. A
    fixed, seeded test set of `test_size` records (min(test_size, n // 3) for small
    tables, noted in the result) is held out; each trial trains on nested random
    subsets of the rest, one per training size. With `share_bases`, ridge and
    svr_rbf are read off the stacked predictor's bases, which are exactly those
    models fitted on the same data, instead of being fitted twice (their fit times
    are then not reported). `n_jobs` worker processes run trials in parallel;
    `progress(done, trials)` is called as trials finish.
    """
    available = predictor_names()
    names = list(dict.fromkeys(predictors)) if predictors else [p for p in PREFERRED_ORDER if p in available] + [
        p for p in available if p not in PREFERRED_ORDER]
    unknown = [p for p in names if p not in available]
    if unknown:
        raise ValueError(f"unknown predictor(s) {unknown}; available: {', '.join(available)}")
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if test_size < 2:
        raise ValueError(f"test_size must be at least 2, got {test_size}")
    ok = frame[frame["status"] == OK]
    columns = list(dict.fromkeys(objectives)) if objectives else objective_columns(ok)
    missing = [c for c in columns if c not in ok.columns]
    if missing:
        raise ValueError(f"the measurement table has no column(s) {missing}; "
                         f"objective columns: {', '.join(objective_columns(frame)) or 'none'}")
    if not columns:
        raise ValueError("the measurement table has no objective columns")
    values = ok[columns].to_numpy(dtype=np.float64)
    usable = np.all(np.isfinite(values), axis=1)
    ok, values = ok[usable], values[usable]
    X = space.validate(encodings(ok)) if len(ok) else np.zeros((0, space.n_var), dtype=np.int64)
    n = len(X)
    n_test, sizes, notes = _split_sizes(n, test_size, train_sizes)

    order = np.random.default_rng(seed).permutation(n)
    test, pool = order[:n_test], order[n_test:]
    X_test, Y_test, X_pool, Y_pool = X[test], values[test], X[pool], values[pool]

    args = (space, X_pool, Y_pool, X_test, Y_test, sizes, names, share_bases)
    started = time.perf_counter()
    if n_jobs == 1 or trials == 1:
        stream = (_trial(seed, t, *args, keep_predictions=t == 0) for t in range(trials))
    else:
        from joblib import Parallel, delayed

        stream = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_trial)(seed, t, *args, keep_predictions=t == 0) for t in range(trials)
        )
    results = []
    for result in stream:
        results.append(result)
        if progress is not None:
            progress(len(results), trials)
    elapsed = time.perf_counter() - started

    mape_all = np.stack([r["mape"] for r in results])  # (trial, predictor, objective, size)
    tau_all = np.stack([r["tau"] for r in results])
    fit_all = np.stack([r["fit_s"] for r in results])

    def stat(a: np.ndarray, fn) -> list[float | None]:
        with warnings.catch_warnings():  # all-NaN entries (e.g. shared fit times) become null
            warnings.simplefilter("ignore", RuntimeWarning)
            v = fn(a, axis=0)
        return [None if not np.isfinite(x) else float(x) for x in np.atleast_1d(v)]

    per_objective: dict[str, Any] = {}
    for o, col in enumerate(columns):
        per_objective[col] = {
            name: {
                "mape_mean": stat(mape_all[:, p, o], np.nanmean),
                "mape_std": stat(mape_all[:, p, o], np.nanstd),
                "kendall_tau_mean": stat(tau_all[:, p, o], np.nanmean),
                "kendall_tau_std": stat(tau_all[:, p, o], np.nanstd),
                "fit_seconds_mean": stat(fit_all[:, p, o], np.nanmean),
            }
            for p, name in enumerate(names)
        }

    shown = "stacked" if "stacked" in names else names[0]
    p_shown = names.index(shown)
    scatter = {}
    for o, col in enumerate(columns):
        pred = results[0]["predictions"][p_shown, o]
        scatter[col] = {
            "actual": Y_test[:, o].tolist(),
            "predicted": pred.tolist(),
            "kendall_tau": float(kendall_tau(Y_test[:, o], pred)[0]),
            "mape": float(mape(Y_test[:, o], pred)[0]),
        }

    return {
        "protocol": "LINAS appendix C: fixed test set, random training subsets, mean over trials",
        "space": getattr(space, "name", ""),
        "n_records": int(len(frame)),
        "n_ok": int((frame["status"] == OK).sum()),
        "n_usable": int(n),
        "test_size": int(n_test),
        "test_size_requested": int(test_size),
        "test_size_reduced": bool(n_test < test_size),
        "pool_size": int(len(pool)),
        "train_sizes": sizes,
        "trials": int(trials),
        "seed": int(seed),
        "predictors": names,
        "objectives": columns,
        "shared_bases": sorted({"ridge", "svr_rbf"} & set(names)) if share_bases and "stacked" in names else [],
        "notes": notes,
        "elapsed_seconds": round(elapsed, 3),
        "results": per_objective,
        "predicted_vs_actual": {"predictor": shown, "train_size": sizes[-1], "trial": 0, "objectives": scatter},
    }


# ---- outputs ---------------------------------------------------------------------
def _subplots(n: int, width: float = 4.6, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return plt, fig, axes.flat


def learning_curve_plot(result: dict[str, Any], metric: str, path: Path) -> None:
    """One subplot per objective: mean +- std of `metric` vs training size, a line per predictor."""
    label = {"mape": "MAPE (%)", "kendall_tau": "Kendall tau"}[metric]
    plt, fig, axes = _subplots(len(result["objectives"]))
    sizes = result["train_sizes"]
    for ax, objective in zip(axes, result["objectives"]):
        for name in result["predictors"]:
            entry = result["results"][objective][name]
            mean = np.array([np.nan if v is None else v for v in entry[f"{metric}_mean"]])
            std = np.array([np.nan if v is None else v for v in entry[f"{metric}_std"]])
            ax.plot(sizes, mean, marker="o", ms=3, label=name)
            ax.fill_between(sizes, mean - std, mean + std, alpha=0.15)
        ax.set_title(objective)
        ax.set_xlabel("training records")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{label} on {result['test_size']} held-out records, mean over {result['trials']} trials")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predicted_vs_actual_plot(result: dict[str, Any], path: Path) -> None:
    info = result["predicted_vs_actual"]
    plt, fig, axes = _subplots(len(result["objectives"]), width=4.2, height=4.0)
    for ax, objective in zip(axes, result["objectives"]):
        data = info["objectives"][objective]
        actual, predicted = np.asarray(data["actual"]), np.asarray(data["predicted"])
        ax.scatter(actual, predicted, s=8, alpha=0.6)
        lo, hi = np.nanmin([actual.min(), predicted.min()]), np.nanmax([actual.max(), predicted.max()])
        ax.plot([lo, hi], [lo, hi], color="crimson", lw=1)
        ax.set_title(f"{objective}: tau = {data['kendall_tau']:.3f}")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{info['predictor']} trained on {info['train_size']} records, {result['test_size']} test records")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out: str | Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "predictor_quality.json",
        "mape": out / "mape.png",
        "kendall_tau": out / "kendall_tau.png",
        "predicted_vs_actual": out / "predicted_vs_actual.png",
    }
    paths["json"].write_text(json.dumps(result, indent=2))
    learning_curve_plot(result, "mape", paths["mape"])
    learning_curve_plot(result, "kendall_tau", paths["kendall_tau"])
    predicted_vs_actual_plot(result, paths["predicted_vs_actual"])
    return paths


# ---- command line -----------------------------------------------------------------
def load_measurements(path: str | Path) -> tuple[pd.DataFrame, Path]:
    """A measurements.parquet file, or a run directory holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / MEASUREMENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no measurement table at {str(path)!r}")
    return pd.read_parquet(path), path


def resolve_space(parquet: Path, supernet: str | None):
    """The search space: --supernet if given, else the run's config.json, else elastic_cnn."""
    from linas_lib.supernets import supernet_space

    config_path = parquet.parent / "config.json"
    if supernet is None and config_path.is_file():
        from linas_lib.config import config_from_dict

        config = config_from_dict(json.loads(config_path.read_text()))
        return supernet_space(config.supernet.name), f"{config_path} (supernet {config.supernet.name})"
    name = supernet or "elastic_cnn"
    return supernet_space(name), f"--supernet {name}"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"training sizes must be integers >= 2, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    return [v for v in re.split(r"[,\s]+", text.strip()) if v]


def _progress_printer() -> Callable[[int, int], None]:
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        if sys.stderr.isatty() or done == total or done % max(1, total // 10) == 0:
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (total - done)
            end = "\n" if done == total or not sys.stderr.isatty() else "\r"
            print(f"trial {done}/{total}, {elapsed:.0f} s elapsed, ~{eta:.0f} s left", end=end,
                  file=sys.stderr, flush=True)

    return report


def cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        frame, parquet = load_measurements(args.measurements)
        space, space_source = resolve_space(parquet, args.supernet)
        result = evaluate_predictor_quality(
            frame, space, objectives=args.objectives, predictors=args.predictors,
            train_sizes=args.train_sizes, test_size=args.test_size, trials=args.trials,
            seed=args.seed, n_jobs=args.jobs, progress=_progress_printer(),
        )
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"linas predictors evaluate: {exc}", file=sys.stderr)
        return 2
    result["source"] = str(parquet)
    result["space_source"] = space_source
    paths = write_outputs(result, args.out)
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"{result['n_usable']} records: test {result['test_size']}, pool {result['pool_size']}, "
          f"{result['trials']} trials, {result['elapsed_seconds']:.1f} s")
    largest = result["train_sizes"][-1]
    for objective in result["objectives"]:
        print(f"{objective} (train {largest}):")
        for name in result["predictors"]:
            entry = result["results"][objective][name]
            m, t = entry["mape_mean"][-1], entry["kendall_tau_mean"][-1]
            print(f"  {name:<11} MAPE {m if m is None else f'{m:7.3f}'} %   tau {t if t is None else f'{t:.3f}'}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register `predictors evaluate` on the `linas` parser's subparsers."""
    predictors = subparsers.add_parser("predictors", help="predictor tools")
    sub = predictors.add_subparsers(dest="predictors_command", required=True)
    ev = sub.add_parser(
        "evaluate",
        help="learning curves (MAPE, Kendall tau) of every predictor on a measurement table",
        description=__doc__.splitlines()[0],
    )
    ev.add_argument("measurements", type=Path, help="a measurements.parquet file or a run directory holding one")
    ev.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    ev.add_argument("--objectives", type=_name_list, default=None,
                    help="comma-separated objective columns (default: every measured objective)")
    ev.add_argument("--predictors", type=_name_list, default=None,
                    help=f"comma-separated predictors (default: all registered: {', '.join(PREFERRED_ORDER)}, ...)")
    ev.add_argument("--train-sizes", type=_int_list, default=list(DEFAULT_TRAIN_SIZES),
                    help="comma-separated training-set sizes (default 100,200,...,1000; clipped to the pool)")
    ev.add_argument("--test-size", type=int, default=DEFAULT_TEST_SIZE,
                    help="fixed test-set size (default 500; min(500, n//3) for small tables)")
    ev.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                    help="random training subsets per size (default 100; with 4 objectives and a 1,000-record "
                         "pool a trial costs roughly 10 CPU-seconds)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the train/test splits (default 0)")
    ev.add_argument("--supernet", default=None,
                    help="super-network whose search space encodes the table (default: the run's config.json, "
                         "else elastic_cnn)")
    ev.add_argument("--jobs", type=int, default=-1, help="parallel worker processes (default: all cores)")
    ev.set_defaults(func=cmd_evaluate)
    return predictors
