"""Quality metric (accuracy, HR@10, BLEU...) plus MACs and parameters."""
from __future__ import annotations

from typing import Any

import numpy as np

from linas_lib.api.documents import ObjectiveRecord
from linas_lib.api.supernet import complexity_rows
from linas_lib.cache import EvaluationCache, quality_scope
from linas_lib.objectives.attempts import attempt
from linas_lib.objectives.recording import record_durably


def measure_quality(
    supernet, encodings: np.ndarray, quality: bool = True, *, policy=None, cache: EvaluationCache | None = None
) -> list[ObjectiveRecord]:
    """One row per sub-network: values, or the reason they could not be measured.

    With `quality` False (a latency-only search, e.g. OFA without weights) only the
    complexity is recorded, from the plugin's `complexity` when it has one. Cached
    values are reused (`cache: hit`); new ones are written to the cache one by one,
    as soon as each is measured, so a crash loses at most the one in flight.
    """
    from linas_lib.config import MeasurementPolicy

    policy = policy or MeasurementPolicy(retries=0)
    space = supernet.space
    X = space.canonicalize(encodings)
    keys = space.keys(X)
    scope = quality_scope(supernet.quality_metric if quality else None)
    hits = cache.lookup(scope, keys) if cache else {}

    def evaluate(encoding):
        if quality:
            return supernet.evaluate(encoding[None, :])[0]
        if hasattr(supernet, "complexity"):
            return complexity_rows(supernet, encoding[None, :])[0]
        return {}

    rows = []
    try:
        for encoding, key in zip(X, keys):
            row: dict[str, Any] = {"subnet_id": key, "encoding": encoding.tolist(), "cache": {scope: "miss"}}
            if key in hits:
                row.update(values=hits[key]["values"], error="", cache={scope: "hit"})
            else:
                values, error, tries = attempt(lambda: evaluate(encoding), policy, "quality")
                row.update(values=values, error=error, attempts=tries)
                if cache and not error:
                    record_durably(cache, scope, key, {"subnet_id": key, "encoding": encoding.tolist(),
                                                       "values": values})
            rows.append(row)
    finally:  # what was recorded becomes one index pack (look-ups read packs, not entries)
        if cache:
            cache.close_batch(scope)
    return rows
