#!/usr/bin/env python
"""The search benchmark suite: every method on every problem, 5 seeds.

Problems (all measured through the ordinary measurement path, `supernet_measure`):
  nb201-<dataset>-latency / -params   NAS-Bench-201 (tabular, 15,625 cells), accuracy against
                                      the table's latency or against parameters
  synthetic-mbv3                      45 conditional genes, OFA-MobileNetV3-like (bench/plugins)
  aliased-cells                       8 genes whose branch order does not matter: 746,496 gene
                                      vectors name 7,392 networks (bench/plugins)
  elastic_cnn                         the built-in elastic CNN restricted to 1,200 sub-networks
                                      measured for real once (bench/elastic_cnn_pool.py): test
                                      accuracy and ONNX Runtime latency; budget 250 (a fifth of
                                      the pool)
Methods:
  linas        this project's LINAS, default settings (only the budget and seed are set)
  linas_paper  the paper's LINAS as published (bench/paper_linas.py)
  nsga2        NSGA-II measured directly (validation-only search, population 50)
  random       random search

The hypervolume is the library's: normalized to a fixed box per problem (the true front's
where the problem knows it, else the anchors'), in [0, 1], the same for every method and seed.

    .venv/bin/python bench/suite.py                 # `make bench`: everything, 5 seeds (about 30 min on 2 cores)
    .venv/bin/python bench/suite.py --smoke --out /tmp/s   # seconds, for the tests
    .venv/bin/python bench/suite.py --problems aliased-cells --methods linas,linas_paper --seeds 2
    .venv/bin/python bench/suite.py --methods linas --reuse bench/results/suite.json   # rerun LINAS only
    .venv/bin/python bench/suite.py --ablations --reuse bench/results/suite.json --seeds 2   # one default changed
        at a time: rank_crowding or pure ehvi selection, one-hot or ordinal features

Writes OUT/suite.json, OUT/suite.png and OUT/suite.md (which bench/reproduce.py puts into
SUMMARY.md); with --ablations OUT/suite_ablations.{json,md,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
PLUGINS = ROOT / "bench" / "plugins" / "synthetic_problems.py"
POOL_PLUGIN = ROOT / "bench" / "plugins" / "elastic_cnn_pool.py"
METHODS = ("linas", "linas_paper", "nsga2", "random")
# LINAS with one default changed, for `--ablations` (never part of the default run)
ABLATIONS = {
    "linas_rank_crowding": {"selection": "rank_crowding"},
    "linas_ehvi": {"selection": "ehvi"},
    "linas_onehot": {"predictors": {"accuracy": {"name": "svr_rbf", "params": {"features": "onehot"}},
                                    "latency": {"name": "ridge", "params": {"features": "onehot"}}}},
    "linas_ordinal": {"predictors": {"accuracy": {"name": "svr_rbf", "params": {"features": "ordinal+derived"}},
                                     "latency": {"name": "ridge", "params": {"features": "ordinal+derived"}}}},
}
CHECKPOINTS = (100, 250, 500)
TARGETS = {"vs_nsga2": 0.30, "vs_random": 0.10}


def problem_config(key: str, seed: int) -> dict[str, Any]:
    tabular = [{"name": "table", "backend": "tabular"}]
    if key.startswith("nb201-"):
        _, dataset, second = key.split("-")
        return {"name": key, "seed": seed, "supernet": {"name": "nasbench201", "params": {"dataset": dataset}},
                "objectives": ["accuracy", second], "targets": tabular if second == "latency" else []}
    if key == "elastic_cnn":
        return {"name": key, "seed": seed, "supernet": {"name": "elastic_cnn_pool", "plugin_file": str(POOL_PLUGIN)},
                "objectives": ["accuracy", "latency"], "targets": tabular}
    name = {"synthetic-mbv3": "synthetic_mbv3", "aliased-cells": "aliased_cells"}[key]
    return {"name": key, "seed": seed, "supernet": {"name": name, "plugin_file": str(PLUGINS)},
            "objectives": ["accuracy", "latency"], "targets": tabular}


PROBLEMS = tuple(f"nb201-{d}-{o}" for d in ("cifar10", "cifar100", "imagenet") for o in ("latency", "params")) + (
    "synthetic-mbv3", "aliased-cells", "elastic_cnn")
# a pool of real measurements is small: a budget beyond a fifth of it would leave little to search
PROBLEM_BUDGETS = {"elastic_cnn": 250}


class Problem:
    """One problem: its config, plugin, measurement function and fixed normalization."""

    def __init__(self, key: str):
        from linas_lib.config import config_from_dict
        from linas_lib.measurements import concat
        from linas_lib.objectives import supernet_measure
        from linas_lib.search import core
        from linas_lib.supernets import load_supernet

        self.key = key
        self.config = config_from_dict(problem_config(key, 0))
        self.net = load_supernet(self.config.supernet, progress=False)
        self.space = self.net.space
        self.objectives = self.config.resolved_objectives()
        self._measure = supernet_measure(self.config, self.net)
        anchors = self.space.anchors()
        frame = self._measure(0, anchors) if len(anchors) else concat()
        self.norm = core.normalization(self.config, frame)
        self.hv_optimum = core.hypervolume_optimum(self.config)

    def measure(self, iteration: int, X: np.ndarray, predictions=None):
        return self._measure(iteration, X, predictions)


_PROBLEMS: dict[str, Problem] = {}


def get_problem(key: str) -> Problem:
    if key not in _PROBLEMS:
        _PROBLEMS[key] = Problem(key)
    return _PROBLEMS[key]


def hv_curve(F: np.ndarray, norm) -> np.ndarray:
    """Hypervolume of everything measured after each measurement (rows of F, min-form; NaN: failed)."""
    from linas_lib.pareto import hypervolume, non_dominated_mask

    out, front = np.zeros(len(F)), np.zeros((0, F.shape[1]))
    hv = 0.0
    for i, f in enumerate(F):
        if np.all(np.isfinite(f)) and not np.any(np.all(front <= f, axis=1)):
            front = np.vstack([front, f])
            front = front[non_dominated_mask(front)]
            hv = hypervolume(front, norm)
        out[i] = hv
    return out


def run_one(problem_key: str, method: str, seed: int, budget: int, search: dict | None = None) -> dict[str, Any]:
    """One search; `search` overrides LINAS settings (ablations only: the suite runs defaults)."""
    from linas_lib.config import config_from_dict
    from linas_lib.measurements import objective_matrix

    problem = get_problem(problem_key)
    space, objectives = problem.space, problem.objectives
    keys_measured: list[str] = []
    values: list[np.ndarray] = []
    search_cpu: list[float] = []
    clock = {"last": None}

    def record(frame, X):
        from linas_lib.measurements import successful

        ok = successful(frame, [o.name for o in objectives])
        by_key = dict(zip(ok["subnet_id"], objective_matrix(ok, objectives))) if len(ok) else {}
        for k in space.keys(X):  # in the order asked; the true network identity
            keys_measured.append(k)
            values.append(by_key.get(k, np.full(len(objectives), np.nan)))

    def measure(iteration, X, predictions=None):
        now = time.process_time()
        if clock["last"] is not None:
            search_cpu.append(now - clock["last"])
        frame = problem.measure(iteration, X, predictions)
        record(frame, X)
        clock["last"] = time.process_time()
        return frame

    t0 = time.perf_counter()
    if method == "linas_paper":
        sys.path.insert(0, str(ROOT / "bench"))
        import paper_linas

        def measure_raw(X):
            measure(len(search_cpu), X)
            F = np.array(values[-len(X):])
            return np.column_stack([o.from_min(F[:, j]) for j, o in enumerate(objectives)]), np.all(np.isfinite(F), 1)

        signs = np.array([o.sign for o in objectives])
        paper_linas.run(measure_raw, space.cardinalities, signs, budget, seed)
    else:
        from linas_lib.search.loop import run_linas, run_validation

        data = problem_config(problem_key, seed)
        if method == "linas" or method in ABLATIONS:
            data["search"] = {"mode": "linas", "evaluations": budget, **ABLATIONS.get(method, {}), **(search or {})}
            runner = run_linas
        else:
            data["search"] = {"mode": "validation", "algorithm": method, "population": 50, "evaluations": budget}
            runner = run_validation
        runner(config_from_dict(data), space, measure, progress=False)
    wall = time.perf_counter() - t0
    F = np.array(values)
    seen, repeats = set(), 0
    for k in keys_measured:
        repeats += k in seen
        seen.add(k)
    return {"problem": problem_key, "method": method, "seed": seed, "budget": budget, "evaluations": len(F),
            "repeats": repeats, "wall_s": round(wall, 2),
            "search_cpu_s": [round(c, 4) for c in search_cpu],
            "curve": [round(float(v), 6) for v in hv_curve(F, problem.norm)]}


def _task(args):
    return run_one(*args)


def evals_to_reach(curve, threshold) -> int | None:
    hit = np.flatnonzero(np.asarray(curve) >= threshold - 1e-12)
    return int(hit[0]) + 1 if len(hit) else None


def _stat(values: list) -> dict[str, Any]:
    if any(v is None for v in values):
        return {"mean": None, "per_seed": values, "reached": sum(v is not None for v in values)}
    return {"mean": float(np.mean(values)), "per_seed": values,
            "se": float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0}


def aggregate(runs: list[dict], budget: int) -> dict[str, Any]:
    problems: dict[str, Any] = {}
    for key in sorted({r["problem"] for r in runs}):
        mine = [r for r in runs if r["problem"] == key]
        budget = min(r["budget"] for r in mine)  # a problem may have its own (PROBLEM_BUDGETS)
        present = [m for m in (*METHODS, *ABLATIONS) if any(r["method"] == m for r in mine)]
        by = {m: sorted([r for r in mine if r["method"] == m], key=lambda r: r["seed"]) for m in present}
        final = {m: float(np.mean([r["curve"][-1] for r in rs])) for m, rs in by.items() if rs}
        methods = {}
        for m, rs in by.items():
            if not rs:
                continue
            entry: dict[str, Any] = {}
            for base in ("nsga2", "random"):
                if base in final:
                    entry[f"evals_to_{base}_hv"] = {**_stat([evals_to_reach(r["curve"], final[base]) for r in rs]),
                                                    "threshold": final[base], "budget": budget}
            entry["hv_at"] = {str(c): _stat([r["curve"][min(c, len(r["curve"])) - 1] for r in rs])
                              for c in CHECKPOINTS if c <= budget}
            entry["repeats"] = _stat([r["repeats"] for r in rs])
            cpu = [float(np.mean(r["search_cpu_s"])) if r["search_cpu_s"] else 0.0 for r in rs]
            entry["cpu_s_per_iteration"] = _stat(cpu)
            entry["mean_curve"] = np.mean([r["curve"] for r in rs], axis=0).round(6).tolist()
            methods[m] = entry
        problem = get_problem(key)
        out = {"methods": methods, "budget": budget, "hv_optimum": problem.hv_optimum,
               "normalization": problem.norm.to_dict()}
        out["targets"] = _targets(methods, budget)
        problems[key] = out
    return problems


def _targets(methods: dict[str, Any], budget: int) -> dict[str, Any]:
    if "linas" not in methods:
        return {}
    ours = methods["linas"]
    out: dict[str, Any] = {}
    for base, limit in (("nsga2", TARGETS["vs_nsga2"]), ("random", TARGETS["vs_random"])):
        if base not in methods:
            continue
        own = evals_to_reach(methods[base]["mean_curve"], methods[base]["mean_curve"][-1])
        mine = ours[f"evals_to_{base}_hv"]["mean"]
        ratio = None if mine is None or not own else mine / own
        out[f"vs_{base}"] = {"ratio": ratio, "limit": limit, "met": ratio is not None and ratio <= limit}
    if "linas_paper" in methods and "250" in ours["hv_at"]:
        a, b = ours["hv_at"]["250"]["mean"], methods["linas_paper"]["hv_at"]["250"]["mean"]
        out["hv250_vs_paper"] = {"linas": a, "linas_paper": b, "met": a >= b}
    out["repeats"] = {"value": ours["repeats"]["mean"], "met": ours["repeats"]["mean"] == 0}
    if "nsga2" in methods:
        lin, ns = np.asarray(ours["mean_curve"]), np.asarray(methods["nsga2"]["mean_curve"])
        n = min(len(lin), len(ns))
        worst = float(np.min(lin[99:n] - ns[99:n])) if n > 99 else None
        out["never_below_nsga2"] = {"min_gap_from_100": worst, "met": worst is None or worst >= -1e-9}
    return out


def machine() -> dict[str, Any]:
    import sklearn

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
            "load_average": list(os.getloadavg())}


def plot(problems: dict[str, Any], out: Path, name: str = "suite") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    keys = list(problems)
    cols = 4
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for m, entry in problems[key]["methods"].items():
            curve = entry["mean_curve"]
            ax.plot(np.arange(1, len(curve) + 1), curve, label=m)
        if problems[key]["hv_optimum"]:
            ax.axhline(problems[key]["hv_optimum"], color="k", lw=0.6, ls=":", label="true front")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("measurements")
        ax.set_ylabel("normalized HV")
        lo = min(min(e["mean_curve"][49:] or [0]) for e in problems[key]["methods"].values())
        ax.set_ylim(max(0.0, lo - 0.02), None)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path.name)
    return files


def summary_markdown(result: dict[str, Any]) -> str:
    def f(v, nd=3):
        return "—" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)

    title = "Ablations of LINAS's defaults (`bench/suite.py --ablations`)" if result.get("ablations") \
        else "Search benchmark suite (`bench/suite.py`)"
    lines = [f"## {title}", "",
             f"{len(result['seeds'])} seeds, budget {result['budget']} "
             f"({', '.join(f'{k} {v}' for k, v in PROBLEM_BUDGETS.items())}); normalized hypervolume (fixed box per "
             f"problem, in [0, 1]); machine load {result['machine']['load_average']} at the start."
             + (f" Reused from an earlier run of the suite (their code did not change): "
                + "; ".join(part for part in (
                    f"the runs of {', '.join(result['reused']['methods'])}" if result['reused'].get('methods') else "",
                    f"every run on {', '.join(result['reused']['problems'])}" if result['reused'].get('problems') else "")
                    if part) + "." if result.get("reused") else ""), "",
             "| problem | method | evals to NSGA-II's HV | evals to random's HV | HV@100 | HV@250 | HV@500 | repeats | "
             "search CPU s/iter |", "|---|---|---|---|---|---|---|---|---|"]
    for key, p in result["problems"].items():
        for m, e in p["methods"].items():
            hv = e["hv_at"]
            cells = [f(e.get("evals_to_nsga2_hv", {}).get("mean"), 0), f(e.get("evals_to_random_hv", {}).get("mean"), 0),
                     *[f(hv.get(str(c), {}).get("mean")) for c in CHECKPOINTS], f(e["repeats"]["mean"], 1),
                     f(e["cpu_s_per_iteration"]["mean"], 2)]
            lines.append(f"| {key} | {m} | " + " | ".join(cells) + " |")
    if result.get("ablations"):
        return "\n".join(lines) + "\n"
    lines += ["", "Targets (mean over seeds; LINAS default settings):", "",
              "| problem | vs NSGA-II (≤ 0.30) | vs random (≤ 0.10) | HV@250 ≥ paper | repeats = 0 | never below NSGA-II |",
              "|---|---|---|---|---|---|"]
    for key, p in result["problems"].items():
        t = p["targets"]
        if not t:
            continue

        def mark(entry, value):
            return f"{value} {'✓' if entry.get('met') else '✗'}"
        lines.append(f"| {key} | {mark(t.get('vs_nsga2', {}), f(t.get('vs_nsga2', {}).get('ratio'), 2))} | "
                     f"{mark(t.get('vs_random', {}), f(t.get('vs_random', {}).get('ratio'), 2))} | "
                     f"{mark(t.get('hv250_vs_paper', {}), f(t.get('hv250_vs_paper', {}).get('linas')))} | "
                     f"{mark(t.get('repeats', {}), f(t.get('repeats', {}).get('value'), 1))} | "
                     f"{mark(t.get('never_below_nsga2', {}), f(t.get('never_below_nsga2', {}).get('min_gap_from_100')))} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny budget, for the tests")
    parser.add_argument("--ablations", action="store_true",
                        help="LINAS with one default changed at a time (selection, features, population); "
                             "writes suite_ablations.json / .md / .png")
    parser.add_argument("--reuse", type=Path, help="a previous suite.json: its runs not rerun now (other methods, "
                                                   "other problems; same seeds and budget) join the results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    problems = [p for p in args.problems.split(",") if p]
    methods = [m for m in args.methods.split(",") if m]
    if args.ablations:
        methods = list(ABLATIONS)  # the defaults' runs come from --reuse
    unknown = sorted(set(problems) - set(PROBLEMS)) + sorted(set(methods) - set(METHODS) - set(ABLATIONS))
    if unknown:
        parser.error(f"unknown problem(s) or method(s) {unknown}; problems: {', '.join(PROBLEMS)}; "
                     f"methods: {', '.join(METHODS)}")
    if args.smoke:
        args.budget, args.seeds = min(args.budget, 60), min(args.seeds, 1)
    seeds = list(range(args.seeds))
    tasks = [(p, m, s, min(args.budget, PROBLEM_BUDGETS.get(p, args.budget))) for p in problems for m in methods
             for s in seeds]
    started, load = time.time(), list(os.getloadavg())
    cpu0 = time.process_time()
    runs = []
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for r in pool.map(_task, tasks):
                runs.append(r)
                print(f"{r['problem']:24s} {r['method']:12s} seed {r['seed']}  HV {r['curve'][-1]:.4f}  "
                      f"repeats {r['repeats']:3d}  {r['wall_s']:.1f} s", flush=True)
    else:
        for t in tasks:
            runs.append(run_one(*t))
    reused = []
    if args.reuse:
        previous = json.loads(args.reuse.read_text())
        # every run not rerun now: other methods on these problems, and every method on other problems
        reused = [r for r in previous["runs"] if (r["method"] not in methods or r["problem"] not in problems)
                  and r["seed"] in seeds and r["budget"] == min(args.budget, PROBLEM_BUDGETS.get(r["problem"], args.budget))]
        runs += reused
    result = {"benchmark": "suite", "ablations": args.ablations, "budget": args.budget, "seeds": seeds, "methods": methods,
              "reused": {"from": str(args.reuse), "runs": len(reused),
                         "methods": sorted({r["method"] for r in reused if r["problem"] in problems}),
                         "problems": sorted({r["problem"] for r in reused if r["problem"] not in problems})}
              if args.reuse else None,
              "machine": {**machine(), "load_average": load, "load_average_after": list(os.getloadavg())},
              "elapsed_s": round(time.time() - started, 1), "parent_cpu_s": round(time.process_time() - cpu0, 1),
              "targets": TARGETS, "problems": aggregate(runs, args.budget), "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "suite_ablations" if args.ablations else "suite"
    result["plots"] = plot(result["problems"], args.out, name)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (args.out / f"{name}.md").write_text(summary_markdown(result))
    print(summary_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
