"""The built-in predictors, registered by name: ridge, svr_rbf, svr_linear, stacked.

Each factory takes the search space plus keyword hyperparameters and returns an
unfitted scikit-learn estimator (see `linas_lib.predictors.estimators`). The estimators
are imported in the factories: validating a config looks the names up here, and must
not pay for importing scikit-learn.
"""
from __future__ import annotations

from linas_lib.predictors import predictor_registry

__all__ = ["ridge", "svr_rbf", "svr_linear", "stacked"]


@predictor_registry.register("ridge")
def ridge(space, **params):
    """Ridge regression; alpha chosen by leave-one-out (RidgeCV)."""
    from linas_lib.predictors.estimators import RidgePredictor

    return RidgePredictor(space, **params)


@predictor_registry.register("svr_rbf")
def svr_rbf(space, **params):
    """epsilon-SVR with an RBF kernel; C, epsilon and gamma 'auto' by default."""
    from linas_lib.predictors.estimators import SVRPredictor

    return SVRPredictor(space, kernel="rbf", **params)


@predictor_registry.register("svr_linear")
def svr_linear(space, **params):
    """epsilon-SVR with a linear kernel; C and epsilon 'auto' by default."""
    from linas_lib.predictors.estimators import SVRPredictor

    return SVRPredictor(space, kernel="linear", **params)


@predictor_registry.register("stacked")
def stacked(space, **params):
    """A final ridge over out-of-fold ridge and RBF-SVR predictions."""
    from linas_lib.predictors.estimators import StackedPredictor

    return StackedPredictor(space, **params)
