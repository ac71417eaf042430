"""Quality metric (accuracy, HR@10, BLEU...) plus MACs and parameters."""
from __future__ import annotations

from contextlib import closing
from typing import Any

import numpy as np

from linas_lib.api.documents import ObjectiveRecord
from linas_lib.api.supernet import complexity_rows
from linas_lib.cache import EvaluationCache, quality_scope
from linas_lib.objectives.attempts import attempt
from linas_lib.objectives.recording import record_durably
from linas_lib.objectives.workers import in_parallel, torch_sees_a_gpu, usable_workers


def measure_quality(
    supernet, encodings: np.ndarray, quality: bool = True, *, policy=None, cache: EvaluationCache | None = None
) -> list[ObjectiveRecord]:
    """One row per sub-network: values, or the reason they could not be measured.

    With `quality` False (a latency-only search, e.g. OFA without weights) only the
    complexity is recorded, from the plugin's `complexity` when it has one. Cached
    values are reused (`cache: hit`); new ones are written to the cache one by one,
    as soon as each is measured, so a crash loses at most the ones in flight: one, or one
    per worker with `policy.workers` processes scoring side by side.
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

    misses = [i for i, key in enumerate(keys) if key not in hits]

    def measure(k: int):
        return attempt(lambda: evaluate(X[misses[k]]), policy, "quality")

    rows: list[dict[str, Any]] = [
        {"subnet_id": key, "encoding": encoding.tolist(), "cache": {scope: "miss"}} for encoding, key in zip(X, keys)]
    for row in rows:
        if row["subnet_id"] in hits:
            row.update(values=hits[row["subnet_id"]]["values"], error="", cache={scope: "hit"})
    # Scores are independent of each other: several processes where configured (CPU scoring;
    # complexity alone is too cheap to hand out). Each is recorded as soon as it arrives.
    workers = usable_workers(policy.workers, len(misses), on_gpu=torch_sees_a_gpu()) if quality else 1
    try:
        with closing(in_parallel(measure, len(misses), workers)) as measured:
            for k, outcome in measured:
                if isinstance(outcome, BaseException):
                    outcome = {}, f"quality: {type(outcome).__name__}: {outcome}", 1
                values, error, tries = outcome
                row = rows[misses[k]]
                row.update(values=values, error=error, attempts=tries)
                if cache and not error:
                    record_durably(cache, scope, row["subnet_id"], {"subnet_id": row["subnet_id"],
                                                                    "encoding": row["encoding"], "values": values})
    finally:  # what was recorded becomes one index pack (look-ups read packs, not entries)
        if cache:
            cache.close_batch(scope)
    return rows
