"""The built-in predictors: ridge and RBF-kernel SVR on active-gene one-hot features."""
from __future__ import annotations

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from linas_lib.predictors import predictor_registry
from linas_lib.predictors.features import ActiveOneHot

# RidgeCV's efficient leave-one-out picks alpha for the price of one fit.
RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 13))


@predictor_registry.register("ridge")
def ridge(space, alphas=RIDGE_ALPHAS) -> Pipeline:
    return Pipeline([("features", ActiveOneHot(space)), ("ridge", RidgeCV(alphas=alphas))])


@predictor_registry.register("svr_rbf")
def svr_rbf(space, C: float = 10.0, epsilon: float = 0.05, gamma: str | float = "scale") -> Pipeline:
    # Standardized targets let one C/epsilon serve accuracy (~0.8) and latency (~ms).
    regressor = TransformedTargetRegressor(
        regressor=SVR(kernel="rbf", C=C, epsilon=epsilon, gamma=gamma), transformer=StandardScaler()
    )
    return Pipeline([("features", ActiveOneHot(space)), ("svr", regressor)])
