"""The paper's LINAS exactly as published, as a baseline for `bench/suite.py`.

Cummings et al., "A Hardware-Aware Framework for Accelerating Neural Architecture
Search Across Modalities" (2022): per objective a predictor chosen by GridSearchCV
over ridge and SVR on one-hot encodings; a first population of 50 random
sub-networks; each iteration, pymoo's NSGA-II (population 50, 400 generations:
20,000 evaluations) on the predictors, and the next population is that run's final
population, its not-yet-measured members, topped up at random.

Written against scikit-learn and pymoo directly, independent of `linas_lib`'s search
code, so it cannot inherit our choices. It knows nothing a plugin could tell it
(aliases, exact MACs): it compares raw gene vectors, as the published code does.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVR

POPULATION = 50
GENERATIONS = 400  # x 50 = 20,000 inner evaluations
GRID = [
    {"model": [Ridge()], "model__alpha": [0.1, 1.0, 10.0]},
    {"model": [SVR(kernel="rbf")], "model__C": [1.0, 10.0, 100.0], "model__gamma": ["scale", 0.1]},
]


class FastPredictor:
    """The fitted GridSearchCV winner with a numpy one-hot in front: the same predictions
    as the sklearn pipeline, without its per-call overhead inside 400 generations."""

    def __init__(self, fitted: TransformedTargetRegressor, cardinalities: np.ndarray):
        self.model = fitted.regressor_.best_estimator_.named_steps["model"]
        self.scaler = fitted.transformer_
        self.offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(np.int64)
        self.width = int(np.sum(cardinalities))
        self.best = fitted.regressor_.best_params_

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.int64)
        onehot = np.zeros((len(X), self.width))
        np.put_along_axis(onehot, X + self.offsets, 1.0, axis=1)
        return self.scaler.inverse_transform(self.model.predict(onehot).reshape(-1, 1)).ravel()


def fit_predictor(X: np.ndarray, y: np.ndarray, cardinalities: np.ndarray, seed: int):
    """GridSearchCV (5-fold, MSE) over ridge and RBF-SVR on one-hot genes, standardized targets."""
    onehot = OneHotEncoder(categories=[list(range(int(c))) for c in cardinalities], handle_unknown="ignore")
    pipe = Pipeline([("onehot", onehot), ("model", Ridge())])
    search = GridSearchCV(pipe, GRID, cv=min(5, len(y)), scoring="neg_mean_squared_error", n_jobs=1)
    model = TransformedTargetRegressor(regressor=search, transformer=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FastPredictor(model.fit(X, y), np.asarray(cardinalities))


def inner_nsga2(predictors, signs: np.ndarray, cardinalities: np.ndarray, seed: int) -> np.ndarray:
    """pymoo NSGA-II on the predictors; returns the final population (integer genes)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    n_var = len(cardinalities)

    class OnPredictors(Problem):
        def __init__(self):
            super().__init__(n_var=n_var, n_obj=len(predictors), xl=np.zeros(n_var), xu=cardinalities - 1.0, vtype=int)

        def _evaluate(self, x, out, *args, **kwargs):
            X = np.round(x).astype(np.int64)
            out["F"] = np.column_stack([s * p.predict(X) for p, s in zip(predictors, signs)])

    algorithm = NSGA2(pop_size=POPULATION, sampling=IntegerRandomSampling(),
                      crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                      mutation=PM(prob=0.02, eta=20, vtype=float, repair=RoundingRepair()),
                      eliminate_duplicates=True)
    result = minimize(OnPredictors(), algorithm, ("n_gen", GENERATIONS), seed=seed % (2**31), verbose=False)
    return np.round(result.pop.get("X")).astype(np.int64)


def run(measure, cardinalities: np.ndarray, signs: np.ndarray, budget: int, seed: int,
        on_iteration=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """LINAS as published. `measure(X) -> (values (n, n_obj) natural units, ok mask)`.

    Returns the measured (encodings, values) per iteration, in measurement order.
    `on_iteration(seconds_of_search_cpu)` is told the search overhead of each iteration.
    """
    import time

    rng = np.random.default_rng(seed)
    cardinalities = np.asarray(cardinalities, dtype=np.int64)
    seen: set[bytes] = set()
    history, Xs, Ys, oks = [], [], [], []

    def add_unseen(picked: list, X: np.ndarray) -> None:
        taken = {p.tobytes() for p in picked}
        for x in X:
            if len(picked) < POPULATION and x.tobytes() not in seen and x.tobytes() not in taken:
                picked.append(x)
                taken.add(x.tobytes())

    X = rng.integers(0, cardinalities, size=(POPULATION, len(cardinalities)))
    while sum(len(x) for x in Xs) < budget:
        X = X[: budget - sum(len(x) for x in Xs)]
        Y, ok = measure(X)
        for x in X:
            seen.add(x.tobytes())
        Xs.append(X), Ys.append(Y), oks.append(ok)
        history.append((X, Y))
        if sum(len(x) for x in Xs) >= budget:
            break
        t0 = time.process_time()
        allX, allY, allok = np.vstack(Xs), np.vstack(Ys), np.concatenate(oks)
        predictors = [fit_predictor(allX[allok], allY[allok, j], cardinalities, seed) for j in range(allY.shape[1])]
        final = inner_nsga2(predictors, signs, cardinalities, seed + len(Xs))
        picked: list = []
        add_unseen(picked, final)
        while len(picked) < POPULATION:
            add_unseen(picked, rng.integers(0, cardinalities, size=(POPULATION, len(cardinalities))))
        X = np.array(picked[:POPULATION], dtype=np.int64)
        if on_iteration:
            on_iteration(time.process_time() - t0)
    return history
