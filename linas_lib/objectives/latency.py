"""Latency of each sub-network on one hardware target, and drift of a target over time."""
from __future__ import annotations

import math
import statistics
import time
from contextlib import closing
from typing import Any

import numpy as np

from linas_lib.api.documents import ObjectiveRecord
from linas_lib.api.objective import column
from linas_lib.backends import backend_class, build_backend
from linas_lib.cache import EvaluationCache, latency_scope
from linas_lib.measurements import cpu_column, cv_column, latency_column, load_column, timings_column
from linas_lib.objectives.attempts import attempt, time_limit
from linas_lib.objectives.recording import record_durably
from linas_lib.objectives.workers import in_parallel, usable_workers


def target_fingerprint(target) -> dict[str, Any]:
    """What determines a latency on `target`, known before measuring: the cache key.

    The host part is read on the machine that measures (a pod on the target's node pool).
    """
    from linas_lib.backends.timing import gpu_name, host_fingerprint

    fp = {
        **host_fingerprint(),
        "accelerator": (gpu_name() or "cuda (unknown)") if target.device == "cuda" else "none",
        "backend": target.backend,
        "backend_version": backend_class(target.backend).runtime_version(),
        "device": target.device,
        "precision": target.precision,
        "batch_size": target.batch_size,
        "threads": target.threads,
        "params": target.params,
        "node": target.node_fingerprint,
        **backend_class(target.backend).cache_key_extra(target.backend_params()),
    }
    if target.precision == "int8":
        from importlib.metadata import PackageNotFoundError, version

        try:
            fp["nncf_version"] = version("nncf")
        except PackageNotFoundError:
            fp["nncf_version"] = ""
        fp["calibration_samples"] = target.calibration_count
        # 2: calibration_samples reaches NNCF (before, it always used 16 whatever the key said)
        fp["int8_recipe"] = 2
    return fp


# Re-timing helps when the noise is a passing burst. Once this many re-timed sub-networks
# in a row stayed noisy through all their re-timings (quiet ones in between tell nothing
# about re-timing), the host is noisy throughout: each noisy latency is then re-timed once
# (not noisy_retimes times) until a re-timing helps again.
FUTILE_IN_A_ROW = 3


class Retimer:
    """Times a prepared model and re-times it while its CV exceeds `policy.max_latency_cv`
    (at most `policy.noisy_retimes` times), keeping the steadiest timing; spends fewer
    re-timings while they keep failing (FUTILE_IN_A_ROW)."""

    def __init__(self, backend, policy):
        self.backend = backend
        self.limit = getattr(policy, "max_latency_cv", None) if backend.timed else None
        self.retimes = getattr(policy, "noisy_retimes", 0)
        self.futile = 0  # sub-networks in a row that stayed above the limit after re-timing

    def __call__(self, prepared) -> tuple[Any, int]:
        """(the steadiest result, how many timings were taken)."""
        result = self.backend.time(prepared)
        timings = 1
        if self.limit is None:
            return result, timings
        allowed = self.retimes if self.futile < FUTILE_IN_A_ROW else min(self.retimes, 1)
        while timings <= allowed and math.isfinite(result.cv) and result.cv > self.limit:
            again = self.backend.time(prepared)
            timings += 1
            if again.cv < result.cv:
                result = again
        if timings > 1:
            self.futile = self.futile + 1 if result.cv > self.limit else 0
        return result, timings


def measure_latency(
    supernet, encodings: np.ndarray, target, normalize: bool = False, *, policy=None,
    cache: EvaluationCache | None = None, refresh: bool = False,
) -> list[ObjectiveRecord]:
    """`target` is a TargetConfig; values are keyed `latency@<target>` and friends.

    With `normalize`, the largest sub-network is measured in the same session and each
    latency is also given as a ratio to it (`latency_norm@<target>`), which cancels
    the platform's speed so latencies from different platforms can be pooled. With
    `refresh`, the cache is not read, only written: everything is measured afresh.
    """
    from linas_lib.config import MeasurementPolicy

    policy = policy or MeasurementPolicy(retries=0)
    space = supernet.space
    X = space.canonicalize(encodings)
    keys = space.keys(X)
    col = latency_column(target.name)
    norm_col = column("latency", target.name, "norm")
    needed = [col] + ([norm_col] if normalize else [])
    scope = latency_scope(target_fingerprint(target))
    hits = {k: e for k, e in (cache.lookup(scope, keys) if cache and not refresh else {}).items()
            if all(n in e["values"] for n in needed)}

    backend = retime = None
    reference = None
    int8 = target.precision == "int8"
    quality = supernet.quality_metric

    def ready():
        """The backend, set up once; a setup that fails is tried again (and reported) per row."""
        nonlocal backend, reference, retime
        if backend is not None:
            return backend
        built = build_backend(target.backend, **target.backend_params())
        if int8:  # post-training quantization calibrates on the plugin's own data
            if not hasattr(supernet, "calibration_inputs"):
                raise ValueError(f"target {target.name!r}: INT8 needs calibration data, and the "
                                 f"{type(supernet).__name__} plugin has no calibration_inputs()")
            n_batches = max(1, -(-target.calibration_count // target.batch_size))
            built.set_calibration(supernet.calibration_inputs(target.batch_size, n_batches))
        if normalize:
            module, inputs = supernet.export_module(space.canonicalize(space.upper)[0], target.batch_size)
            reference = built.measure(module, inputs).median_ms
        backend, retime = built, Retimer(built, policy)
        return backend

    # Quantization depends on the weights' values; a float latency only on shapes and operators
    timed_module = supernet.export_module if int8 else getattr(supernet, "timing_module", supernet.export_module)

    # Exporting needs no quiet machine, timing does: with several workers the next few
    # sub-networks are exported side by side (forked), then timed one by one.
    misses = [i for i, key in enumerate(keys) if key not in hits]
    workers = usable_workers(getattr(policy, "workers", 1), len(misses))
    ahead: dict[int, tuple[bytes, Any]] = {}  # index -> (exported artifact, example inputs); a few at a time
    tried: set[int] = set()  # exported ahead, or tried to: a failure is measure_one's to retry and report

    def export_ahead(index: int) -> None:
        nonlocal workers
        try:
            b = ready()
        except Exception:  # measure_one records why, under the policy
            return
        if not b.exports:
            workers = 1
            return
        chunk = [m for m in misses[misses.index(index):] if m not in tried][:workers]
        tried.update(chunk)

        def export(k: int):
            with time_limit(getattr(policy, "timeout_s", None), f"export of {keys[chunk[k]]}"):
                module, inputs = timed_module(X[chunk[k]], target.batch_size)
                return b.export(module, inputs), inputs

        try:
            with closing(in_parallel(export, len(chunk), workers)) as exported:
                for k, outcome in exported:
                    if not isinstance(outcome, BaseException) and outcome[0] is not None:
                        ahead[chunk[k]] = outcome
        except Exception:  # exporting ahead only saves time: measure_one exports what is missing
            workers = 1

    rows = []
    try:
        for index, (encoding, key) in enumerate(zip(X, keys)):
            row: dict[str, Any] = {"subnet_id": key, "encoding": encoding.tolist(), "error": ""}
            if key in hits:
                row.update(values=hits[key]["values"], fingerprint=hits[key].get("fingerprint", {}),
                           cache={scope: "hit"})
                rows.append(row)
                continue
            extra: dict[str, Any] = {}

            if workers > 1 and index not in tried:
                export_ahead(index)

            def measure_one() -> dict[str, float]:
                b = ready()
                if index in ahead:
                    artifact, inputs = ahead.pop(index)
                    prepared = b.prepare(None, inputs, exported=artifact)
                else:
                    prepared = b.prepare(*timed_module(encoding, target.batch_size))
                result, timings = retime(prepared)
                values = {col: result.median_ms, cv_column(target.name): result.cv,
                          column("latency", target.name, "p90"): result.p90_ms,
                          timings_column(target.name): float(timings)}
                # kept with the row, so a latency taken on a busy host can be told apart afterwards
                for name, value in ((cpu_column(target.name), result.cpu_median_ms),
                                    (load_column(target.name), result.load_1m)):
                    if math.isfinite(value):  # NaN where there is nothing to time (lut, tabular)
                        values[name] = value
                if int8 and hasattr(supernet, "evaluate_exported"):
                    # the quantized model's own quality: the INT8 search space is what is deployed
                    try:
                        exported = supernet.evaluate_exported(encoding, prepared.runner)
                        values[column(quality, target.name)] = exported[quality]
                    except Exception as exc:  # e.g. OFA without weights: latency stands on its own
                        extra["quality_error"] = f"{column(quality, target.name)}: {exc}"
                if reference:
                    values[norm_col] = result.median_ms / reference
                extra["fingerprint"] = {**result.fingerprint,
                                        **{f"node_{k}": v for k, v in target.node_fingerprint.items()}}
                return values

            values, error, tries = attempt(measure_one, policy, col)
            row.update(values=values, error=error, attempts=tries, cache={scope: "miss"}, **extra)
            if cache and not error:
                record_durably(cache, scope, key, {"subnet_id": key, "encoding": encoding.tolist(), "values": values,
                                                  "fingerprint": extra.get("fingerprint", {})})
            rows.append(row)
    finally:  # what was recorded becomes one index pack (look-ups read packs, not entries)
        if cache:
            cache.close_batch(scope)
    return rows


def check_drift(
    supernet, target, previous: dict[str, dict[str, Any]], threshold: float, *, policy=None,
    cache: EvaluationCache | None = None, normalize: bool = False,
) -> dict[str, Any]:
    """Re-measure the previous run's front on `target` for real and compare.

    `previous` maps subnet_id -> {"encoding", "latency", "scope"} from the previous run.
    Drift (the median relative change exceeds `threshold`, or the fingerprint changed)
    marks every older cached latency of this target stale, so the search starts afresh;
    the fresh measurements are cached and reused by the search itself.
    """
    scope = latency_scope(target_fingerprint(target))
    started = time.time()
    if not previous:
        return {"target": target.name, "remeasured": 0, "drifted": False, "reason": "no previous front"}
    X = np.asarray([p["encoding"] for p in previous.values()], dtype=np.int64)
    # cached one by one as they are taken (after `started`, so a stale mark spares them)
    rows = measure_latency(supernet, X, target, normalize, policy=policy, cache=cache, refresh=True)
    col = latency_column(target.name)
    changes = {}
    for row in rows:
        old = previous.get(row["subnet_id"], {}).get("latency")
        if not row["error"] and old:
            changes[row["subnet_id"]] = row["values"][col] / old - 1.0
    old_scopes = {p.get("scope") for p in previous.values()} - {None}
    fingerprint_changed = bool(old_scopes) and scope not in old_scopes
    median = statistics.median(changes.values()) if changes else float("nan")
    drifted = fingerprint_changed or (bool(changes) and abs(median) > threshold)
    if drifted and cache:
        cache.mark_stale(scope, f"latency drift on {target.name}: median change {median:+.1%}", before=started)
    if fingerprint_changed:
        reason = "the hardware fingerprint changed"
    elif changes:
        reason = f"median latency change {median:+.1%} {'exceeds' if drifted else 'within'} ±{threshold:.0%}"
    else:
        reason = "no previous-front latency could be re-measured"
    return {"target": target.name, "remeasured": len(rows), "failed": sum(bool(r["error"]) for r in rows),
            "median_change": median, "changes": changes, "fingerprint_changed": fingerprint_changed,
            "drifted": drifted, "reason": reason, "threshold": threshold}
