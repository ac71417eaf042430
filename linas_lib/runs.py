"""The layout of one run inside a store; the only module that knows key names.

    config.json                 the validated config
    measurements.parquet        every measurement so far (the run's database)
    populations/iter-NNN.json   each iteration's population, with predictions
    predictors/iter-NNN.joblib  the predictors trained after iteration NNN
    pareto.json, summary.json   results, derived from the measurements
    report.html, report.md      the human-readable report
"""
from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pandas as pd

from linas_lib.api.store import Store, get_checked, get_json, get_table, put_checked, put_json, put_table
from linas_lib.measurements import to_frame
from linas_lib.stores import open_store

MEASUREMENTS = "measurements.parquet"


def population_doc(space, iteration: int, X: np.ndarray, predicted: np.ndarray | None, objectives) -> dict[str, Any]:
    """A population as plain JSON: encodings, ids and (LINAS) the values predicted for them."""
    doc: dict[str, Any] = {"iteration": iteration, "subnet_ids": space.keys(X), "encodings": X.tolist()}
    if predicted is not None:
        doc["predicted"] = {o.name: o.from_min(predicted[:, j]).tolist() for j, o in enumerate(objectives)}
    return doc


def predictions_by_id(doc: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    predicted = doc.get("predicted")
    if not predicted:
        return None
    return {key: {name: values[i] for name, values in predicted.items()} for i, key in enumerate(doc["subnet_ids"])}


class RunStore:
    def __init__(self, store: Store | str):
        self.store = open_store(store) if isinstance(store, str) else store

    @property
    def uri(self) -> str:
        return self.store.uri

    def save_config(self, config) -> None:
        put_json(self.store, "config.json", config.model_dump())

    def save_measurements(self, frame: pd.DataFrame) -> None:
        put_table(self.store, MEASUREMENTS, frame)

    def load_measurements(self) -> pd.DataFrame:
        if not self.store.exists(MEASUREMENTS):
            return to_frame([])
        return get_table(self.store, MEASUREMENTS)

    def save_population(self, population: dict[str, Any]) -> None:
        put_json(self.store, f"populations/iter-{population['iteration']:03d}.json", population)

    def save_predictors(self, iteration: int, predictors: dict[str, Any]) -> None:
        buf = io.BytesIO()
        joblib.dump(predictors, buf)
        put_checked(self.store, f"predictors/iter-{iteration:03d}.joblib", buf.getvalue())

    def load_predictors(self, iteration: int) -> dict[str, Any]:
        # joblib unpickles: only ever load predictors this project wrote into its own store
        return joblib.load(io.BytesIO(get_checked(self.store, f"predictors/iter-{iteration:03d}.joblib")))

    def save_results(self, summary: dict[str, Any]) -> None:
        put_json(self.store, "pareto.json", summary["pareto"])
        put_json(self.store, "summary.json", summary)

    def load_summary(self) -> dict[str, Any]:
        return get_json(self.store, "summary.json")

    def save_text(self, name: str, text: str) -> None:
        put_checked(self.store, name, text.encode())
