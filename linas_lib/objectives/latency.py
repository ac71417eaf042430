"""Latency of each sub-network on one hardware target."""
from __future__ import annotations

from typing import Any

import numpy as np

from linas_lib.backends import build_backend
from linas_lib.measurements import latency_column


def measure_latency(supernet, encodings: np.ndarray, target) -> list[dict[str, Any]]:
    """`target` is a TargetConfig; values are keyed `latency@<target>` and friends."""
    backend = build_backend(target.backend, **target.backend_params())
    space = supernet.space
    X = space.canonicalize(encodings)
    col = latency_column(target.name)
    rows = []
    for encoding, key in zip(X, space.keys(X)):
        row: dict[str, Any] = {"subnet_id": key, "encoding": encoding.tolist(), "values": {}, "error": ""}
        try:
            module, inputs = supernet.export_module(encoding, target.batch_size)
            result = backend.measure(module, inputs)
            row["values"] = {col: result.median_ms, f"latency_cv@{target.name}": result.cv,
                             f"latency_p90@{target.name}": result.p90_ms}
            row["fingerprint"] = result.fingerprint
        except Exception as exc:
            row["error"] = f"latency@{target.name}: {exc!r}"
        rows.append(row)
    return rows
