"""The predictor contract is scikit-learn's: a regressor over integer encodings.

`fit(X, y)` returns self, learned state ends in `_`, and `predict(X)` takes the
whole population at once. Registered factories build such estimators for a space.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Predictor(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray) -> "Predictor": ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...
