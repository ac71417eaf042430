"""Kernel matrices over (one-hot) feature rows, computed once and reused.

Active-gene one-hot rows are binary, so the squared Euclidean distance between two
rows is an integer (twice the number of active genes the two networks do not share,
plus the genes only one of them has). That lets one distance matrix serve every
RBF width tried during hyperparameter selection: a width is then a table lookup.
"""
from __future__ import annotations

import numpy as np


def sq_norms(F: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", F, F)


def sq_distances(A: np.ndarray, B: np.ndarray, a_norms: np.ndarray | None = None,
                 b_norms: np.ndarray | None = None) -> np.ndarray:
    """(len(A), len(B)) squared Euclidean distances; integers when both sides are binary."""
    a_norms = sq_norms(A) if a_norms is None else a_norms
    b_norms = sq_norms(B) if b_norms is None else b_norms
    D = A @ B.T
    D *= -2.0
    D += a_norms[:, None]
    D += b_norms[None, :]
    np.maximum(D, 0.0, out=D)
    if _binary(A) and _binary(B):
        return np.rint(D).astype(np.intp)
    return D


def _binary(F: np.ndarray) -> bool:
    return bool(np.all((F == 0) | (F == 1)))


def rbf_from_sq_distances(D: np.ndarray, gamma: float) -> np.ndarray:
    """exp(-gamma * D), as a table lookup when the distances are integers."""
    if D.dtype.kind in "iu" and D.size:
        return np.exp(-gamma * np.arange(int(D.max()) + 1)).take(D)
    return np.exp(-gamma * D)


def scale_gamma(F: np.ndarray) -> float:
    """scikit-learn's gamma='scale': 1 / (n_features * X.var())."""
    var = float(F.var())
    return 1.0 / (F.shape[1] * var) if var > 0 else 1.0
