"""The predictor estimators: ridge, epsilon-SVR (RBF or linear kernel) and their stack.

All are scikit-learn regressors over encodings (n, n_var) of one search space:
`__init__` only stores parameters, `fit` returns self, learned state ends in '_',
`predict` takes the whole batch, and `sklearn.base.clone` works.

They share three choices that make hyperparameters cheap to choose well:

* features are `EncodingFeatures` rows (active one-hot by default, so two encodings of
  one network look alike; optionally ordinal genes and the plugin's derived features);
* targets are standardized inside `fit` (and predictions mapped back), so one
  set of C / epsilon / alpha candidates serves accuracy (~0.8) and latency (ms);
* SVR works on a kernel matrix computed once per fit (`kernel='precomputed'` in
  libsvm). Every candidate setting and every cross-validation fold is a slice of
  it, so selection costs solver time only.

SVR hyperparameters, when left at 'auto':

* epsilon follows Cherkassky & Ma (2004): 3 sigma sqrt(ln n / n), with the noise
  level sigma estimated by ridge regression's leave-one-out error (free with
  RidgeCV), in standardized units, and at most 0.05 (see MAX_AUTO_EPSILON);
* C (and, for the RBF kernel, the width) comes from a small candidate list scored
  on held-out folds. With a unit-diagonal kernel and standardized targets,
  Cherkassky & Ma's C = max|mean(y) +- 3 std(y)| is 3; the candidates span it.
  Candidate fits use a looser solver tolerance than the final fit.

Above `max_exact` records (2,000 by default) the same estimators switch to methods
whose cost is linear in records (Nystrom features for the RBF kernel, a subsample for
the linear one, the Gram matrix for ridge); see `linas_lib.predictors.large`. What was
used is in `scaling_`.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold
from sklearn.svm import SVR
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from linas_lib.predictors.features import EncodingFeatures
from linas_lib.predictors.kernels import rbf_from_sq_distances, scale_gamma, sq_distances, sq_norms
from linas_lib.predictors.large import (EXACT_MAX_RECORDS, LANDMARKS, SELECTION_RECORDS, check_size,
                                        nystroem_krr, nystroem_predict, ridge_gram)

# RidgeCV's efficient leave-one-out picks alpha for the price of one fit.
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))

# (multiple of gamma='scale', C) tried for the RBF kernel when both are 'auto': from
# the local kernel that suits noisy targets to the smooth, nearly additive one that
# suits latency / MACs. A smoother kernel needs a larger C to express the same
# function, hence C = 3 / factor (3 being Cherkassky & Ma's C for this scaling).
# Smoother kernels win with little data; above LARGE_N records the smoothest is
# dropped and C is capped, because libsvm's time grows with n and C and the
# local kernels catch up there.
RBF_CANDIDATES = ((1.0, 3.0), (0.3, 10.0), (0.1, 30.0), (0.03, 100.0))
LARGE_N, LARGE_N_RBF_CANDIDATES, LARGE_N_MAX_C = 500, 3, 10.0
RBF_GAMMA_FACTORS = (1.0, 0.3, 0.1)
C_CANDIDATES = (1.0, 3.0, 10.0)          # RBF with a fixed gamma
LINEAR_C_CANDIDATES = (0.3, 1.0, 3.0)    # linear kernel, normalized to unit mean diagonal

# Ridge's leave-one-out error is noise plus the model's own variance, so on small
# training sets it overstates the noise, and Cherkassky & Ma's epsilon would hide
# real differences inside the insensitive tube; 0.05 standard deviations bounds it.
MAX_AUTO_EPSILON = 0.05
MIN_SELECTION_SAMPLES = 20  # fewer: no held-out selection, the middle candidate is used
PREDICT_CHUNK = 4096        # rows per kernel block in predict


_THREADPOOLS = None


def single_threaded(method: Callable) -> Callable:
    """Run with one BLAS thread and without scikit-learn's per-call input checks.

    The matrices here are small: extra BLAS threads only contend with libsvm and with
    other processes (e.g. parallel evaluation trials). The inputs of the inner
    estimators are built here from validated encodings and finite targets, and their
    checks would cost more than the solver on a few hundred records.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _THREADPOOLS
        if _THREADPOOLS is None:
            from threadpoolctl import ThreadpoolController

            _THREADPOOLS = ThreadpoolController()
        with _THREADPOOLS.limit(limits=1, user_api="blas"), \
                config_context(assume_finite=True, skip_parameter_validation=True):
            return method(*args, **kwargs)

    return wrapper


def _check_auto(name: str, value: Any) -> None:
    if isinstance(value, str) and value != "auto":
        raise ValueError(f"{name} must be a positive number or 'auto', got {value!r}")
    if not isinstance(value, str) and not (float(value) > 0):
        raise ValueError(f"{name} must be a positive number or 'auto', got {value!r}")


class EncodingRegressor(RegressorMixin, BaseEstimator):
    """Shared plumbing: encodings -> features, standardized targets.

    `features` picks the representation ('onehot', 'ordinal', their '+derived'
    variants, 'derived' or 'auto'; see `linas_lib.predictors.features`); `derived`
    is the plugin's cheap feature function, given by the search, never pickled.
    """

    space: Any
    features: str = "auto"
    derived: Any = None

    def _prepare(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        if self.space is None:
            raise ValueError(f"{type(self).__name__} needs the search space: pass space=...")
        self.features_ = EncodingFeatures(self.space, self.features, self.derived)
        F = self.features_.fit_transform(X)
        self.n_features_in_ = int(self.space.n_var)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) != len(F):
            raise ValueError(f"X has {len(F)} encodings but y has {len(y)} values")
        if len(y) < 2:
            raise ValueError(f"a predictor needs at least 2 training records, got {len(y)}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinite values; train on successful measurements only")
        self.y_mean_ = float(y.mean())
        std = float(y.std())
        self.y_scale_ = std if std > 1e-12 * max(1.0, abs(self.y_mean_)) else 1.0
        return F, (y - self.y_mean_) / self.y_scale_

    def _adopt(self, parent: "EncodingRegressor") -> None:
        """Share a parent's features; the parent hands over standardized targets."""
        self.features_ = parent.features_
        self.n_features_in_ = parent.n_features_in_
        self.y_mean_, self.y_scale_ = 0.0, 1.0

    def _transform(self, X) -> np.ndarray:
        check_is_fitted(self, "features_")
        return self.features_.transform(X)

    @single_threaded
    def predict(self, X) -> np.ndarray:
        return self._predict_z(self._transform(X)) * self.y_scale_ + self.y_mean_

    def _predict_z(self, F: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


# ---- ridge -------------------------------------------------------------------
def _ridge_cv(F: np.ndarray, z: np.ndarray, alphas) -> tuple[RidgeCV, float]:
    """RidgeCV with its leave-one-out mean squared error at the chosen alpha."""
    alphas = np.array(alphas, dtype=np.float64).reshape(-1)  # a copy: RidgeCV may write into it
    model = RidgeCV(alphas=alphas, store_cv_results=True).fit(F, z)
    loo = np.asarray(model.cv_results_, dtype=np.float64).reshape(len(z), -1).mean(axis=0)
    return model, float(np.nanmin(loo)) if np.isfinite(loo).any() else float("nan")


def _ridge_solve(F: np.ndarray, z: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge with an unpenalized intercept at a fixed alpha (the normal equations; p is small)."""
    f_mean, z_mean = F.mean(axis=0), z.mean()
    Fc = F - f_mean
    A = Fc.T @ Fc
    A[np.diag_indices_from(A)] += alpha
    coef = np.linalg.solve(A, Fc.T @ (z - z_mean))
    return coef, float(z_mean - f_mean @ coef)


class RidgePredictor(EncodingRegressor):
    """Ridge regression on active one-hot features; alpha by efficient leave-one-out."""

    def __init__(self, space=None, alphas=RIDGE_ALPHAS, features="auto", derived=None,
                 max_exact: int = EXACT_MAX_RECORDS):
        self.space = space
        self.alphas = alphas
        self.features = features
        self.derived = derived
        self.max_exact = max_exact

    @single_threaded
    def fit(self, X, y):
        F, z = self._prepare(X, y)
        self._fit_arrays(F, z)
        return self

    def _fit_arrays(self, F: np.ndarray, z: np.ndarray) -> "RidgePredictor":
        check_size("max_exact", self.max_exact, 2)
        if len(z) > self.max_exact:  # the same leave-one-out choice, without an n x p SVD
            alphas = np.array(self.alphas, dtype=np.float64).reshape(-1)
            self.alpha_, self.coef_, self.intercept_, self.loo_mse_ = ridge_gram(F, z, alphas)
            self.scaling_ = {"method": "gram", "records": int(len(z))}
            return self
        model, loo_mse = _ridge_cv(F, z, self.alphas)
        self.alpha_ = float(model.alpha_)
        self.coef_ = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
        self.intercept_ = float(model.intercept_)
        self.loo_mse_ = loo_mse  # standardized units: 1 is no better than the mean
        self.scaling_ = {"method": "exact", "records": int(len(z))}
        return self

    def _predict_z(self, F: np.ndarray) -> np.ndarray:
        return F @ self.coef_ + self.intercept_

    def resolved_params(self) -> dict[str, Any]:
        """Parameters that refit this model without choosing hyperparameters again."""
        return {"alphas": (self.alpha_,)}


# ---- SVR -----------------------------------------------------------------------
def cherkassky_ma_epsilon(noise_std: float, n: int) -> float:
    """epsilon = 3 sigma sqrt(ln n / n) (Cherkassky & Ma, Neural Networks 17, 2004)."""
    if not math.isfinite(noise_std) or n < 2:
        return 0.1
    return float(np.clip(3.0 * noise_std * math.sqrt(math.log(n) / n), 1e-3, 1.0))


def _fit_svr(K: np.ndarray, z: np.ndarray, C: float, epsilon: float, tol: float) -> SVR:
    return SVR(kernel="precomputed", C=C, epsilon=epsilon, tol=tol, cache_size=500).fit(K, z)


def _svr_decision(K_rows_by_train: np.ndarray, model: SVR) -> np.ndarray:
    """Predictions from a kernel block (rows, training samples) of a precomputed-kernel SVR."""
    return K_rows_by_train[:, model.support_] @ model.dual_coef_[0] + model.intercept_[0]


SELECTION_FOLDS = 5


def _folds(n: int, n_splits: int, random_state) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(KFold(n_splits=min(n_splits, n), shuffle=True, random_state=random_state).split(np.arange(n)))


def _selection_folds(n: int, random_state) -> list[tuple[np.ndarray, np.ndarray]]:
    """Held-out folds for choosing hyperparameters: more of them when n is small.

    The first folds of a shuffled 5-fold split (the same split StackedPredictor uses,
    so it can reuse these fits): all 5 at n <= 250, 2 up to 500, one (a fifth of the
    data held out) above. Solver time grows like n^2, so selection stays a small
    multiple of one fit.
    """
    n_use = 5 if n <= 250 else 2 if n <= 500 else 1
    return _folds(n, SELECTION_FOLDS, random_state)[:n_use]


class SVRPredictor(EncodingRegressor):
    """epsilon-SVR with an RBF or linear kernel on active one-hot features.

    C, epsilon and gamma accept 'auto' (see the module docstring) or a number;
    gamma (RBF only, ignored for the linear kernel) also accepts 'scale',
    scikit-learn's 1 / (n_features * X.var()). epsilon is in standardized target
    units. The linear kernel is normalized to unit mean diagonal, like the RBF
    kernel's unit diagonal, so one C scale serves both. `tol` is libsvm's stopping
    tolerance for the final fit, `selection_tol` for candidate (and stacking) fits.
    Above `max_exact` records, `landmarks` is the Nystrom approximation's size (RBF).
    """

    def __init__(self, space=None, kernel: str = "rbf", C="auto", epsilon="auto", gamma="auto",
                 tol: float = 2e-2, selection_tol: float = 1e-1, random_state=0, features="auto", derived=None,
                 max_exact: int = EXACT_MAX_RECORDS, landmarks: int = LANDMARKS):
        self.space = space
        self.features = features
        self.derived = derived
        self.kernel = kernel
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma
        self.tol = tol
        self.selection_tol = selection_tol
        self.random_state = random_state
        self.max_exact = max_exact
        self.landmarks = landmarks

    @single_threaded
    def fit(self, X, y):
        F, z = self._prepare(X, y)
        self._fit_arrays(F, z)
        return self

    # -- internals shared with StackedPredictor --------------------------------
    def _check_params(self) -> None:
        if self.kernel not in ("rbf", "linear"):
            raise ValueError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}")
        _check_auto("C", self.C)
        _check_auto("epsilon", self.epsilon)
        if self.kernel == "rbf" and self.gamma != "scale":
            _check_auto("gamma", self.gamma)
        check_size("max_exact", self.max_exact, 2)
        check_size("landmarks", self.landmarks, 2)

    def _base_matrix(self, F: np.ndarray) -> np.ndarray:
        """Squared distances (RBF) or the normalized Gram matrix (linear) of the rows."""
        if self.kernel == "rbf":
            return sq_distances(F, F)
        G = F @ F.T
        self.kernel_scale_ = 1.0 / max(float(np.mean(np.diag(G))), 1e-12)
        G *= self.kernel_scale_
        return G

    def _kernel(self, base: np.ndarray, gamma: float | None) -> np.ndarray:
        return rbf_from_sq_distances(base, gamma) if self.kernel == "rbf" else base

    def _candidates(self, F: np.ndarray) -> list[tuple[float | None, float]]:
        if self.kernel == "linear":
            Cs = LINEAR_C_CANDIDATES if self.C == "auto" else (float(self.C),)
            return [(None, C) for C in Cs]
        g_scale = scale_gamma(F)
        if self.gamma == "auto" and self.C == "auto":
            if len(F) > LARGE_N:
                return [(f * g_scale, min(C, LARGE_N_MAX_C)) for f, C in RBF_CANDIDATES[:LARGE_N_RBF_CANDIDATES]]
            return [(f * g_scale, C) for f, C in RBF_CANDIDATES]
        if self.gamma == "auto":
            return [(f * g_scale, float(self.C)) for f in RBF_GAMMA_FACTORS]
        gamma = g_scale if self.gamma == "scale" else float(self.gamma)
        Cs = C_CANDIDATES if self.C == "auto" else (float(self.C),)
        return [(gamma, C) for C in Cs]

    def _fit_arrays(self, F: np.ndarray, z: np.ndarray, base: np.ndarray | None = None,
                    noise_mse: float | None = None) -> "SVRPredictor":
        self._check_params()
        n = len(z)
        if n > self.max_exact:
            return self._fit_large(F, z)
        base = self._base_matrix(F) if base is None else base
        if self.epsilon == "auto":
            if noise_mse is None:
                noise_mse = _ridge_cv(F, z, RIDGE_ALPHAS)[1]
            self.noise_std_ = math.sqrt(noise_mse) if math.isfinite(noise_mse) else float("nan")
            self.epsilon_ = min(cherkassky_ma_epsilon(self.noise_std_, n), MAX_AUTO_EPSILON)
        else:
            self.epsilon_ = float(self.epsilon)

        candidates = self._candidates(F)
        self.cv_results_ = {"gamma": [g for g, _ in candidates], "C": [c for _, c in candidates]}
        # out-of-fold predictions of the chosen setting on the selection folds (NaN elsewhere)
        self.heldout_predictions_ = np.full(n, np.nan)
        kernels: dict[Any, np.ndarray] = {}
        if len(candidates) == 1 or n < MIN_SELECTION_SAMPLES:
            best = candidates[len(candidates) // 2]
            self.cv_results_["mse"] = [float("nan")] * len(candidates)
        else:
            folds = _selection_folds(n, self.random_state)
            scores, heldout = [], []
            for gamma, C in candidates:
                if gamma not in kernels:
                    kernels[gamma] = self._kernel(base, gamma)
                K = kernels[gamma]
                pred = np.full(n, np.nan)
                for train, val in folds:
                    model = _fit_svr(K[np.ix_(train, train)], z[train], C, self.epsilon_, self.selection_tol)
                    pred[val] = _svr_decision(K[np.ix_(val, train)], model)
                held = ~np.isnan(pred)
                scores.append(float(np.mean((pred[held] - z[held]) ** 2)))
                heldout.append(pred)
            self.cv_results_["mse"] = scores
            i_best = int(np.argmin(scores))
            best = candidates[i_best]
            self.heldout_predictions_ = heldout[i_best]
        self.gamma_, self.C_ = best
        K = kernels[self.gamma_] if self.gamma_ in kernels else self._kernel(base, self.gamma_)
        model = _fit_svr(K, z, self.C_, self.epsilon_, self.tol)
        self.dual_coef_ = np.asarray(model.dual_coef_[0], dtype=np.float64)
        self.intercept_ = float(model.intercept_[0])
        self.support_ = np.asarray(model.support_)
        self.support_vectors_ = F[self.support_]
        if self.kernel == "rbf":
            self._sv_norms_ = sq_norms(self.support_vectors_)
        else:  # a linear kernel collapses into one weight vector
            self.coef_ = self.kernel_scale_ * (self.dual_coef_ @ self.support_vectors_)
        self.scaling_ = {"method": "exact", "records": int(n)}
        return self

    def _fit_large(self, F: np.ndarray, z: np.ndarray) -> "SVRPredictor":
        """Above `max_exact` records: hyperparameters chosen exactly on a subsample, then
        Nystrom ridge on every record (RBF) or the exact model on a subsample (linear)."""
        n = len(z)
        rng = check_random_state(self.random_state)
        size = min(SELECTION_RECORDS, self.max_exact) if self.kernel == "rbf" else self.max_exact
        sub = np.sort(rng.choice(n, min(int(size), n), replace=False))
        small = SVRPredictor(**{**self.get_params(deep=False), "max_exact": len(sub)})
        small._adopt(self)
        small._fit_arrays(F[sub], z[sub])
        for name in ("epsilon_", "noise_std_", "cv_results_", "gamma_", "C_"):
            if hasattr(small, name):
                setattr(self, name, getattr(small, name))
        self.heldout_predictions_ = np.full(n, np.nan)
        if self.kernel == "linear":
            self.dual_coef_, self.intercept_ = small.dual_coef_, small.intercept_
            self.support_, self.support_vectors_ = sub[small.support_], small.support_vectors_
            self.kernel_scale_, self.coef_ = small.kernel_scale_, small.coef_
            self.scaling_ = {"method": "subsample", "records": int(n), "fit_records": int(len(sub))}
            return self
        fit = nystroem_krr(F, z, self.gamma_, self.landmarks, rng)
        self.nystroem_kernel_, self.beta_, self.intercept_ = fit["kernel"], fit["beta"], fit["intercept"]
        self.heldout_predictions_[fit["held"]] = fit["held_predictions"]
        self.scaling_ = {"method": "nystroem", "records": int(n), "selection_records": int(len(sub)),
                         **{k: fit[k] for k in ("landmarks", "rank", "holdout", "alpha", "holdout_mse")}}
        return self

    def resolved_params(self) -> dict[str, Any]:
        """Parameters that refit this model without choosing hyperparameters again."""
        fixed = {"C": self.C_, "epsilon": self.epsilon_}
        return {**fixed, "gamma": self.gamma_} if self.kernel == "rbf" else fixed

    def _predict_z(self, F: np.ndarray) -> np.ndarray:
        if self.kernel == "linear":
            return F @ self.coef_ + self.intercept_
        if getattr(self, "beta_", None) is not None:
            return nystroem_predict(self.nystroem_kernel_, self.beta_, self.intercept_, F)
        out = np.empty(len(F))
        for start in range(0, len(F), PREDICT_CHUNK):
            block = F[start:start + PREDICT_CHUNK]
            K = rbf_from_sq_distances(sq_distances(block, self.support_vectors_, b_norms=self._sv_norms_), self.gamma_)
            out[start:start + len(block)] = K @ self.dual_coef_ + self.intercept_
        return out


# ---- stacking ------------------------------------------------------------------
class StackedPredictor(EncodingRegressor):
    """Ridge and RBF-SVR predictions, combined by a final ridge (stacked generalization).

    Base-model hyperparameters are chosen once on all the data; with them fixed, a
    `cv`-fold split gives every record out-of-fold predictions of both bases, and the
    final ridge (RidgeCV; refitted with non-negative weights if a weight came out
    negative) learns from those. The bases are then used as fitted on all data.
    """

    def __init__(self, space=None, cv: int = 5, alphas=RIDGE_ALPHAS, C="auto", epsilon="auto",
                 gamma="auto", tol: float = 2e-2, random_state=0, features="auto", derived=None,
                 max_exact: int = EXACT_MAX_RECORDS, landmarks: int = LANDMARKS):
        self.space = space
        self.features = features
        self.derived = derived
        self.cv = cv
        self.alphas = alphas
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma
        self.tol = tol
        self.random_state = random_state
        self.max_exact = max_exact
        self.landmarks = landmarks

    @single_threaded
    def fit(self, X, y):
        if int(self.cv) < 2:
            raise ValueError(f"cv must be at least 2, got {self.cv!r}")
        F, z = self._prepare(X, y)
        n = len(z)
        ridge = RidgePredictor(self.space, alphas=self.alphas, features=self.features, derived=self.derived,
                               max_exact=self.max_exact)
        ridge._adopt(self)
        ridge._fit_arrays(F, z)
        svr = SVRPredictor(self.space, kernel="rbf", C=self.C, epsilon=self.epsilon, gamma=self.gamma,
                           tol=self.tol, random_state=self.random_state, features=self.features, derived=self.derived,
                           max_exact=self.max_exact, landmarks=self.landmarks)
        svr._adopt(self)
        if n > self.max_exact:
            return self._blend(F, z, ridge, svr)
        D = sq_distances(F, F)
        svr._fit_arrays(F, z, base=D, noise_mse=ridge.loo_mse_)
        self.ridge_, self.svr_ = ridge, svr

        K = rbf_from_sq_distances(D, svr.gamma_)
        Z = np.empty((n, 2))
        # The SVR's hyperparameter selection already held out the first folds of this
        # very split with the chosen setting: its predictions there are out-of-fold.
        reuse = int(self.cv) == SELECTION_FOLDS
        for train, test in _folds(n, int(self.cv), self.random_state):
            coef, intercept = _ridge_solve(F[train], z[train], ridge.alpha_)
            Z[test, 0] = F[test] @ coef + intercept
            if reuse and not np.isnan(svr.heldout_predictions_[test]).any():
                Z[test, 1] = svr.heldout_predictions_[test]
                continue
            m = _fit_svr(K[np.ix_(train, train)], z[train], svr.C_, svr.epsilon_, svr.selection_tol)
            Z[test, 1] = _svr_decision(K[np.ix_(test, train)], m)
        self._fit_final(Z, z)
        self.scaling_ = {"method": "exact", "records": int(n)}
        return self

    def _blend(self, F: np.ndarray, z: np.ndarray, ridge: RidgePredictor, svr: SVRPredictor) -> "StackedPredictor":
        """Above `max_exact` records: the final ridge learns from the bases' predictions on
        the Nystrom SVR's held-out rows (both bases refitted without them: ridge here, the
        SVR during its alpha choice), not from k refits of each base."""
        svr._fit_arrays(F, z)  # its own noise estimate, as when fitted alone
        self.ridge_, self.svr_ = ridge, svr
        held = ~np.isnan(svr.heldout_predictions_)
        coef, intercept = _ridge_solve(F[~held], z[~held], ridge.alpha_)
        Z = np.column_stack([F[held] @ coef + intercept, svr.heldout_predictions_[held]])
        self._fit_final(Z, z[held])
        self.scaling_ = {"method": "blend", "records": int(len(z)), "holdout": int(held.sum()),
                         "bases": {"ridge": ridge.scaling_, "svr_rbf": svr.scaling_}}
        return self

    def _fit_final(self, Z: np.ndarray, z: np.ndarray) -> None:
        final = RidgeCV(alphas=np.array(self.alphas, dtype=np.float64).reshape(-1)).fit(Z, z)
        self.final_alpha_ = float(final.alpha_)
        if np.any(final.coef_ < 0):
            # Two correlated bases invite a large positive and a large negative weight
            # that cancel on the training folds; stacked regression wants non-negative
            # weights (Breiman, 1996), so refit at the chosen alpha with that constraint.
            final = Ridge(alpha=self.final_alpha_, positive=True).fit(Z, z)
        weights, intercept = np.asarray(final.coef_, dtype=np.float64).reshape(-1), float(final.intercept_)
        if not np.any(weights > 0):
            # no out-of-fold signal in either base (a handful of noisy records): average
            # them rather than predict a constant, which would rank nothing
            weights = np.full(Z.shape[1], 1.0 / Z.shape[1])
            intercept = float(np.mean(z) - np.mean(Z @ weights))
        self.weights_, self.final_intercept_ = weights, intercept

    def resolved_params(self) -> dict[str, Any]:
        """The bases' chosen hyperparameters; only the cheap final ridge is chosen again."""
        return {"alphas": (self.ridge_.alpha_,), "C": self.svr_.C_, "epsilon": self.svr_.epsilon_,
                "gamma": self.svr_.gamma_}

    def _base_predictions(self, F: np.ndarray) -> np.ndarray:
        return np.column_stack([self.ridge_._predict_z(F), self.svr_._predict_z(F)])

    @single_threaded
    def base_predictions(self, X) -> dict[str, np.ndarray]:
        """The bases' own predictions, in target units, keyed by their registry names.

        With default parameters they equal what `ridge` and `svr_rbf` fitted alone on
        the same data predict: same standardized targets, same selection folds.
        """
        Z = self._base_predictions(self._transform(X)) * self.y_scale_ + self.y_mean_
        return {"ridge": Z[:, 0], "svr_rbf": Z[:, 1]}

    def _predict_z(self, F: np.ndarray) -> np.ndarray:
        return self._base_predictions(F) @ self.weights_ + self.final_intercept_
