"""The table of the toy tabular plugin (toy_table.py imports it: a module beside the plugin file)."""
from __future__ import annotations

import numpy as np

WIDTHS, DEPTHS, KERNELS = (8, 16, 32), (1, 2, 3), (3, 5, 7)


def make_table(seed: int) -> dict[tuple[int, int, int], tuple[float, float, float]]:
    """(width, depth, kernel) option indices -> (accuracy, latency in ms, parameters): more work
    is slower and, with diminishing returns, more accurate."""
    rng = np.random.default_rng(seed)
    table = {}
    for i, width in enumerate(WIDTHS):
        for j, depth in enumerate(DEPTHS):
            for k, kernel in enumerate(KERNELS):
                work = width * depth * kernel**2
                accuracy = 1 - 0.6 / (1 + work / 300) + rng.normal(0, 0.01)
                table[(i, j, k)] = (float(min(accuracy, 1.0)), float(1 + 0.05 * work**0.8), float(9 * work))
    return table
