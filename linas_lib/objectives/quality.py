"""Quality metric (accuracy, HR@10, BLEU...) plus MACs and parameters."""
from __future__ import annotations

from typing import Any

import numpy as np


def measure_quality(supernet, encodings: np.ndarray) -> list[dict[str, Any]]:
    space = supernet.space
    X = space.canonicalize(encodings)
    rows = []
    for encoding, key in zip(X, space.keys(X)):
        try:
            (values,) = supernet.evaluate(encoding[None, :])
            rows.append({"subnet_id": key, "encoding": encoding.tolist(), "values": values, "error": ""})
        except Exception as exc:  # one broken sub-network must not sink the batch
            rows.append({"subnet_id": key, "encoding": encoding.tolist(), "values": {}, "error": f"quality: {exc!r}"})
    return rows
