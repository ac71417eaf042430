"""Predictive uncertainty for any predictor: a bootstrap ensemble around the full fit.

The centre model is the predictor fitted on all records (its predictions are the
ensemble's). Members are refitted on bootstrap resamples with the centre's chosen
hyperparameters (`resolved_params()`), so an ensemble costs a few solver runs, not a
few hyperparameter searches. The spread of the members is the model (epistemic)
uncertainty, which is what a choice of what to measure next should weigh: it shrinks
where measurements are. No residual-noise term is added: a uniform one (tried with the
out-of-bag error) made expected improvement chase the edges of the box and lowered the
hypervolume on the benchmark suite.

Above `max_exact` records the members are m-out-of-n bootstrap fits on `member_records`
draws, so their cost stays fixed as the table grows; their spread is then scaled by
sqrt(m / n) to stand for the full-data model's (see `linas_lib.predictors.large`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from linas_lib.predictors.large import EXACT_MAX_RECORDS, MEMBER_RECORDS, check_size, spread_scale


class BootstrapEnsemble(RegressorMixin, BaseEstimator):
    """`predict` is the centre model's; `predict_dist` adds a standard deviation."""


    def __init__(self, estimator: Any = None, n_members: int = 8, random_state: int = 0,
                 max_exact: int = EXACT_MAX_RECORDS, member_records: int = MEMBER_RECORDS):
        self.estimator = estimator
        self.n_members = n_members
        self.random_state = random_state
        self.max_exact = max_exact
        self.member_records = member_records

    def fit(self, X, y):
        if self.estimator is None:
            raise ValueError("BootstrapEnsemble needs an estimator")
        if int(self.n_members) < 2:
            raise ValueError(f"n_members must be at least 2, got {self.n_members!r}")
        check_size("max_exact", self.max_exact, 2)
        check_size("member_records", self.member_records, 2)
        X, y = np.asarray(X), np.asarray(y, dtype=np.float64).reshape(-1)
        self.center_ = clone(self.estimator).fit(X, y)
        fixed = self.center_.resolved_params() if hasattr(self.center_, "resolved_params") else {}
        rng = np.random.default_rng(self.random_state)
        n = len(y)
        draws = n if n <= self.max_exact else min(int(self.member_records), n)
        self.members_ = []
        for _ in range(int(self.n_members)):
            idx = rng.integers(0, n, draws)
            if len(np.unique(idx)) >= 2:
                self.members_.append(clone(self.estimator).set_params(**fixed).fit(X[idx], y[idx]))
        self.member_records_ = int(draws)
        self.spread_scale_ = 1.0 if draws == n else spread_scale(draws, n)
        self.n_features_in_ = getattr(self.center_, "n_features_in_", None)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "center_")
        return self.center_.predict(X)

    def predict_dist(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) per encoding, in target units."""
        mean = self.predict(X)
        if len(self.members_) < 2:
            return mean, np.zeros(len(mean))
        P = np.column_stack([m.predict(X) for m in self.members_])
        std = P.std(axis=1)
        return mean, std if self.spread_scale_ == 1.0 else std * self.spread_scale_

    def resolved_params(self) -> dict[str, Any]:
        return self.center_.resolved_params() if hasattr(self.center_, "resolved_params") else {}
