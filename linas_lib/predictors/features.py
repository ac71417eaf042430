"""Predictor features of canonical encodings: one-hot or ordinal genes, plus derived values.

* `onehot`: one column per (gene, option); a gene hidden by its parent contributes
  zeros, so two encodings of the same network get identical features and the
  predictor never learns from genes that do not exist.
* `ordinal`: one column per gene, its option index scaled to [0, 1] (0 when hidden):
  fewer features, and it says that kernel 7 lies beyond 5, which one-hot cannot.
* `+derived`: the plugin's cheap derived features (e.g. log MACs, log params, depth;
  see `linas_lib.search.problem`), standardized on the training set.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from linas_lib.api.search_space import SearchSpace

FEATURE_KINDS = ("onehot", "ordinal", "derived", "onehot+derived", "ordinal+derived", "auto")


def resolve_kind(kind: str, derived: Callable | None) -> str:
    """'auto' is one-hot plus derived features when the plugin offers them."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_KINDS)}, got {kind!r}")
    if kind == "auto":
        return "onehot+derived" if derived is not None else "onehot"
    if "derived" in kind and derived is None:
        raise ValueError(f"features={kind!r} needs derived features, and this super-network offers none "
                         "(a plugin gives them with features() or a fast complexity())")
    return kind


class ActiveOneHot(TransformerMixin, BaseEstimator):
    """Encodings -> one-hot matrix over the active genes."""

    def __init__(self, space: SearchSpace | None = None):
        self.space = space

    def fit(self, X, y=None):
        cards = self.space.cardinalities
        self.offsets_ = np.concatenate([[0], np.cumsum(cards)[:-1]])
        self.n_features_out_ = int(cards.sum())
        return self

    def transform(self, X):
        X = self.space.validate(X)
        return self.encode(X, self.space.active_mask(X))

    def encode(self, X: np.ndarray, active: np.ndarray, extra: int = 0) -> np.ndarray:
        """One-hot rows of valid encodings whose active genes are known, followed by `extra`
        zero columns for the caller to fill (one allocation instead of a stack)."""
        n, width = len(X), self.n_features_out_ + extra
        out = np.zeros((n, width + 1), dtype=np.float64)  # the last column takes the hidden genes' ones
        flat = np.where(active, self.offsets_ + X, width)
        flat += (np.arange(n) * (width + 1))[:, None]
        out.reshape(-1)[flat.reshape(-1)] = 1.0
        return out[:, :width]


class EncodingFeatures(TransformerMixin, BaseEstimator):
    """The feature matrix the predictors learn from (see the module docstring)."""

    def __init__(self, space: SearchSpace | None = None, kind: str = "onehot", derived: Callable | None = None):
        self.space = space
        self.kind = kind
        self.derived = derived

    def fit(self, X, y=None):
        X = self.space.validate(X)
        self._fit(self.space.canonicalize_valid(X))
        return self

    def fit_transform(self, X, y=None):
        X = self.space.validate(X)
        active = self.space.active_mask(X)
        canonical = np.where(active, X, 0)
        return self._assemble(canonical, active, self._fit(canonical))

    def _fit(self, canonical: np.ndarray) -> np.ndarray | None:
        """Learn the scaling of the derived features; hand back their raw values."""
        self.kind_ = resolve_kind(self.kind, self.derived)
        self.onehot_ = ActiveOneHot(self.space).fit(None) if self.kind_.startswith("onehot") else None
        if "derived" not in self.kind_:
            return None
        D = self._derived(canonical)
        self.derived_mean_ = D.mean(axis=0)
        std = D.std(axis=0)
        self.derived_scale_ = np.where(std > 1e-12, std, 1.0)
        return D

    def _derived(self, X: np.ndarray) -> np.ndarray:
        D = np.asarray(self.derived(X), dtype=np.float64).reshape(len(X), -1)
        if not np.all(np.isfinite(D)):
            raise ValueError("derived features contain NaN or infinite values")
        return D

    def transform(self, X):
        X = self.space.validate(X)
        active = self.space.active_mask(X)
        return self._assemble(np.where(active, X, 0), active)

    def _assemble(self, canonical: np.ndarray, active: np.ndarray, D: np.ndarray | None = None) -> np.ndarray:
        # Canonical rows, so that aliases of one network get one feature row.
        if "derived" in self.kind_:
            D = (self._derived(canonical) if D is None else D) - self.derived_mean_
            D /= self.derived_scale_
            if self.kind_ == "derived":
                return D
        if self.onehot_ is not None:
            genes = self.onehot_.encode(canonical, active, 0 if D is None else D.shape[1])
        else:
            scale = np.maximum(self.space.upper, 1).astype(np.float64)
            genes = np.where(active, canonical / scale, 0.0)
            return genes if D is None else np.hstack([genes, D])
        if D is not None:
            genes[:, genes.shape[1] - D.shape[1]:] = D
        return genes
