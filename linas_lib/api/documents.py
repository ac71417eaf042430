"""The documents that cross module and process boundaries, typed.

* `Population`: from the search to the measuring side (in process, or as a KFP
  artifact between pods) and back with the measurements; its JSON form is what
  `populations/iter-NNN.json` in a run's store holds.
* `ObjectiveRecord`: what a measuring stage returns per sub-network (quality rows, a
  target's latency rows), joined into `MeasurementRow`s, the measurement table's rows.
* `Summary` (summary.json) and `ParetoDocument` (pareto.json): a run's results.

The JSON documents are TypedDicts: they stay plain data on the wire, and
`check_document` validates one where it is read back from a file or another process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_origin

import numpy as np
from typing_extensions import NotRequired, TypedDict

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


# ---- measurements --------------------------------------------------------------------------
class ObjectiveRecord(TypedDict):
    """One sub-network's values from one measuring stage, keyed by `ColumnKey` names."""

    subnet_id: str
    encoding: list[int]
    values: dict[str, float]
    error: str  # "" when measured
    cache: NotRequired[dict[str, str]]  # cache scope -> hit | miss
    fingerprint: NotRequired[dict[str, Any]]  # the hardware a latency was taken on
    attempts: NotRequired[int]
    quality_error: NotRequired[str]  # an INT8 target whose quantized quality could not be measured


class LatencyOutput(TypedDict):
    """A latency stage's artifact: one target's records, and its drift check when it ran one."""

    target: str
    rows: list[ObjectiveRecord]
    drift: dict[str, Any] | None


class MeasurementRow(TypedDict, extra_items=float):
    """A row of the measurement table: the fixed columns, then one float per value column
    (`accuracy`, `latency@cpu-ort`, `pred:accuracy`...), NaN where not measured."""

    run: str
    iteration: int
    subnet_id: str
    encoding: str  # the canonical encoding as a JSON list
    targets: str  # comma-separated target names
    status: Literal["ok", "failed"]
    error: str
    cache: str  # 'group[/scope]=hit|miss' items, ';'-separated (measurements.cache_fields reads them)
    timestamp: float


# ---- results -------------------------------------------------------------------------------
class ObjectiveDoc(TypedDict):
    name: str
    direction: Literal["max", "min"]
    unit: str


class TargetView(TypedDict):
    """A target's view: the shared objectives plus its own latency."""

    objectives: list[str]
    hypervolume: list[float]
    pareto: list[dict[str, Any]]


class CacheCounts(TypedDict):
    hits: int
    misses: int


class Summary(TypedDict):
    """summary.json: everything the report shows (search.core.summarize builds it)."""

    format: str
    name: str
    mode: str
    objectives: list[ObjectiveDoc]
    units: dict[str, str]
    evaluations: int
    successful: int
    failed: int
    iterations: int
    hypervolume: list[float]  # per iteration, on the fixed box (normalization)
    normalization: dict[str, Any] | None
    hypervolume_optimum: float | None
    predictor_quality: list[dict[str, Any]]
    pareto: list[dict[str, Any]]  # the measured front's records, architecture decoded
    targets: dict[str, TargetView]
    transferability: dict[str, dict[str, dict[str, float]]]
    cache: CacheCounts
    noisy_targets: dict[str, dict[str, Any]]
    hardware: dict[str, dict[str, Any]]
    drift: dict[str, Any]
    previous: dict[str, Any]
    finished_at: NotRequired[str]  # ISO-8601, set when saved


class ParetoDocument(TypedDict):
    """pareto.json: the measured front alone, for programs."""

    format: str
    name: str
    objectives: list[ObjectiveDoc]
    units: dict[str, str]
    pareto: list[dict[str, Any]]
    finished_at: NotRequired[str]


def check_document(kind: Any, doc: Any, where: str) -> Any:
    """`doc` validated as `kind` (one of the TypedDicts above); ValueError names the
    field and `where` it came from."""
    from pydantic import ValidationError

    try:
        return _adapter(kind).validate_python(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field_ = ".".join(str(p) for p in err["loc"]) or "(document)"
        name = str(kind).replace("linas_lib.api.documents.", "") if get_origin(kind) else kind.__name__
        raise ValueError(f"{where} is not a valid {name}: {field_}: {err['msg']} "
                         f"({exc.error_count()} problem(s))") from None


_ADAPTERS: dict[type, Any] = {}


def _adapter(kind: Any):
    from pydantic import TypeAdapter

    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]
