"""Predictors: scikit-learn regressors over encodings, registered by name.

A registered factory takes the search space plus keyword hyperparameters and
returns an unfitted estimator; `fit` returns self, as sklearn requires.
"""
from __future__ import annotations

from typing import Any, Callable

from linas_lib.registry import Registry

PredictorFactory = Callable[..., Any]
predictor_registry: Registry[PredictorFactory] = Registry(
    "predictor", group="linas.predictors", builtins=("linas_lib.predictors.zoo",)
)


def build_predictor(name: str, space, **params):
    return predictor_registry.get(name)(space, **params)


def predictor_names() -> list[str]:
    return predictor_registry.names()
