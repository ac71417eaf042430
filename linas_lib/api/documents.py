"""The documents that cross module and process boundaries, typed.

A population travels from the search to the measuring side (in process, or as a KFP
artifact between pods) and back with the measurements; its JSON form is what
`populations/iter-NNN.json` in a run's store holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# subnet_id -> {encoding, latency, scope}, per target: a recurring run's previous front
PreviousFronts = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Population:
    """The sub-networks of one iteration to measure, with what the predictors expect of them."""

    iteration: int
    encodings: np.ndarray  # (n, n_var) canonical
    subnet_ids: list[str]
    predicted: dict[str, list[float]] | None = None  # objective -> values in its own direction (LINAS)
    # a recurring run's first population: the fronts whose drift the measuring side checks first
    previous_fronts: PreviousFronts = field(default_factory=dict)

    @classmethod
    def of(cls, space, iteration: int, X: np.ndarray, predicted: np.ndarray | None = None, objectives=(),
           previous_fronts: PreviousFronts | None = None) -> "Population":
        """From canonical encodings and (min-form) predictions in `objectives`' order."""
        values = None
        if predicted is not None:
            values = {o.name: o.from_min(predicted[:, j]).tolist() for j, o in enumerate(objectives)}
        X = np.asarray(X, dtype=np.int64).reshape(len(X), space.n_var)
        return cls(iteration, X, space.keys(X), values, dict(previous_fronts or {}))

    def __len__(self) -> int:
        return len(self.subnet_ids)

    def predictions(self) -> dict[str, dict[str, float]] | None:
        """subnet_id -> objective -> predicted value, as the measurement table records them."""
        if not self.predicted:
            return None
        return {key: {name: values[i] for name, values in self.predicted.items()}
                for i, key in enumerate(self.subnet_ids)}

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"iteration": self.iteration, "subnet_ids": list(self.subnet_ids),
                               "encodings": self.encodings.tolist()}
        if self.predicted is not None:
            doc["predicted"] = self.predicted
        if self.previous_fronts:
            doc["previous_fronts"] = self.previous_fronts
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "Population":
        encodings = doc["encodings"]
        X = np.asarray(encodings, dtype=np.int64).reshape(len(encodings), -1)
        return cls(int(doc["iteration"]), X, list(doc["subnet_ids"]), doc.get("predicted"),
                   dict(doc.get("previous_fronts") or {}))
