#!/usr/bin/env python
"""One LINAS iteration's search overhead, and whether faster settings find the same front.

An iteration past the first, minus the measurements: fit the predictors (accuracy:
svr_rbf, latency: ridge) on every record so far, run the inner NSGA-II on them for
20,000 predictor evaluations, and select the next population (core.select_unmeasured).
Records are synthetic but shaped like real ones on the elastic_cnn space: accuracy a
saturating, interacting function of the active genes plus noise, latency additive in
the active genes plus noise (fixed seeds).

Settings compared on the same predictors:
  nsga2 50x400        the vectorized NSGA-II (default), population 50, 400 generations
  nsga2_pymoo 50x400  pymoo's Population-based NSGA-II, same settings
  nsga2 200x100       vectorized, population 200, 100 generations

Per records count: median / min over repeats of the total, a breakdown (predictor
fit; predict calls inside the search; algorithm = the rest of the search, of which
duplicate elimination is timed inside the searcher; selection), and the normalized
hypervolume of the predicted front each run reaches, normalized per records count by
the union of every run's front, so the settings can be compared.

Population sweep: at POPULATION_RECORDS records, the vectorized NSGA-II with inner
population 50 to 1,000 (20,000 evaluations each, so fewer generations as it grows).

    .venv/bin/python bench/search_overhead.py            # 5 repeats (3 for pymoo and the sweep)
    .venv/bin/python bench/search_overhead.py --quick    # 2 repeats (1 for pymoo and the sweep)

Writes bench/results/search_overhead.json, bench/results/search_overhead.png and
bench/results/search_overhead_population.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linas_lib.config import config_from_dict  # noqa: E402
from linas_lib.measurements import latency_column, make_row, to_frame  # noqa: E402
from linas_lib.pareto import Normalization, hypervolume, non_dominated_mask  # noqa: E402
from linas_lib.predictors.features import ActiveOneHot  # noqa: E402
from linas_lib.search import core  # noqa: E402
from linas_lib.supernets import supernet_space  # noqa: E402

SIZES = (100, 500, 1000, 5000)
POPULATIONS = (50, 100, 200, 500, 1000)  # inner NSGA-II population sweep
POPULATION_RECORDS = 500
EVALUATIONS = 20_000
SELECT = 25  # sub-networks measured per iteration (the config default)
DATA_SEED = 0  # the synthetic objective functions
RECORDS_SEED = 1  # which sub-networks were "measured"
SEARCH_SEED = 1000  # + repeat index: the inner search's seed
# The default search (bootstrap ensembles + EHVI selection) must stay within 1.5 s of CPU
# per iteration at 500 records; the others choose by the paper's rank and crowding.
TARGET = {"records": 500, "setting": "default (ehvi_rank)", "limit_s": 1.5, "clock": "cpu"}
SETTINGS = (
    {"label": "default (ehvi_rank)", "algorithm": "nsga2", "population": 50, "selection": "ehvi_rank"},
    {"label": "nsga2 50x400", "algorithm": "nsga2", "population": 50, "selection": "rank_crowding"},
    {"label": "nsga2_pymoo 50x400", "algorithm": "nsga2_pymoo", "population": 50, "selection": "rank_crowding"},
    {"label": "nsga2 200x100", "algorithm": "nsga2", "population": 200, "selection": "rank_crowding"},
)
PARTS = ("fit", "predict", "algorithm", "selection")  # wall seconds; "cpu_total" is the process CPU of all four


# ---- synthetic records ---------------------------------------------------------------
def synthetic_frame(space, n: int):
    """`n` distinct sub-networks with accuracy and latency shaped like measured ones."""
    fn = np.random.default_rng(DATA_SEED)
    features = ActiveOneHot(space).fit(np.zeros((1, space.n_var), np.int64))
    n_feat = features.n_features_out_
    option = np.concatenate([np.arange(c) for c in space.cardinalities]).astype(float)  # bigger index: bigger op
    gain = fn.uniform(0.2, 1.0, n_feat) * (0.5 + option)
    inter = fn.normal(0.0, 0.25, (n_feat, 3))
    cost = fn.uniform(0.02, 0.12, n_feat) * (1.0 + option) ** 1.3

    X = space.sample(n, RECORDS_SEED)
    phi = features.transform(X)
    noise = np.random.default_rng(RECORDS_SEED + 1)
    z = (phi @ gain - 18.0) / 4.0 + 0.5 * np.tanh(phi @ inter).sum(axis=1)
    accuracy = 0.55 + 0.35 / (1.0 + np.exp(-z)) + noise.normal(0.0, 0.004, n)
    latency = 0.8 + phi @ cost + noise.normal(0.0, 0.03, n)
    column = latency_column("cpu-ort")
    rows = [
        make_row(subnet_id=k, encoding=x, iteration=0, values={"accuracy": float(a), column: float(t)}, timestamp=0.0)
        for x, k, a, t in zip(X, space.keys(X), accuracy, latency)
    ]
    return to_frame(rows)


# ---- instrumentation -------------------------------------------------------------------
class TimedPredictor:
    """Delegates predict() and adds its wall time to a shared clock."""

    def __init__(self, inner, clock: dict):
        self.inner, self.clock = inner, clock

    def predict(self, X):
        t0 = time.perf_counter()
        try:
            return self.inner.predict(X)
        finally:
            self.clock["predict"] += time.perf_counter() - t0
            self.clock["calls"] += 1


class CaptureSearcher:
    """Wraps core.build_searcher for one run to keep the searcher it builds (for its counters)."""

    def __init__(self):
        self.searcher = None

    def __enter__(self):
        self._original = core.build_searcher

        def build(*args, **kwargs):
            self.searcher = self._original(*args, **kwargs)
            return self.searcher

        core.build_searcher = build
        return self

    def __exit__(self, *exc):
        core.build_searcher = self._original


def config_for(setting: dict):
    return config_from_dict({
        "name": "bench",
        "search": {
            "selection": setting.get("selection", "rank_crowding"),
            "predictors": {"accuracy": {"name": "svr_rbf"}, "latency": {"name": "ridge"}},
            "inner": {"algorithm": setting["algorithm"], "evaluations": EVALUATIONS,
                      "population": setting["population"], "crossover": 0.9, "mutation": 0.02},
        },
    })


def one_iteration(space, frame, setting: dict, seed: int) -> dict:
    config = config_for(setting)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    predictors = core.fit_predictors(config, space, frame)
    t_fit = time.perf_counter() - t0

    clock = {"predict": 0.0, "calls": 0}
    timed = {name: TimedPredictor(p, clock) for name, p in predictors.items()}
    with CaptureSearcher() as capture:
        t0 = time.perf_counter()
        X, F = core.run_inner_search(config, space, timed, seed)
        t_inner = time.perf_counter() - t0
    searcher = capture.searcher

    t0 = time.perf_counter()
    objectives = config.resolved_objectives()
    measured = core.objective_matrix(core.successful(frame), objectives)
    core.select_unmeasured(space, X, F, set(frame["subnet_id"]), SELECT, seed, config.search.selection,
                           predictors, objectives, measured)
    t_select = time.perf_counter() - t0
    cpu_total = time.process_time() - cpu0

    front = F[non_dominated_mask(F)]
    return {
        "seed": seed,
        "total": t_fit + t_inner + t_select,
        "cpu_total": cpu_total,
        "fit": t_fit,
        "predict": clock["predict"],
        "algorithm": t_inner - clock["predict"],
        "dedup": float(getattr(searcher, "dedup_seconds", float("nan"))),
        "selection": t_select,
        "predict_calls": clock["calls"],
        "generations": int(getattr(searcher, "generations", 0)),
        "evaluations": int(getattr(searcher, "spent", 0)),
        "returned": int(len(X)),
        "revisits": int(getattr(searcher, "revisits", 0)),
        "front": np.round(front, 6).tolist(),
    }


# ---- report ------------------------------------------------------------------------------
def machine_info() -> dict:
    import pymoo
    import sklearn

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pymoo": pymoo.__version__,
        "sklearn": sklearn.__version__,
    }


def summarize(runs: list[dict]) -> dict:
    keys = ("total", "cpu_total", *PARTS, "dedup")
    return {
        "median": {k: statistics.median(r[k] for r in runs) for k in keys},
        "min": {k: min(r[k] for r in runs) for k in keys},
    }


def add_hypervolumes(entries: list[dict]) -> None:
    """Normalized hypervolume of each run's predicted front; one normalization per records count."""
    for size in {e["records"] for e in entries}:
        group = [e for e in entries if e["records"] == size]
        union = np.vstack([np.asarray(r["front"]) for e in group for r in e["runs"]])
        norm = Normalization.from_values(union[non_dominated_mask(union)])
        for e in group:
            hvs = [hypervolume(np.asarray(r["front"]), norm) for r in e["runs"]]
            for r, hv in zip(e["runs"], hvs):
                r["hypervolume"] = hv
            e["hypervolume"] = {"mean": float(np.mean(hvs)), "std": float(np.std(hvs)), "values": hvs}
            e["normalization"] = norm.to_dict()


def plot(entries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({e["records"] for e in entries})
    labels = [s["label"] for s in SETTINGS if any(e["setting"] == s["label"] for e in entries)]
    colors = {"fit": "#4c72b0", "predict": "#dd8452", "algorithm": "#55a868", "selection": "#c44e52"}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        for i, size in enumerate(sizes):
            e = next((e for e in entries if e["records"] == size and e["setting"] == label), None)
            if e is None:
                continue
            bottom = 0.0
            for part in PARTS:
                v = e["median"][part]
                ax.bar(i + (j - (len(labels) - 1) / 2) * width, v, width * 0.95, bottom=bottom, color=colors[part],
                       edgecolor="black", linewidth=0.3, hatch=("", "//", "..")[j % 3])
                bottom += v
            ax.text(i + (j - (len(labels) - 1) / 2) * width, bottom, f"{bottom:.1f}", ha="center", va="bottom",
                    fontsize=7)
    ax.axhline(TARGET["limit_s"], color="grey", ls="--", lw=1)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlabel("measured records")
    ax.set_ylabel("median seconds per iteration")
    ax.set_title("LINAS iteration overhead (bars: " + ", ".join(f"{('plain', 'hatched //', 'dotted')[j % 3]}: {label}"
                 for j, label in enumerate(labels)) + ")", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[p]) for p in PARTS]
    ax.legend(handles, PARTS, fontsize=8, loc="upper left")
    for j, label in enumerate(labels):
        means = [next((e["hypervolume"]["mean"] for e in entries if e["records"] == s and e["setting"] == label), np.nan)
                 for s in sizes]
        stds = [next((e["hypervolume"]["std"] for e in entries if e["records"] == s and e["setting"] == label), np.nan)
                for s in sizes]
        bx.errorbar(np.arange(len(sizes)) + (j - 1) * 0.06, means, yerr=stds, marker="o", capsize=3, label=label)
    bx.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    bx.set_xlabel("measured records")
    bx.set_ylabel("normalized hypervolume of the predicted front")
    bx.set_title("front quality on the same predictors (mean ± std over seeds)", fontsize=9)
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_population(sweep: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    pops = [e["population"] for e in sweep]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    bottom = np.zeros(len(sweep))
    colors = {"fit": "#4c72b0", "predict": "#dd8452", "algorithm": "#55a868", "selection": "#c44e52"}
    for part in PARTS:
        v = np.array([e["median"][part] for e in sweep])
        ax.bar(range(len(sweep)), v, bottom=bottom, color=colors[part], label=part)
        bottom += v
    ax.set_xticks(range(len(sweep)), [f"{p}\n({e['generations']} gen)" for p, e in zip(pops, sweep)])
    ax.set_xlabel("inner NSGA-II population (20,000 evaluations)")
    ax.set_ylabel("median seconds per iteration")
    ax.set_title(f"LINAS iteration overhead at {sweep[0]['records']} records", fontsize=9)
    ax.legend(fontsize=8)
    bx.errorbar(range(len(sweep)), [e["hypervolume"]["mean"] for e in sweep],
                yerr=[e["hypervolume"]["std"] for e in sweep], marker="o", capsize=3)
    bx.set_xticks(range(len(sweep)), [str(p) for p in pops])
    bx.set_xlabel("inner NSGA-II population")
    bx.set_ylabel("normalized hypervolume of the predicted front")
    bx.set_title("front quality on the same predictors", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats (1 for pymoo) instead of 5 (3)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="records counts")
    parser.add_argument("--populations", type=int, nargs="*", default=list(POPULATIONS),
                        help=f"inner NSGA-II populations swept at {POPULATION_RECORDS} records (none: skip the sweep)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    repeats = {"nsga2": 2, "nsga2_pymoo": 1} if args.quick else {"nsga2": 5, "nsga2_pymoo": 3}

    space = supernet_space("elastic_cnn")
    load_before = os.getloadavg()
    entries = []
    for size in args.sizes:
        frame = synthetic_frame(space, size)
        for setting in SETTINGS:
            runs = [one_iteration(space, frame, setting, SEARCH_SEED + r) for r in range(repeats[setting["algorithm"]])]
            entry = {"records": size, "setting": setting["label"], **setting, "runs": runs, **summarize(runs)}
            entries.append(entry)
            m = entry["median"]
            print(f"  {size:5d} records  {setting['label']:<19} total {m['total']:6.2f}s "
                  f"(fit {m['fit']:.2f}, predict {m['predict']:.2f}, algorithm {m['algorithm']:.2f}, "
                  f"dedup {m['dedup']:.2f}, selection {m['selection']:.2f})", flush=True)
    add_hypervolumes(entries)

    sweep = []
    if args.populations:
        frame = synthetic_frame(space, POPULATION_RECORDS)
        sweep_repeats = 1 if args.quick else 3
        for population in args.populations:
            setting = {"label": f"nsga2 {population}x{EVALUATIONS // population}", "algorithm": "nsga2",
                       "population": population}
            runs = [one_iteration(space, frame, setting, SEARCH_SEED + r) for r in range(sweep_repeats)]
            entry = {"sweep": "population", "records": POPULATION_RECORDS, "setting": setting["label"], **setting,
                     "generations": int(statistics.median(r["generations"] for r in runs)), "runs": runs,
                     **summarize(runs)}
            sweep.append(entry)
            m = entry["median"]
            print(f"  population {population:5d} ({entry['generations']} generations) total {m['total']:6.2f}s "
                  f"(fit {m['fit']:.2f}, predict {m['predict']:.2f}, algorithm {m['algorithm']:.2f}, "
                  f"selection {m['selection']:.2f})", flush=True)
        add_hypervolumes(sweep)
        plot_population(sweep, args.out / "search_overhead_population.png")
    load_after = os.getloadavg()

    target = next((e for e in entries if e["records"] == TARGET["records"] and e["setting"] == TARGET["setting"]), None)
    result = {
        "benchmark": "search_overhead",
        "quick": args.quick,
        "machine": {**machine_info(), "load_average_before": load_before, "load_average_after": load_after},
        "protocol": {
            "space": "elastic_cnn", "objectives": ["accuracy (max)", "latency@cpu-ort (min)"],
            "predictors": {"accuracy": "svr_rbf", "latency": "ridge"}, "inner_evaluations": EVALUATIONS,
            "crossover": 0.9, "mutation": 0.02, "selected_per_iteration": SELECT, "repeats": repeats,
            "seeds": {"data": DATA_SEED, "records": RECORDS_SEED, "search": f"{SEARCH_SEED} + repeat"},
            "hypervolume": "of each run's predicted non-dominated front; normalization per records count from the "
                           "union of all runs' fronts (margin 5%), reference point 1.1",
        },
        "target": {**TARGET, "median_total_s": target["median"]["total"] if target else None,
                   "median_cpu_s": target["median"]["cpu_total"] if target else None,
                   "met": bool(target and target["median"]["cpu_total"] <= TARGET["limit_s"])},
        "results": entries,
        "population_sweep": sweep,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_overhead.json").write_text(json.dumps(result, indent=1))
    plot(entries, args.out / "search_overhead.png")

    print()
    header = f"{'records':>7}  {'setting':<19} {'median':>7} {'min':>6}  {'fit':>5} {'predict':>7} {'algo':>5} " \
             f"{'dedup':>5} {'select':>6}  {'gens':>4}  {'hypervolume (seeds)':>20}"
    print(header)
    print("-" * len(header))
    for e in entries:
        m, hv = e["median"], e["hypervolume"]
        gens = statistics.median(r["generations"] for r in e["runs"])
        print(f"{e['records']:7d}  {e['setting']:<19} {m['total']:7.2f} {e['min']['total']:6.2f}  {m['fit']:5.2f} "
              f"{m['predict']:7.2f} {m['algorithm']:5.2f} {m['dedup']:5.2f} {m['selection']:6.2f}  {gens:4.0f}  "
              f"{hv['mean']:.4f} ± {hv['std']:.4f} ({len(hv['values'])})")
    print("hypervolume: mean ± std over seeds; a difference within about two std is seed noise, "
          "not a property of the setting")
    if target:
        verdict = "met" if result["target"]["met"] else "NOT met"
        print(f"\ntarget: median CPU <= {TARGET['limit_s']} s at {TARGET['records']} records with "
              f"{TARGET['setting']}: {target['median']['cpu_total']:.2f} s CPU "
              f"({target['median']['total']:.2f} s wall), {verdict}")
    cores = os.cpu_count() or 1
    if max(load_before[0], load_after[0]) > cores:
        print(f"note: load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {cores} cores; timings are inflated")
    print(f"wrote {args.out / 'search_overhead.json'} and {args.out / 'search_overhead.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
