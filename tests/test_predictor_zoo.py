"""The predictor zoo: sklearn contract, registry, accuracy on a synthetic NAS problem."""
from __future__ import annotations

import io

import joblib
import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from linas_lib.predictors import build_predictor, predictor_names
from linas_lib.predictors.estimators import SVRPredictor
from linas_lib.registry import UnknownNameError
from linas_lib.supernets import supernet_space

NAMES = ["ridge", "svr_rbf", "svr_linear", "stacked"]


@pytest.fixture(scope="module")
def space():
    return supernet_space("elastic_cnn")


def synthetic_target(space, X: np.ndarray, rng: np.random.Generator, noise: float = 0.02) -> np.ndarray:
    """A latency-like cost: per active block, width x expansion x kernel^2, with a depth
    interaction and a saturating nonlinearity, plus multiplicative noise."""
    X = space.canonicalize(X)
    active = space.active_mask(X)
    values = np.stack([np.asarray(v.options, float)[X[:, j]] for j, v in enumerate(space.variables)], axis=1)
    cost = np.zeros(len(X))
    for j, name in enumerate(space.names):
        if name.endswith(".kernel"):
            stage = int(name[1])
            expand = values[:, space.names.index(name.replace("kernel", "expand"))]
            cost += active[:, j] * (16 + 8 * stage) * expand * (1 + values[:, j] ** 2 / 9)
    depth = sum(values[:, space.names.index(f"s{s}.depth")] for s in range(3))
    y = np.log1p(cost / 100) * (1 + 0.05 * depth)
    return y * (1 + noise * rng.standard_normal(len(X)))


@pytest.fixture(scope="module")
def problem(space):
    rng = np.random.default_rng(42)
    X = space.sample(700, rng)
    y = synthetic_target(space, X, rng)
    return X[:500], y[:500], X[500:], y[500:]


@pytest.fixture(scope="module")
def fitted(space, problem):
    X, y, _, _ = problem
    return {name: build_predictor(name, space).fit(X, y) for name in NAMES}


def test_registry_has_the_four_predictors():
    assert set(NAMES) <= set(predictor_names())


def test_unknown_name_lists_the_available_ones(space):
    with pytest.raises(UnknownNameError) as err:
        build_predictor("gaussian_process", space)
    message = str(err.value)
    assert "gaussian_process" in message
    for name in NAMES:
        assert name in message


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_estimator_contract(space, problem, name):
    X, y, X_test, _ = problem
    est = build_predictor(name, space)
    params = est.get_params()
    assert params["space"] is space
    # __init__ stores parameters only: no learned state before fit
    assert sorted(vars(est)) == sorted(params)
    assert not [k for k in vars(est) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        est.predict(X_test)

    twin = clone(est)
    assert twin is not est and type(twin) is type(est)
    assert set(twin.get_params()) == set(params)

    assert est.fit(X[:120], y[:120]) is est
    learned = set(vars(est)) - set(params)
    assert learned and all(k.endswith("_") for k in learned), learned
    assert est.get_params().keys() == params.keys()  # fitting leaves the parameters alone

    pred = est.predict(X_test)
    assert pred.shape == (len(X_test),) and np.all(np.isfinite(pred))
    # a clone of a fitted estimator is unfitted and fits to the same predictions
    refit = clone(est)
    assert not [k for k in vars(refit) if k.endswith("_")]
    np.testing.assert_allclose(refit.fit(X[:120], y[:120]).predict(X_test), pred)


@pytest.mark.parametrize("name", NAMES)
def test_reaches_kendall_tau_above_0_7_on_held_out_data(fitted, problem, name):
    _, _, X_test, y_test = problem
    tau = kendalltau(fitted[name].predict(X_test), y_test).statistic
    assert tau > 0.7, f"{name}: tau {tau:.3f}"


def test_stacked_is_at_least_as_good_as_the_worse_base(fitted, problem):
    _, _, X_test, y_test = problem

    def mse(name):
        return float(np.mean((fitted[name].predict(X_test) - y_test) ** 2))

    def tau(name):
        return kendalltau(fitted[name].predict(X_test), y_test).statistic

    assert mse("stacked") <= max(mse("ridge"), mse("svr_rbf"))
    assert tau("stacked") >= min(tau("ridge"), tau("svr_rbf"))


def test_stacked_bases_equal_the_standalone_predictors(fitted, problem):
    _, _, X_test, _ = problem
    bases = fitted["stacked"].base_predictions(X_test)
    np.testing.assert_allclose(bases["ridge"], fitted["ridge"].predict(X_test), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bases["svr_rbf"], fitted["svr_rbf"].predict(X_test), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_encodings_that_canonicalize_equal_get_equal_predictions(space, fitted, problem, name):
    _, _, X_test, _ = problem
    rng = np.random.default_rng(7)
    canonical = space.canonicalize(X_test[:60])
    noisy = canonical.copy()
    hidden = ~space.active_mask(canonical)
    noisy[hidden] = rng.integers(0, space.cardinalities, size=canonical.shape)[hidden]
    assert hidden.any() and (noisy != canonical).any()
    np.testing.assert_array_equal(space.canonicalize(noisy), canonical)
    np.testing.assert_allclose(fitted[name].predict(noisy), fitted[name].predict(canonical), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_survives_pickling(fitted, problem, name):
    _, _, X_test, _ = problem
    buf = io.BytesIO()
    joblib.dump(fitted[name], buf)
    buf.seek(0)
    np.testing.assert_array_equal(joblib.load(buf).predict(X_test), fitted[name].predict(X_test))


@pytest.mark.parametrize("name", NAMES)
def test_targets_of_any_scale_and_tiny_or_constant_training_sets(space, problem, name):
    X, y, X_test, y_test = problem
    # scale invariance: latency in ms and in s rank the same
    a = build_predictor(name, space).fit(X[:150], y[:150]).predict(X_test)
    b = build_predictor(name, space).fit(X[:150], y[:150] * 1e-3).predict(X_test)
    np.testing.assert_allclose(b, a * 1e-3, rtol=1e-5, atol=1e-12)
    # the first LINAS iterations have very few measurements
    for n in (2, 3, 7):
        pred = build_predictor(name, space).fit(X[:n], y[:n]).predict(X_test[:5])
        assert np.all(np.isfinite(pred))
    const = build_predictor(name, space).fit(X[:50], np.full(50, 0.75)).predict(X_test[:5])
    np.testing.assert_allclose(const, 0.75, atol=1e-9)


def test_explicit_hyperparameters_are_used(space, problem):
    X, y, _, _ = problem
    svr = build_predictor("svr_rbf", space, C=10.0, epsilon=0.05, gamma="scale").fit(X[:100], y[:100])
    assert (svr.C_, svr.epsilon_) == (10.0, 0.05)
    assert svr.cv_results_["C"] == [10.0]
    lin = build_predictor("svr_linear", space, C=0.5).fit(X[:100], y[:100])
    assert lin.C_ == 0.5 and lin.coef_.shape == (int(space.cardinalities.sum()),)
    ridge = build_predictor("ridge", space, alphas=(2.0,)).fit(X[:100], y[:100])
    assert ridge.alpha_ == 2.0
    auto = build_predictor("svr_rbf", space).fit(X[:100], y[:100])
    assert len(auto.cv_results_["mse"]) > 1 and auto.C_ in auto.cv_results_["C"]


def test_bad_parameters_are_reported(space, problem):
    X, y, _, _ = problem
    with pytest.raises(ValueError, match="kernel"):
        SVRPredictor(space, kernel="poly").fit(X[:30], y[:30])
    with pytest.raises(ValueError, match="C must be"):
        build_predictor("svr_linear", space, C="big").fit(X[:30], y[:30])
    with pytest.raises(ValueError, match="NaN"):
        build_predictor("ridge", space).fit(X[:3], [1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="cv"):
        build_predictor("stacked", space, cv=1).fit(X[:30], y[:30])
