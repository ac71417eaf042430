"""The predictors above `EXACT_MAX_RECORDS` records: costs linear in records.

Up to the threshold every estimator is exactly what it always was (libsvm on a
precomputed n x n kernel, RidgeCV), so searches at the usual budgets do not change.
Above it, an n x n kernel (80 GB at 100,000 records) and libsvm's superlinear time are
out of reach, and each estimator switches, by record count alone, to a method whose
cost grows linearly (the choice is recorded in its `scaling_`):

* ridge (`gram`): the same leave-one-out choice of alpha, from the eigendecomposition
  of the p x p Gram matrix instead of an SVD of the n x p design: O(n p^2), same alpha.
* RBF SVR (`nystroem`): gamma, C and epsilon are chosen as before, on a random subsample
  of `SELECTION_RECORDS`; the model over all records is ridge regression on Nystrom
  features of that RBF kernel (m landmark rows, Williams & Seeger 2001), i.e. kernel
  ridge regression restricted to the landmarks' span: O(n m^2) time, O(chunk x m)
  memory. Its alpha is chosen on a held-out part, from one eigendecomposition.
* linear SVR (`subsample`): exact on a random subsample of the threshold's size; a
  linear model over ~100 one-hot features is saturated long before that.
* bootstrap ensembles: members on m-out-of-n bootstrap samples (Bickel, Goetze & van
  Zwet 1997) of `MEMBER_RECORDS`, with the spread scaled by sqrt(m / n), the
  parametric rate: the members' cost stays fixed as the table grows.
* stacking (`blend`): the final ridge learns from the bases' predictions on the SVR's
  held-out part (blending) instead of k-fold out-of-fold predictions.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg.blas import dsyrk

EXACT_MAX_RECORDS = 2000   # at most this many records: the exact estimators, unchanged
SELECTION_RECORDS = 1000   # SVR hyperparameters are chosen on a subsample this size
MEMBER_RECORDS = 1000      # bootstrap members' sample size above the threshold
LANDMARKS = 300            # Nystrom landmark rows: fit time ~ n * m^2
HOLDOUT_FRACTION, HOLDOUT_MAX = 0.2, 10_000
NYSTROEM_ALPHAS = tuple(float(a) for a in np.logspace(-9, 1, 21))  # times the mean eigenvalue
CHUNK = 8192               # rows per kernel block


def is_binary(F: np.ndarray) -> bool:
    return bool(np.all((F == 0) | (F == 1)))


class RBFBlocks:
    """exp(-gamma |a - l|^2) between row blocks and fixed landmark rows.

    One-hot rows are binary, so the products are small integers, exact in float32
    (half the time of float64), and the kernel is a table lookup by distance. Other rows
    (derived features) take float32 products too: a relative error of 1e-7 in a squared
    distance moves no kernel value that matters; the Gram sums stay in float64.
    """

    def __init__(self, landmarks: np.ndarray, gamma: float, binary: bool):
        self.L, self.gamma, self.binary = landmarks, float(gamma), binary
        self.norms = np.einsum("ij,ij->i", landmarks, landmarks)
        self.L32 = landmarks.astype(np.float32)
        if binary:
            self.table = np.exp(-self.gamma * np.arange(int(self.norms.max()) + landmarks.shape[1] + 1))

    def __call__(self, A: np.ndarray) -> np.ndarray:
        a_norms = np.einsum("ij,ij->i", A, A)
        if self.binary and is_binary(A):
            G = A.astype(np.float32) @ self.L32.T
            G *= -2.0
            G += a_norms.astype(np.float32)[:, None]
            G += self.norms.astype(np.float32)[None, :]
            return self.table.take(np.rint(G).astype(np.int32).clip(0, len(self.table) - 1))
        D = (A.astype(np.float32) @ self.L32.T).astype(np.float64)
        D *= -2.0
        D += a_norms[:, None]
        D += self.norms[None, :]
        np.maximum(D, 0.0, out=D)
        D *= -self.gamma
        return np.exp(D, out=D)


def _chunks(index: np.ndarray):
    for start in range(0, len(index), CHUNK):
        yield index[start:start + CHUNK]


def _gram(F: np.ndarray, z: np.ndarray, index: np.ndarray, kernel: RBFBlocks) -> tuple[np.ndarray, ...]:
    """K^T K, K^T 1 and K^T z over the rows `index` (K: their kernel rows), block by block."""
    m = len(kernel.L)
    M, s, b = np.zeros((m, m), order="F"), np.zeros(m), np.zeros(m)
    for rows in _chunks(index):
        K = kernel(F[rows])
        M = dsyrk(1.0, K.T, beta=1.0, c=M, trans=0, lower=0, overwrite_c=1)  # upper triangle of K^T K
        s += K.sum(axis=0)
        b += K.T @ z[rows]
    return np.triu(M) + np.triu(M, 1).T, s, b


def nystroem_krr(F: np.ndarray, z: np.ndarray, gamma: float, landmarks: int, rng) -> dict[str, Any]:
    """Ridge on Nystrom RBF features, with an unpenalized intercept; alpha by hold-out.

    Returns the landmarks, the weights over their kernel (`beta`), the intercept,
    the held-out rows with their predictions at the chosen alpha, and what was chosen.
    """
    n = len(z)
    L = F[np.sort(rng.choice(n, min(int(landmarks), n), replace=False))]
    kernel = RBFBlocks(L, gamma, is_binary(F))
    lam, U = np.linalg.eigh(kernel(L))
    keep = lam > 1e-10 * lam.max()
    T = U[:, keep] / np.sqrt(lam[keep])  # Nystrom features of a row: k(row, L) @ T

    h = max(1, min(HOLDOUT_MAX, int(n * HOLDOUT_FRACTION)))
    perm = rng.permutation(n)
    held, train = np.sort(perm[:h]), np.sort(perm[h:])
    M_tr, s_tr, b_tr = _gram(F, z, train, kernel)
    K_ho = kernel(F[held])

    def system(M, s, b, count, z_sum):
        mu, z_bar = s / count, z_sum / count  # centring: the intercept is not penalized
        A = T.T @ (M - count * np.outer(mu, mu)) @ T
        return A, T.T @ (b - count * mu * z_bar), mu, z_bar

    A, c, mu, z_bar = system(M_tr, s_tr, b_tr, len(train), z[train].sum())
    S, V = np.linalg.eigh(A)
    S = np.clip(S, 0.0, None)
    P = (K_ho - mu) @ (T @ V)
    Vc = V.T @ c
    scale = max(float(S.mean()), 1e-12)
    scores, preds = [], []
    for a in NYSTROEM_ALPHAS:
        pred = P @ (Vc / (S + a * scale)) + z_bar
        scores.append(float(np.mean((pred - z[held]) ** 2)))
        preds.append(pred)
    best = int(np.argmin(scores))
    alpha = NYSTROEM_ALPHAS[best] * scale

    # the final model on every record: the held-out block joins the training sums
    M_all = M_tr + K_ho.T @ K_ho
    A, c, mu, z_bar = system(M_all, s_tr + K_ho.sum(axis=0), b_tr + K_ho.T @ z[held], n, z.sum())
    A[np.diag_indices_from(A)] += alpha
    w = np.linalg.solve(A, c)
    beta = T @ w
    return {"kernel": kernel, "beta": beta, "intercept": float(z_bar - mu @ beta), "held": held,
            "held_predictions": preds[best], "landmarks": len(L), "rank": int(keep.sum()), "holdout": int(h),
            "alpha": float(NYSTROEM_ALPHAS[best]), "holdout_mse": scores[best]}


def nystroem_predict(kernel: RBFBlocks, beta: np.ndarray, intercept: float, F: np.ndarray) -> np.ndarray:
    out = np.empty(len(F))
    for start in range(0, len(F), CHUNK):
        block = F[start:start + CHUNK]
        out[start:start + len(block)] = kernel(block) @ beta + intercept
    return out


def ridge_gram(F: np.ndarray, z: np.ndarray, alphas) -> tuple[float, np.ndarray, float, float]:
    """RidgeCV's efficient leave-one-out, from the p x p Gram matrix: (alpha, coef, intercept, LOO MSE).

    With an unpenalized intercept the hat matrix is 11^T/n + Xc (Xc^T Xc + alpha I)^-1 Xc^T;
    one eigendecomposition of Xc^T Xc gives its diagonal and the fit for every alpha.
    """
    n = len(z)
    f_mean, z_mean = F.mean(axis=0), float(z.mean())
    Fc = F - f_mean
    zc = z - z_mean
    lam, V = np.linalg.eigh(Fc.T @ Fc)
    lam = np.clip(lam, 0.0, None)
    Q = Fc @ V
    del Fc
    qz = Q.T @ zc
    d = 1.0 / (lam[:, None] + np.asarray(alphas, dtype=np.float64)[None, :])  # (p, alphas): one pass over Q
    fitted = Q @ (qz[:, None] * d)
    Q *= Q
    h = 1.0 / n + Q @ d
    losses = np.mean(((zc[:, None] - fitted) / np.maximum(1.0 - h, 1e-12)) ** 2, axis=0).tolist()
    best = int(np.argmin(losses))
    alpha = float(alphas[best])
    coef = V @ (qz / (lam + alpha))
    return alpha, coef, float(z_mean - f_mean @ coef), losses[best]


def check_size(name: str, value, least: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")


def spread_scale(member_records: int, records: int) -> float:
    """How much narrower the full-data model's spread is than m-out-of-n members': sqrt(m / n)."""
    return math.sqrt(member_records / records)
