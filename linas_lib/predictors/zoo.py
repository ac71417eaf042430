"""The built-in predictors, registered by name: ridge, svr_rbf, svr_linear, stacked.

Each factory takes the search space plus keyword hyperparameters and returns an
unfitted scikit-learn estimator (see `linas_lib.predictors.estimators`).
"""
from __future__ import annotations

from linas_lib.predictors import predictor_registry
from linas_lib.predictors.estimators import (
    RIDGE_ALPHAS,
    RidgePredictor,
    StackedPredictor,
    SVRPredictor,
)

__all__ = ["RIDGE_ALPHAS", "ridge", "svr_rbf", "svr_linear", "stacked"]


@predictor_registry.register("ridge")
def ridge(space, **params) -> RidgePredictor:
    """Ridge regression; alpha chosen by leave-one-out (RidgeCV)."""
    return RidgePredictor(space, **params)


@predictor_registry.register("svr_rbf")
def svr_rbf(space, **params) -> SVRPredictor:
    """epsilon-SVR with an RBF kernel; C, epsilon and gamma 'auto' by default."""
    return SVRPredictor(space, kernel="rbf", **params)


@predictor_registry.register("svr_linear")
def svr_linear(space, **params) -> SVRPredictor:
    """epsilon-SVR with a linear kernel; C and epsilon 'auto' by default."""
    return SVRPredictor(space, kernel="linear", **params)


@predictor_registry.register("stacked")
def stacked(space, **params) -> StackedPredictor:
    """A final ridge over out-of-fold ridge and RBF-SVR predictions."""
    return StackedPredictor(space, **params)
