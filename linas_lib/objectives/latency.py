"""Latency of each sub-network on one hardware target."""
from __future__ import annotations

from typing import Any

import numpy as np

from linas_lib.backends import build_backend
from linas_lib.measurements import latency_column


def measure_latency(supernet, encodings: np.ndarray, target, normalize: bool = False) -> list[dict[str, Any]]:
    """`target` is a TargetConfig; values are keyed `latency@<target>` and friends.

    With `normalize`, the largest sub-network is measured in the same session and each
    latency is also given as a ratio to it (`latency_norm@<target>`), which cancels
    the platform's speed so latencies from different platforms can be pooled.
    """
    backend = build_backend(target.backend, **target.backend_params())
    int8 = target.precision == "int8"
    if int8:  # post-training quantization calibrates on the plugin's own data
        if not hasattr(supernet, "calibration_inputs"):
            raise ValueError(f"target {target.name!r}: INT8 needs calibration data, and the "
                             f"{type(supernet).__name__} plugin has no calibration_inputs()")
        n_batches = max(1, -(-target.calibration_samples // target.batch_size))
        backend.set_calibration(supernet.calibration_inputs(target.batch_size, n_batches))
    space = supernet.space
    X = space.canonicalize(encodings)
    col = latency_column(target.name)
    quality = supernet.quality_metric
    reference = None
    if normalize:
        module, inputs = supernet.export_module(space.canonicalize(space.upper)[0], target.batch_size)
        reference = backend.measure(module, inputs).median_ms
    rows = []
    for encoding, key in zip(X, space.keys(X)):
        row: dict[str, Any] = {"subnet_id": key, "encoding": encoding.tolist(), "values": {}, "error": ""}
        try:
            module, inputs = supernet.export_module(encoding, target.batch_size)
            prepared = backend.prepare(module, inputs)
            result = backend.time(prepared)
            row["values"] = {col: result.median_ms, f"latency_cv@{target.name}": result.cv,
                             f"latency_p90@{target.name}": result.p90_ms}
            if int8 and hasattr(supernet, "evaluate_exported"):
                # the quantized model's own quality: the INT8 search space is what is deployed
                try:
                    row["values"][f"{quality}@{target.name}"] = supernet.evaluate_exported(encoding, prepared.runner)[quality]
                except Exception as exc:  # e.g. OFA without weights: latency stands on its own
                    row["quality_error"] = f"{quality}@{target.name}: {exc}"
            if reference:
                row["values"][f"latency_norm@{target.name}"] = result.median_ms / reference
            row["fingerprint"] = {**result.fingerprint, **{f"node_{k}": v for k, v in target.node_fingerprint.items()}}
        except Exception as exc:
            row["error"] = f"latency@{target.name}: {exc!r}"
        rows.append(row)
    return rows
