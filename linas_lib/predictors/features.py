"""One-hot features over the active genes of a canonical encoding."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from linas_lib.api.search_space import SearchSpace


class ActiveOneHot(TransformerMixin, BaseEstimator):
    """Encodings -> one-hot matrix; a gene hidden by its parent contributes zeros.

    Two encodings of the same network therefore get identical features, so the
    predictor never learns from genes that do not exist.
    """

    def __init__(self, space: SearchSpace | None = None):
        self.space = space

    def fit(self, X, y=None):
        cards = self.space.cardinalities
        self.offsets_ = np.concatenate([[0], np.cumsum(cards)[:-1]])
        self.n_features_out_ = int(cards.sum())
        return self

    def transform(self, X):
        X = self.space.validate(X)
        active = self.space.active_mask(X)
        out = np.zeros((len(X), self.n_features_out_), dtype=np.float64)
        rows, genes = np.nonzero(active)
        out[rows, self.offsets_[genes] + X[rows, genes]] = 1.0
        return out
