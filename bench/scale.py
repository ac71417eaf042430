#!/usr/bin/env python
"""LINAS at scale: each per-iteration cost against the records measured so far.

A table of N measured sub-networks of `synthetic_mbv3` (bench/plugins/synthetic_problems.py:
45 conditional genes, values a fixed function of the network, so no measuring is
needed) in iterations of P, with T latency targets, and one more iteration of P told.
Per point, each cost timed once, in a process of its own (one BLAS thread):

  fit_s           core.fit_predictors: the default predictors (svr_rbf for accuracy, ridge
                  per latency) as ehvi_rank's 8-member bootstrap ensembles, on at most
                  search.training_records (30,000) of the records, sampled uniformly
  inner_s         the inner NSGA-II searches of core.next_population (20,000 predictor
                  evaluations per search group; T targets: T groups)
  select_s        the rest of next_population: choosing the P unmeasured (ehvi_rank), predicting them
  table_write_s   telling the iteration's P rows: concat into the table + RunStore.save_measurements
                  (an appended part); compact_s: the compaction every 16th iteration does
  table_load_s    RunStore.load_measurements (what a resume or a pipeline stage reads)
  cache_lookup_s  EvaluationCache.lookup of a population of P (half cached) in every scope
                  (quality and one per target) of a cache holding N entries per scope
  summary_s       core.summarize of the table (hypervolume history, fronts, per target)
  warm_start_s    a recurring run over the finished N-row run: SearchRun.start (archive,
                  previous table) + ask() (the previous fronts) + the first population's look-ups
  peak_mib        the process's peak resident memory over the timed steps (VmHWM, reset
                  after the setup; the table and cache built in the setup stay resident)

Each cost is given as wall and CPU seconds, with the 1-minute load average when it ran.
The predictors' module is imported before the clock starts (once per process, about 0.7 s).
The slopes are least-squares fits of log cost on log records, from 10,000 records up.

Setup, not timed: the local cache's entry objects are written without fsync (the same
objects); on S3 (moto_server on loopback) only the newest iteration's entries are written
as objects, with the index packs of all N (a look-up reads the scope's `_` listing and
the packs, never the entries, unless a batch was left pending). Lookups after every 8th
batch merge the packs as a running search would.

    .venv/bin/python bench/scale.py --quick    # make bench: local, 1,000 to 10,000 records
    .venv/bin/python bench/scale.py            # make bench-full: 1,000 to 100,000, local and S3
    .venv/bin/python bench/scale.py --training-check   # only the check below, into scale.json

The training check (`training_check` in scale.json): the default predictors fitted on
10,000, 30,000 and all 100,000 records of one table, scored on 5,000 networks none of them
saw (RMSE and Kendall tau against the plugin's values): what capping the training records
costs in prediction quality, and saves in fitting time.

Writes bench/results/scale.json and bench/results/scale.png.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PLUGIN = ROOT / "bench" / "plugins" / "synthetic_problems.py"
THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")}

SIZES, QUICK_SIZES = (1000, 3000, 10_000, 30_000, 100_000), (1000, 3000, 10_000)
POPULATION = 1000
POPULATIONS = (50, 200)          # swept at SWEEP_RECORDS (population 1,000 is the main sweep)
MANY_TARGETS = 4                 # also at SWEEP_RECORDS: quality + 4 latencies is the config's most
                                 # (at most 5 objectives after expanding latency per target)
SWEEP_RECORDS = 30_000           # (not 100,000: the cache of 5 scopes would take minutes to set up)
SLOPE_FROM = 10_000
COSTS = ("fit_s", "inner_s", "select_s", "table_write_s", "cache_lookup_s", "summary_s")
EXTRA = ("compact_s", "table_load_s", "warm_start_s")
TARGETS = {"search_overhead_cpu_s": 5.0, "table_write_s": 2.0, "cache_lookup_s": 2.0, "slope": 1.1,
           "peak_mib": 2048.0}


# ---- one point, in its own process ---------------------------------------------------------
def config_dict(targets: int, population: int) -> dict:
    return {"name": "scale", "seed": 0,
            "supernet": {"name": "synthetic_mbv3", "plugin_file": str(PLUGIN)},
            "objectives": ["accuracy", "latency"],
            "targets": [{"name": f"t{k}", "backend": "tabular"} for k in range(targets)],
            "search": {"population": population, "evaluations": 1_000_000}}


def synthetic_table(plugin, config, n: int, population: int):
    """`n` distinct sub-networks in iterations of `population`, as the measurement table holds them."""
    import numpy as np
    import pandas as pd

    from linas_lib.cache import latency_scope, quality_scope
    from linas_lib.measurements import concat, latency_column
    from linas_lib.objectives import target_fingerprint

    space = plugin.space
    X = space.sample(n, 12345)
    v = plugin.values(X)
    targets = config.latency_targets
    cache = ";".join([f"{quality_scope('accuracy')}=miss"]
                     + [f"{latency_column(t.name)}/{latency_scope(target_fingerprint(t))}=miss" for t in targets])
    columns = {"run": "scale", "iteration": np.arange(n) // population, "subnet_id": space.keys(X),
               "encoding": [json.dumps(row) for row in X.tolist()], "targets": ",".join(t.name for t in targets),
               "status": "ok", "error": "", "cache": cache, "timestamp": 1.7e9 + np.arange(n),
               "accuracy": v["accuracy"], "macs": v["macs"], "params": v["params"]}
    wobble = np.random.default_rng(7)
    for k, t in enumerate(targets):  # each target a little slower and differently noisy
        columns[latency_column(t.name)] = v["latency"] * (1 + 0.25 * k) * (1 + 0.01 * wobble.standard_normal(n))
    return concat(pd.DataFrame(columns))


def _hwm_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Clock:
    def __init__(self):
        self.costs: dict[str, dict[str, float]] = {}

    def __call__(self, name: str):
        clock = self

        class _Timer:
            def __enter__(self):
                self.load, self.cpu, self.wall = os.getloadavg()[0], time.process_time(), time.perf_counter()

            def __exit__(self, *exc):
                entry = clock.costs.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "load_1m": self.load})
                entry["wall_s"] += time.perf_counter() - self.wall
                entry["cpu_s"] += time.process_time() - self.cpu

        return _Timer()


def _fast_local(root: str):
    """The local store without fsync, for the setup's many writes (same objects, same layout)."""
    from linas_lib.stores.local import LocalStore

    class NoSync(LocalStore):
        def put_bytes(self, key: str, data: bytes) -> None:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            os.replace(tmp, path)

    return NoSync(root)


def populate_cache(cache_uri: str, scopes: list[str], table, population: int, s3: bool) -> None:
    """The cache a search over `table` leaves: an entry per row and scope, a pack per batch."""
    from linas_lib.cache import EvaluationCache
    from linas_lib.stores import open_store

    store = open_store(cache_uri) if s3 else _fast_local(cache_uri)
    cache = EvaluationCache(store, "bench/ns")
    rows = table[["iteration", "subnet_id", "encoding", "accuracy"]].to_dict("records")
    last = max(r["iteration"] for r in rows)
    for scope in scopes:
        cache.lookup(scope, [])  # a new scope: indexed from its first look-up
        for it in range(last + 1):
            batch = [r for r in rows[it * population:(it + 1) * population]]
            entries = {r["subnet_id"]: {"measured_at": 1.7e9 + it, "subnet_id": r["subnet_id"],
                                        "encoding": json.loads(r["encoding"]), "values": {"accuracy": r["accuracy"]}}
                       for r in batch}
            if s3 and it < last:  # S3: the packs only, but for the newest batch (see the docstring)
                cache._write_pack(scope, entries)
            else:
                for key, entry in entries.items():
                    cache._record(scope, key, entry)
                cache.close_batch(scope)
            if it % 8 == 7:
                cache.lookup(scope, [])  # merges packs, as a running search's look-ups do


def run_point(records: int, population: int, targets: int, store_kind: str, work: Path) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from linas_lib.cache import EvaluationCache, latency_scope, quality_scope
    from linas_lib.config import config_from_dict
    from linas_lib.measurements import concat
    from linas_lib.objectives import target_fingerprint
    from linas_lib.runs import RunStore
    from linas_lib.search import core
    from linas_lib.search.run import SearchRun
    from linas_lib.supernets import build_supernet

    config = config_from_dict(config_dict(targets, population))
    plugin = build_supernet(config.supernet.name)
    space = plugin.space
    full = synthetic_table(plugin, config, records + population, population)
    iteration = records // population
    table, told = full[full["iteration"] < iteration], full[full["iteration"] == iteration]
    s3 = store_kind == "s3"
    if s3:
        endpoint = os.environ["LINAS_BENCH_S3"]
        bucket = f"scale-{uuid.uuid4().hex[:10]}"
        run_uri = f"s3://{bucket}/runs/scale?endpoint={endpoint}&secure=false"
        cache_uri = f"s3://{bucket}/evaluation-cache?endpoint={endpoint}&secure=false"
        from linas_lib.stores import open_store

        open_store(run_uri).ensure_bucket()
    else:
        run_uri, cache_uri = str(work / "runs" / "scale"), str(work / "evaluation-cache")
    scopes = [quality_scope("accuracy")] + [latency_scope(target_fingerprint(t)) for t in config.latency_targets]
    populate_cache(cache_uri, scopes, table, population, s3)
    run = RunStore(run_uri)
    run.save_config(config)
    setup_store = run.store if s3 else _fast_local(run_uri)
    RunStore(setup_store).compact_measurements(table)  # the table as of the previous iteration

    import linas_lib.predictors.estimators  # noqa: F401  (a one-time import, ~0.7 s: not a cost of fitting)

    clock, reset = Clock(), _hwm_reset()
    with clock("fit_s"):
        predictors = core.fit_predictors(config, space, table, iteration)
    inner = {"wall_s": 0.0, "cpu_s": 0.0}
    original = core.run_inner_search

    def timed_inner(*args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            inner["cpu_s"] += time.process_time() - cpu
            inner["wall_s"] += time.perf_counter() - wall

    core.run_inner_search = timed_inner
    try:
        with clock("next_population"):
            X, _ = core.next_population(config, space, table, predictors, iteration)
    finally:
        core.run_inner_search = original
    nxt = clock.costs.pop("next_population")
    clock.costs["inner_s"] = {**inner, "load_1m": nxt["load_1m"]}
    clock.costs["select_s"] = {"wall_s": nxt["wall_s"] - inner["wall_s"], "cpu_s": nxt["cpu_s"] - inner["cpu_s"],
                               "load_1m": nxt["load_1m"]}
    with clock("table_write_s"):
        frame = concat(table, told)
        run.save_measurements(frame)
    with clock("table_load_s"):
        loaded = run.load_measurements()
    assert len(loaded) == len(frame)
    with clock("compact_s"):
        run.compact_measurements(frame)
    cache = EvaluationCache(cache_uri, "bench/ns")
    half = population // 2
    keys = space.keys(X[:population - half]) + table["subnet_id"].iloc[-half:].tolist()
    with clock("cache_lookup_s"):
        hits = [len(cache.lookup(scope, keys)) for scope in scopes]
    assert hits == [half] * len(scopes), hits
    with clock("summary_s"):
        summary = core.summarize(config, frame)
    run.save_results(summary)
    with clock("warm_start_s"):
        recurring = SearchRun.start(config, space, RunStore(run_uri))
        first = recurring.ask()
        warm_hits = [len(cache.lookup(scope, first.subnet_ids)) for scope in scopes]
    return {"records": records, "population": population, "targets": targets, "store": store_kind,
            "costs": clock.costs, "peak_mib": _peak_mib(), "peak_over": "timed steps" if reset else "process",
            "search_groups": len(core.search_groups(config)), "selected": int(len(X)),
            "warm_start": {"population": len(first), "cache_hits": warm_hits},
            "predictors": core.describe_predictors(predictors)}


# ---- the sweep -------------------------------------------------------------------------------
def point(records: int, population: int, targets: int, store: str, work: Path, env: dict) -> dict:
    out = work / f"{store}-{records}-{population}-{targets}.json"
    cmd = [sys.executable, __file__, "--point", str(records), str(population), str(targets), store,
           "--work", str(work / f"{store}-{records}-{population}-{targets}"), "--point-out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    result = json.loads(out.read_text())
    result["process_wall_s"] = time.perf_counter() - t0
    line = ", ".join(f"{k} {v['wall_s']:.2f}" for k, v in result["costs"].items())
    print(f"  {store:5} N={records:>6} P={population:>4} T={targets}: {line}; peak {result['peak_mib']:.0f} MiB "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return result


def slopes(entries: list[dict], clock: str = "wall_s") -> dict[str, float]:
    import numpy as np

    out = {}
    big = sorted((e for e in entries if e["records"] >= SLOPE_FROM), key=lambda e: e["records"])
    if len(big) < 2:
        return out
    x = np.log([e["records"] for e in big])
    for cost in (*COSTS, *EXTRA, "peak_mib"):
        y = [e["peak_mib"] if cost == "peak_mib" else e["costs"][cost][clock] for e in big]
        if all(v > 0 for v in y):
            out[cost] = float(np.polyfit(x, np.log(y), 1)[0])
    return out


def table_of(entries: list[dict]) -> dict:
    sizes = {}
    for e in sorted(entries, key=lambda e: e["records"]):
        row = {c: round(e["costs"][c]["wall_s"], 4) for c in (*COSTS, *EXTRA)}
        row["peak_mib"] = round(e["peak_mib"], 1)
        row["cpu"] = {c: round(e["costs"][c]["cpu_s"], 4) for c in (*COSTS, *EXTRA)}
        row["load_1m"] = {c: round(e["costs"][c]["load_1m"], 2) for c in (*COSTS, *EXTRA)}
        row["search_overhead_cpu_s"] = round(sum(e["costs"][c]["cpu_s"] for c in ("fit_s", "inner_s", "select_s")), 3)
        row["predictors"] = e["predictors"]
        row["warm_start"] = e["warm_start"]
        sizes[str(e["records"])] = row
    return {"sizes": sizes, "slopes": slopes(entries), "slopes_cpu": slopes(entries, "cpu_s")}


def check_targets(section: dict) -> dict:
    largest = section["sizes"][max(section["sizes"], key=int)]
    checks = {
        "search_overhead_cpu_s": largest["search_overhead_cpu_s"] <= TARGETS["search_overhead_cpu_s"],
        "table_write_s": largest["table_write_s"] <= TARGETS["table_write_s"],
        "cache_lookup_s": largest["cache_lookup_s"] <= TARGETS["cache_lookup_s"],
        "peak_mib": largest["peak_mib"] <= TARGETS["peak_mib"],
    }
    checks["slopes"] = {c: s <= TARGETS["slope"] for c, s in section["slopes"].items() if c in COSTS}
    return {"at_records": int(max(section["sizes"], key=int)), "met": checks}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    s3_title = "S3 store (moto on loopback)" + (", an earlier run" if (result.get("s3") or {}).get("from_an_earlier_run")
                                                else "")
    panels = [("local store", result)] + ([(s3_title, result["s3"])] if result.get("s3") else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (title, section) in zip(axes[0], panels):
        sizes = sorted(int(s) for s in section["sizes"])
        for cost in (*COSTS, "warm_start_s"):
            y = [max(section["sizes"][str(s)][cost], 1e-4) for s in sizes]
            slope = section["slopes"].get(cost)
            ax.loglog(sizes, y, marker="o", label=f"{cost[:-2]}" + (f" (slope {slope:.2f})" if slope is not None else ""))
        x = np.array([SLOPE_FROM, sizes[-1]])
        ax.loglog(x, 0.5 * x / x[0], color="grey", ls=":", lw=1, label="slope 1")
        ax.axhline(2.0, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("records in the measurement table (and the cache, per scope)")
        ax.set_ylabel("wall seconds per iteration step (log)")
        ax.set_title(f"{title}: population {POPULATION}, 1 target; slopes fitted from {SLOPE_FROM:,} up", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu_model": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "threads": 1}


def host_speed() -> dict:
    """CPU seconds of a fixed workload on one thread (float64 matrix products; a Python loop):
    the host's speed when the figures were taken. A shared host's speed drifts (1.7x within an
    hour was seen here at the same load), so runs compare by it, not by the date."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    A = np.random.default_rng(0).random((400, 400))
    with threadpool_limits(1):
        cpu = time.process_time()
        for _ in range(40):
            A @ A
        blas = time.process_time() - cpu
    cpu = time.process_time()
    sum(i * i for i in range(3_000_000))
    return {"blas_s": round(blas, 3), "python_s": round(time.process_time() - cpu, 3)}


TRAINING_CHECK = (10_000, 30_000, 100_000)


def training_check(held_out: int = 5000) -> dict:
    """Prediction quality and fitting CPU against the records the predictors learn from."""
    import numpy as np
    from scipy.stats import kendalltau
    from threadpoolctl import threadpool_limits

    import linas_lib.predictors.estimators  # noqa: F401  (imported before the clock, as in a point)
    from linas_lib.config import config_from_dict
    from linas_lib.search import core
    from linas_lib.supernets import build_supernet

    config = config_from_dict({**config_dict(1, POPULATION), "search": {
        "population": POPULATION, "evaluations": 1_000_000, "training_records": None}})
    plugin = build_supernet(config.supernet.name)
    table = synthetic_table(plugin, config, max(TRAINING_CHECK), POPULATION)
    test = plugin.space.sample(held_out, 999, exclude=set(table["subnet_id"].tolist()))
    truth = plugin.values(test)
    iteration = max(TRAINING_CHECK) // POPULATION
    out = {}
    for n in TRAINING_CHECK:
        sample = core.training_sample(table, n, 0)
        with threadpool_limits(1):
            cpu = time.process_time()
            predictors = core.fit_predictors(config, plugin.space, sample, iteration)
            cpu = time.process_time() - cpu
        entry = {"fit_cpu_s": round(cpu, 3)}
        for name, predictor in predictors.items():
            y = truth["accuracy" if name == "accuracy" else "latency"]
            predicted = predictor.predict(test)
            entry[name] = {"rmse": float(np.sqrt(np.mean((predicted - y) ** 2))),
                           "kendall_tau": float(kendalltau(predicted, y).statistic)}
        out[str(n)] = entry
        print(f"  training check: {n} records: {entry}", flush=True)
    return {"held_out": held_out, "records": out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="local store, 1,000 to 10,000 records")
    parser.add_argument("--sizes", type=int, nargs="+", help="records counts (default: by mode)")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 store")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the population and target sweeps")
    parser.add_argument("--training-check", action="store_true",
                        help="only the training check, written into the existing scale.json")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--assemble", type=Path, metavar="WORK",
                        help="write scale.json from the points a killed run left in WORK (linas-scale-*)")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--point", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--point-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        records, population, targets, store = int(args.point[0]), int(args.point[1]), int(args.point[2]), args.point[3]
        args.work.mkdir(parents=True, exist_ok=True)
        args.point_out.write_text(json.dumps(run_point(records, population, targets, store, args.work), default=float))
        return 0

    import shutil
    import tempfile

    if args.assemble:
        points = [json.loads(p.read_text()) for p in sorted(args.assemble.glob("*.json"))]
        result = {"benchmark": "scale", "quick": False, "machine": machine(), "targets": TARGETS,
                  "assembled_from": "the points of a run stopped before its end", **_sections(points)}
        _write(result, args.out)
        return 0

    if args.training_check:
        path = args.out / "scale.json"
        result = json.loads(path.read_text()) if path.is_file() else {"benchmark": "scale"}
        result["training_check"] = {**training_check(), "host_speed": host_speed(), "load_1m": os.getloadavg()[0]}
        _write(result, args.out)
        return 0

    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    use_s3 = not (args.quick or args.no_s3)
    sweeps = not (args.quick or args.no_sweeps)
    env = {**os.environ, **THREADS, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "linas-bench",
           "AWS_SECRET_ACCESS_KEY": "linas-bench-secret"}
    started, load0, speed0 = time.time(), os.getloadavg(), host_speed()
    work = Path(tempfile.mkdtemp(prefix="linas-scale-"))
    result: dict = {"benchmark": "scale", "quick": args.quick, "machine": machine(),
                    "protocol": {"plugin": "synthetic_mbv3 (bench/plugins/synthetic_problems.py)",
                                 "population": POPULATION, "targets": 1, "inner_evaluations": 20_000,
                                 "selection": "ehvi_rank (8-member bootstrap ensembles)",
                                 "predictors": {"accuracy": "svr_rbf", "latency": "ridge"},
                                 "slopes_from_records": SLOPE_FROM, "clock": "wall (cpu beside it)",
                                 "setup": "see bench/scale.py's docstring"},
                    "targets": TARGETS}
    try:
        print(f"scale: local store, population {POPULATION}, 1 target", flush=True)
        local = [point(n, POPULATION, 1, "local", work, env) for n in sizes]
        result.update(table_of(local))
        result["targets_met"] = check_targets(result)
        if use_s3:
            sys.path.insert(0, str(ROOT / "tests"))
            from s3_server import moto_server

            print("scale: S3 store (moto_server on loopback)", flush=True)
            with moto_server() as endpoint:
                s3 = [point(n, POPULATION, 1, "s3", work, {**env, "LINAS_BENCH_S3": endpoint}) for n in sizes]
            result["s3"] = table_of(s3)
            result["s3"]["targets_met"] = check_targets(result["s3"])
        if sweeps:
            n = min(max(sizes), SWEEP_RECORDS)
            print(f"scale: populations and targets at {n} records", flush=True)
            pops = [point(n, p, 1, "local", work, env) for p in POPULATIONS]
            result["populations"] = {str(e["population"]): table_of([e])["sizes"][str(n)] for e in pops}
            many = point(n, POPULATION, MANY_TARGETS, "local", work, env)
            result["targets_sweep"] = {str(MANY_TARGETS): table_of([many])["sizes"][str(n)]}
            print("scale: prediction quality against training records", flush=True)
            result["training_check"] = training_check()
    except BaseException:  # the points taken so far stay, for --assemble
        print(f"scale: stopped; the points taken so far are in {work}: "
              f"bench/scale.py --assemble {work}", file=sys.stderr, flush=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    result["elapsed_s"] = time.time() - started
    result["load_average"] = {"start": list(load0), "end": list(os.getloadavg())}
    result["host_speed"] = {"start": speed0, "end": host_speed()}
    _keep_earlier_s3(result, args.out / "scale.json", skipped=args.no_s3 and not args.quick)
    _write(result, args.out)
    print(json.dumps({"slopes": result["slopes"], "targets_met": result["targets_met"]}, indent=1))
    return 0


def _sections(points: list[dict]) -> dict:
    """The result's sections from points: the main sweeps (population 1,000, 1 target) and the others."""
    out: dict = {}
    main = [p for p in points if p["population"] == POPULATION and p["targets"] == 1]
    local, s3 = [p for p in main if p["store"] == "local"], [p for p in main if p["store"] == "s3"]
    if local:
        out.update(table_of(local))
        out["targets_met"] = check_targets(out)
    if s3:
        out["s3"] = table_of(s3)
        out["s3"]["targets_met"] = check_targets(out["s3"])
    pops = [p for p in points if p["population"] != POPULATION]
    if pops:
        out["populations"] = {str(p["population"]): table_of([p])["sizes"][str(p["records"])] for p in pops}
    many = [p for p in points if p["targets"] != 1]
    if many:
        out["targets_sweep"] = {str(p["targets"]): table_of([p])["sizes"][str(p["records"])] for p in many}
    return out


def _keep_earlier_s3(result: dict, path: Path, skipped: bool) -> None:
    """A full run with --no-s3 keeps the S3 section of the file it replaces, marked as
    taken earlier (S3 takes the longest to set up; its figures stay visible, with their age)."""
    if not skipped or not path.is_file():
        return
    earlier = json.loads(path.read_text())
    if earlier.get("s3"):
        result["s3"] = {**earlier["s3"], "from_an_earlier_run": {
            "elapsed_s": earlier.get("elapsed_s"), "load_average": earlier.get("load_average"),
            "note": "not re-run with this file's local figures (bench/scale.py --no-s3)"}}


def _write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    plot(result, out / "scale.png")


if __name__ == "__main__":
    sys.exit(main())
