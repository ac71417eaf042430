"""Predictors: scikit-learn regressors over encodings, registered by name.

A registered factory takes the search space plus keyword hyperparameters and
returns an unfitted estimator; `fit` returns self, as sklearn requires.
"""
from __future__ import annotations

from typing import Any, Callable

from linas_lib.registry import Registry

PredictorFactory = Callable[..., Any]
predictor_registry: Registry[PredictorFactory] = Registry("predictor")


def build_predictor(name: str, space, **params):
    from linas_lib.predictors import zoo  # noqa: F401  (fills the registry)

    return predictor_registry.get(name)(space, **params)


def predictor_names() -> list[str]:
    from linas_lib.predictors import zoo  # noqa: F401

    return predictor_registry.names()
