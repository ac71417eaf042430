"""The measurement table: one row per measured sub-network, plain typed columns.

Fixed columns come first; each measured quantity is a float column named by its
`ColumnKey` (``accuracy``, ``latency@cpu-ort``, ``latency_cv@cpu-ort``, ``macs``...).
Failed measurements stay in the table with their reason, so nothing is lost and
nothing is re-measured, but they never reach predictor training.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from linas_lib.api.documents import MeasurementRow, ObjectiveRecord
from linas_lib.api.objective import (ColumnKey, Objective, column, latency_column, prediction_column,  # noqa: F401
                                     to_min_matrix)

OK, FAILED = "ok", "failed"
FIXED_COLUMNS = ["run", "iteration", "subnet_id", "encoding", "targets", "status", "error", "cache", "timestamp"]
HIT, MISS = "hit", "miss"


def cv_column(target: str) -> str:
    return column("latency", target, "cv")


def cpu_column(target: str) -> str:
    """Process CPU time per call (ms): unlike wall time, preemption on a busy host barely moves it."""
    return column("latency", target, "cpu")


def load_column(target: str) -> str:
    """The host's 1-minute load average when the latency was timed."""
    return column("load_1m", target)


def timings_column(target: str) -> str:
    """How often the latency was timed: 1, plus a re-timing per noisy (high-CV) result."""
    return column("latency", target, "timings")


def make_row(
    *,
    subnet_id: str,
    encoding: Sequence[int],
    iteration: int,
    values: dict[str, float],
    run: str = "",
    targets: Iterable[str] = (),
    error: str = "",
    cache: str = "",
    timestamp: float | None = None,
) -> MeasurementRow:
    """A table row; any missing or non-finite value marks the row failed."""
    bad = [k for k, v in values.items() if v is None or not math.isfinite(float(v))]
    if bad and not error:
        error = f"non-finite measurement for {', '.join(sorted(bad))}"
    return {
        "run": run,
        "iteration": int(iteration),
        "subnet_id": subnet_id,
        "encoding": json.dumps([int(g) for g in encoding]),
        "targets": ",".join(targets),
        "status": FAILED if error else OK,
        "error": error,
        "cache": cache,
        "timestamp": float(timestamp if timestamp is not None else time.time()),
        **{k: float("nan") if v is None else float(v) for k, v in values.items()},
    }


def to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return _normalized(pd.DataFrame(list(rows)))


def _normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed columns first, value columns sorted, the table's dtypes, a fresh index."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in FIXED_COLUMNS})
    frame = frame.reset_index(drop=True)
    for col in FIXED_COLUMNS:
        if col not in frame:
            frame[col] = "" if _dtype(col) == "string" else 0
    value_cols = sorted(c for c in frame.columns if c not in FIXED_COLUMNS)
    frame = frame[FIXED_COLUMNS + value_cols]
    return frame.astype({c: _dtype(c) for c in frame.columns})


def _dtype(column: str) -> str:
    return {"iteration": "int64", "timestamp": "float64"}.get(
        column, "string" if column in FIXED_COLUMNS else "float64"
    )


def concat(*frames: pd.DataFrame) -> pd.DataFrame:
    """Append tables; a sub-network measured twice keeps its first successful row."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return to_frame([])
    merged = pd.concat(frames, ignore_index=True, sort=False)
    merged = merged.sort_values(["status", "iteration"], key=_ok_first, kind="stable")
    merged = merged.drop_duplicates("subnet_id", keep="first").sort_values(["iteration"], kind="stable")
    return _normalized(merged)  # frame to frame: a round trip through dicts costs seconds at 100k rows


def _ok_first(col: pd.Series) -> pd.Series:
    return col.map({OK: 0, FAILED: 1}) if col.name == "status" else col


def successful(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows measured without error (and, given `columns`, with a finite value in each)."""
    ok = frame[frame["status"] == OK]
    if columns:
        present = [c for c in columns if c in ok.columns]
        ok = ok[np.isfinite(ok[present].to_numpy(dtype=float)).all(axis=1)] if present else ok
    return ok


def encodings(frame: pd.DataFrame) -> np.ndarray:
    if frame.empty:
        return np.zeros((0, 0), dtype=np.int64)
    texts = frame["encoding"].astype(str).tolist()
    flat = _parse_ints(",".join(texts).replace("[", " ").replace("]", f",{_ROW_END}"))
    if flat is not None:  # one C parse of the column (json per row costs ~1 s at 100,000 rows) ...
        ends = np.flatnonzero(flat == _ROW_END)
        width = len(flat) // len(texts)
        if len(ends) == len(texts) and np.array_equal(ends, np.arange(1, len(texts) + 1) * width - 1):
            return flat.reshape(len(texts), width)[:, :-1]
    return np.array([json.loads(e) for e in texts], dtype=np.int64)  # ... unless rows differ: as json says


_ROW_END = -(2**62) + 12345  # a row marker no encoding holds (genes are option indices)


def _parse_ints(text: str) -> np.ndarray | None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.fromstring(text, dtype=np.int64, sep=",")
        except (ValueError, DeprecationWarning):
            return None


def objective_matrix(frame: pd.DataFrame, objectives: list[Objective]) -> np.ndarray:
    """(n, n_obj) minimization-form values of the successful rows."""
    ok = successful(frame, [o.name for o in objectives])
    missing = [o.name for o in objectives if o.name not in ok.columns]
    if missing:
        raise KeyError(f"the measurement table has no column for objective(s) {missing}")
    return to_min_matrix(objectives, {o.name: ok[o.name].to_numpy() for o in objectives})


def combine(
    *,
    iteration: int,
    run: str,
    quality_rows: list[ObjectiveRecord],
    latency_rows: dict[str, list[ObjectiveRecord]],
    predictions: dict[str, dict[str, float]] | None = None,
) -> pd.DataFrame:
    """Join per-stage rows (keyed by subnet_id) into measurement-table rows.

    `predictions` maps subnet_id -> {objective: value predicted before measuring},
    kept as `pred:<objective>` columns for prospective predictor quality.

    The latency rows' recorded hardware fingerprints (one per target and cache scope, host
    details included) ride along as the frame's `attrs["hardware"]`: the table's columns are
    numbers, and `SearchRun.tell` keeps them for the report (`hardware_records`).
    """
    by_target = {t: {r["subnet_id"]: r for r in rows} for t, rows in latency_rows.items()}
    out = []
    for q in quality_rows:
        values = dict(q["values"])
        errors = [q["error"]] if q["error"] else []
        cache = [f"{scope}={state}" for scope, state in q.get("cache", {}).items()]
        for target, rows in by_target.items():
            lat = rows.get(q["subnet_id"])
            if lat is None:
                errors.append(f"{latency_column(target)}: not measured")
                continue
            values.update(lat["values"])
            cache += [f"{latency_column(target)}/{scope}={state}" for scope, state in lat.get("cache", {}).items()]
            if lat["error"]:
                errors.append(lat["error"])
        for name, value in (predictions or {}).get(q["subnet_id"], {}).items():
            values[prediction_column(name)] = value
        out.append(make_row(subnet_id=q["subnet_id"], encoding=q["encoding"], iteration=iteration, run=run,
                            values=values, targets=list(by_target), error="; ".join(errors), cache=";".join(cache)))
    frame = to_frame(out)
    frame.attrs["hardware"] = hardware_records(latency_rows)
    return frame


def hardware_records(latency_rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """target -> cache scope -> the fingerprint recorded with its measurements (the first one
    of each scope: a scope is a digest of what they share)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for target, rows in latency_rows.items():
        for row in rows:
            if row.get("fingerprint"):
                for scope in row.get("cache", {}):
                    out.setdefault(target, {}).setdefault(scope, dict(row["fingerprint"]))
    return out


def _cache_items(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, hit|miss) of every objective group of every row, from the `cache` column."""
    cells = frame.get("cache", pd.Series(dtype="string")).fillna("")
    return [tuple(item.rpartition("=")[::2]) for cell in cells for item in str(cell).split(";") if item]


def _distinct_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The `cache` column's distinct cells in order of appearance: a table of 100,000 rows has
    a handful (every population's rows read alike), so they are parsed once each."""
    cells = frame.get("cache", pd.Series(dtype="string")).fillna("").astype(str)
    counts = cells.value_counts(sort=False)
    return pd.DataFrame({"cache": counts.index, "count": counts.to_numpy()})


def latency_scopes(frame: pd.DataFrame) -> dict[str, str]:
    """target -> the cache scope (hardware fingerprint) its latencies were measured under."""
    scopes: dict[str, str] = {}
    for label, _ in _cache_items(_distinct_cells(frame)):
        group, _, scope = label.partition("/")
        key = ColumnKey.parse(group)
        if scope and key.kind == "latency" and key.target:
            scopes.setdefault(key.target, scope)
    return scopes


def cache_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Evaluation-cache hits and misses over every objective group of every row."""
    counts = {HIT: 0, MISS: 0}
    for cell, count in _distinct_cells(frame).itertuples(index=False):
        for item in cell.split(";"):
            state = item.rpartition("=")[2] if item else ""
            if state in counts:
                counts[state] += int(count)
    return {"hits": counts[HIT], "misses": counts[MISS]}


def cache_fields(cell: Any) -> tuple[dict[str, str], dict[str, str]]:
    """A row's `cache` cell as fields: {group: hit|miss} and {group: scope} where a group
    has a hardware scope ('latency@cpu-ort' -> 'latency-<fingerprint digest>')."""
    states, scopes = {}, {}
    for item in str(cell or "").split(";"):
        label, _, state = item.rpartition("=")
        if not label:
            continue
        group, _, scope = label.partition("/")
        states[group] = state
        if scope:
            scopes[group] = scope
    return states, scopes


def iso_time(epoch: float | None) -> str | None:
    """An epoch time as ISO-8601 UTC ('2026-12-01T10:00:00.123Z'); None for none."""
    from datetime import datetime, timezone

    if epoch is None or not math.isfinite(float(epoch)):
        return None
    return datetime.fromtimestamp(float(epoch), timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_time(value: Any) -> float:
    """Seconds since the epoch from an ISO-8601 string (new files) or a number (older files)."""
    from datetime import datetime

    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value or 0)


# Units of the table's value columns by (kind, statistic), terse enough for programs to read:
# latency is the median wall time of one call (one batch), its cpu statistic the process CPU
# time, timings how often it was timed. A quality metric at a target shares its metric's unit.
QUALITY_UNITS = {"accuracy": "fraction", "hr@10": "fraction", "bleu": "BLEU (0-100)"}
UNITS = {
    ("latency", None): "ms",
    ("latency", "p90"): "ms",
    ("latency", "cpu"): "ms",
    ("latency", "cv"): "ratio (std/mean)",
    ("latency", "norm"): "ratio (to the largest sub-network)",
    ("latency", "timings"): "count",
    ("load_1m", None): "load average (1 min)",
    ("macs", None): "MACs per sample",
    ("params", None): "parameters",
}


def column_unit(name: str, quality_units: dict[str, str] | None = None) -> str:
    """The unit of a value column ('' when unknown)."""
    key = ColumnKey.parse(name)
    quality = {**QUALITY_UNITS, **(quality_units or {})}
    return UNITS.get((key.kind, key.statistic)) or (quality.get(key.kind, "") if key.statistic is None else "")


class IterationFailedError(RuntimeError):
    """Every measurement of an iteration failed: nothing to learn from; the reasons are in the table."""


def check_iteration_measured(frame: pd.DataFrame, iteration: int, where: str) -> None:
    """Raise when every measurement of `iteration` failed, with the first reason and where the
    failed rows are (call it after they are saved)."""
    rows = frame[frame["iteration"] == iteration]
    if len(rows) and not (rows["status"] == OK).any():
        first = next((str(e) for e in rows["error"] if isinstance(e, str) and e), "no reason recorded")
        raise IterationFailedError(f"all {len(rows)} measurements of iteration {iteration} failed; "
                                   f"first error: {first}; see {where}")
