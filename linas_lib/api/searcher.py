"""The searcher protocol: ask for candidates, be told their objective values.

As in pymoo's ask/tell interface, the searcher never evaluates anything itself, so
the same algorithm drives a validation-only search (real measurements) and the
LINAS inner loop (predictions). All values are in minimization form.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Searcher(Protocol):
    def ask(self) -> np.ndarray:
        """Next batch of integer encodings, shape (n, n_var)."""

    def tell(self, encodings: np.ndarray, objectives: np.ndarray) -> None:
        """Objective values (n, n_obj), minimization form, for the batch just asked."""

    def has_next(self) -> bool:
        """False once the searcher's evaluation budget is spent."""
