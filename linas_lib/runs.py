"""The layout of one run inside a store; the only module that knows key names.

    config.json                 the validated config
    measurements.parquet        the measurement table as of its last compaction (the whole table
                                once the run has finished)
    measurements/iter-NNNNN.parquet   each later iteration's rows, appended as it is told: the
                                table is this file plus these parts (see save_measurements)
    populations/iter-NNN.json   each iteration's population, with predictions
    predictors/iter-NNN.json    what was trained after iteration NNN (model, hyperparameters; data, no pickle)
    pareto.json, summary.json   results, derived from the measurements (summary.json marks a finished run):
                                encodings as lists, cache state as fields, ISO-8601 times, a units map
    drift.json                  a recurring run: the previous front re-measured, per target
    hardware.json               per target and cache scope, the hardware fingerprint recorded with the latencies
    previous.json               a recurring run: which history entry it started from
    history/<stamp>/            earlier finished runs at this location (summary, measurements, config)
    report.html, report.md      the human-readable report
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import pandas as pd

from linas_lib.api.documents import ParetoDocument, Summary
from linas_lib.api.store import Store, StoreError, get_checked, get_json, get_table, put_checked, put_json, put_table
from linas_lib.measurements import concat, to_frame
from linas_lib.stores import open_store

log = logging.getLogger("linas.runs")
MEASUREMENTS = "measurements.parquet"
PARTS = "measurements/"
# Parts kept before they are compacted into measurements.parquet: a resume reads at most this
# many small objects beside it, and an iteration rewrites the whole table once in this many.
COMPACT_PARTS = 16
SUMMARY = "summary.json"
PARETO = "pareto.json"
PARETO_FORMAT = "linas-pareto/2"  # 1 was a bare list of records with JSON-string encodings
HISTORY = "history"
HARDWARE = "hardware.json"


def _part_key(iteration: int) -> str:
    return f"{PARTS}iter-{iteration:05d}.parquet"


class RunStateError(RuntimeError):
    """A run location that cannot be resumed or started as asked."""


def pareto_doc(summary: Summary) -> ParetoDocument:
    """pareto.json: the measured front over all objectives, with what its numbers mean."""
    return {"format": PARETO_FORMAT, **{key: summary.get(key) for key in ("name", "objectives", "units")},
            "pareto": summary["pareto"]}


class RunStore:
    def __init__(self, store: Store | str):
        self.store = open_store(store) if isinstance(store, str) else store

    @property
    def uri(self) -> str:
        return self.store.uri

    def save_config(self, config) -> None:
        put_json(self.store, "config.json", config.model_dump())

    def save_measurements(self, frame: pd.DataFrame) -> str:
        """Append the table's last iteration as a part of its own (a retried iteration replaces
        its part), so an iteration writes its own rows, not the whole table; every
        COMPACT_PARTS parts the whole table is compacted (`compact_measurements`).
        Returns the key that holds the last iteration's rows."""
        if not len(frame):
            return MEASUREMENTS
        last = int(frame["iteration"].max())
        put_table(self.store, _part_key(last), frame[frame["iteration"] == last])
        if len(self._parts()) >= COMPACT_PARTS:
            self.compact_measurements(frame)
            return MEASUREMENTS
        return _part_key(last)

    def compact_measurements(self, frame: pd.DataFrame) -> None:
        """`frame` (the whole table) as measurements.parquet, then the parts it holds deleted.
        A kill in between leaves rows in both, which loading merges (`concat` keeps one)."""
        put_table(self.store, MEASUREMENTS, frame)
        last = int(frame["iteration"].max()) if len(frame) else -1
        for iteration, key in self._parts():
            if iteration <= last:
                self.store.delete(key)
                self.store.delete(key + ".sha256")

    def _parts(self) -> list[tuple[int, str]]:
        parts = []
        for key in self.store.list(PARTS):
            name = key[len(PARTS):]
            if name.startswith("iter-") and name.endswith(".parquet") and name[5:-8].isdigit():
                parts.append((int(name[5:-8]), key))
        return sorted(parts)

    def load_measurements(self, recover: bool = False) -> pd.DataFrame:
        """measurements.parquet plus the parts appended since its compaction, merged.

        With `recover`, a damaged piece gives way: a damaged compacted table to the newest
        intact snapshot of a run written before parts existed, else to the evaluation cache
        alone; a damaged part ends the table at the iteration before it. Resume re-measures
        nothing it lacks: those measurements come back from the cache."""
        frames = []
        if self.store.exists(MEASUREMENTS):
            try:
                frames.append(get_table(self.store, MEASUREMENTS))
            except StoreError as exc:
                if not recover:
                    raise
                return self._snapshot(exc)
        for iteration, key in self._parts():
            try:
                frames.append(get_table(self.store, key))
            except StoreError as exc:
                if not recover:
                    raise
                log.warning("%s; resuming from the table before iteration %d", exc, iteration)
                break
        if len(frames) == 1:
            return frames[0]
        return concat(*frames) if frames else to_frame([])

    def _snapshot(self, exc: Exception) -> pd.DataFrame:
        for key in sorted((k for k in self.store.list("tables/") if k.endswith(".parquet")), reverse=True):
            try:
                frame = get_table(self.store, key)
            except StoreError:
                continue
            log.warning("%s; resuming from the snapshot %s", exc, key)
            return frame
        log.warning("%s; no intact snapshot either: resuming from the evaluation cache alone", exc)
        return to_frame([])

    def save_population(self, population: dict[str, Any]) -> None:
        put_json(self.store, f"populations/iter-{population['iteration']:03d}.json", population)

    def save_predictors(self, iteration: int, predictors: dict[str, Any]) -> None:
        """What was fitted, as data (model, chosen hyperparameters, records): never a pickle."""
        from linas_lib.search.core import describe_predictors

        put_json(self.store, f"predictors/iter-{iteration:03d}.json", describe_predictors(predictors))

    def load_predictors(self, iteration: int, config, space) -> dict[str, Any]:
        """The predictors trained after `iteration`, refitted from the table as it stood then.

        Fitting is deterministic given the records, so nothing executable is ever read
        back from a store: a planted pickle has nothing to be loaded by."""
        from linas_lib.search.core import fit_predictors

        frame = self.load_measurements()
        return fit_predictors(config, space, frame[frame["iteration"] <= iteration], iteration + 1)

    def save_results(self, summary: Summary) -> Summary:
        """Save pareto.json and summary.json; return the summary as saved (with its finished_at)."""
        from linas_lib.measurements import iso_time

        summary = {**summary, "finished_at": iso_time(time.time())}
        put_json(self.store, PARETO, pareto_doc(summary))
        put_json(self.store, SUMMARY, summary)
        return summary

    def load_summary(self) -> Summary:
        return get_json(self.store, SUMMARY)

    # ---- run lifecycle: fresh, resumed, recurring -----------------------------
    def exists(self) -> bool:
        return self.store.exists("config.json")

    def is_finished(self) -> bool:
        return self.store.exists(SUMMARY)

    def load_config_dict(self) -> dict[str, Any]:
        return get_json(self.store, "config.json")

    def archive_finished(self) -> str | None:
        """Move a finished run at this location into history/ (idempotent: a retried task
        archives the same run under the same stamp) and point previous.json at it."""
        if not self.is_finished():
            return None
        from linas_lib.measurements import epoch_time

        summary = self.load_summary()
        if self._parts():  # the archive holds the whole table in one file
            self.compact_measurements(self.load_measurements())
        # ISO-8601 since summary format 2, an epoch float before
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch_time(summary.get("finished_at"))))
        stamp += "-" + hashlib.sha256(get_checked(self.store, SUMMARY)).hexdigest()[:8]
        prefix = f"{HISTORY}/{stamp}"
        for key in ("config.json", MEASUREMENTS, SUMMARY):
            if self.store.exists(key) and not self.store.exists(f"{prefix}/{key}"):
                put_checked(self.store, f"{prefix}/{key}", get_checked(self.store, key))
        put_json(self.store, "previous.json", {"history": prefix, "finished_at": summary.get("finished_at")})
        # the results belong to the archived run now; this location holds an unfinished run
        for key in (SUMMARY, PARETO, "report.html", "report.md", "drift.json", HARDWARE):
            for k in (key, key + ".sha256"):
                self.store.delete(k)
        return prefix

    def start_fresh(self, config) -> None:
        """A new run at this location: archive a finished one, drop an unfinished one's
        iterations (its measurements stay in the cache), record the config."""
        self.archive_finished()
        self.clear_progress()
        self.save_config(config)

    def clear_progress(self) -> None:
        """A fresh start: drop an unfinished run's iterations (its measurements stay in the cache)."""
        for prefix in ("populations/", "predictors/", "tables/", PARTS, MEASUREMENTS, "drift.json", HARDWARE):
            for key in self.store.list(prefix):
                self.store.delete(key)

    def load_previous(self) -> pd.DataFrame | None:
        """The measurements of the run this one started from, if any."""
        if not self.store.exists("previous.json"):
            return None
        prefix = get_json(self.store, "previous.json")["history"]
        return get_table(self.store, f"{prefix}/{MEASUREMENTS}")

    def save_drift(self, drift: dict[str, Any]) -> None:
        put_json(self.store, "drift.json", drift)

    def load_drift(self) -> dict[str, Any] | None:
        return get_json(self.store, "drift.json") if self.store.exists("drift.json") else None

    def save_hardware(self, hardware: dict[str, Any]) -> None:
        put_json(self.store, HARDWARE, hardware)

    def load_hardware(self) -> dict[str, Any]:
        return get_json(self.store, HARDWARE) if self.store.exists(HARDWARE) else {}

    def save_text(self, name: str, text: str) -> None:
        put_checked(self.store, name, text.encode())
