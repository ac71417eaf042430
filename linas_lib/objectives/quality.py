"""Quality metric (accuracy, HR@10, BLEU...) plus MACs and parameters."""
from __future__ import annotations

from typing import Any

import numpy as np


def measure_quality(supernet, encodings: np.ndarray, quality: bool = True) -> list[dict[str, Any]]:
    """With `quality` False (a latency-only search, e.g. OFA without weights) only the
    complexity is recorded, from the plugin's `complexity` when it has one."""
    space = supernet.space
    X = space.canonicalize(encodings)
    rows = []
    for encoding, key in zip(X, space.keys(X)):
        try:
            if quality:
                (values,) = supernet.evaluate(encoding[None, :])
            elif hasattr(supernet, "complexity"):
                (values,) = supernet.complexity(encoding[None, :])
            else:
                values = {}
            rows.append({"subnet_id": key, "encoding": encoding.tolist(), "values": values, "error": ""})
        except Exception as exc:  # one broken sub-network must not sink the batch
            rows.append({"subnet_id": key, "encoding": encoding.tolist(), "values": {}, "error": f"quality: {exc!r}"})
    return rows
