"""Predictors are plain scikit-learn estimators over (canonical) integer encodings."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from linas_lib.api.search_space import InvalidEncodingError
from linas_lib.predictors import build_predictor, predictor_names
from linas_lib.predictors.features import ActiveOneHot
from linas_lib.registry import UnknownNameError
from linas_lib.supernets.elastic_cnn import build_space

NAMES = ["ridge", "svr_rbf"]


@pytest.fixture(scope="module")
def space():
    return build_space()


def _additive_target(space, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """A sum of per-(gene, option) effects over the active genes only."""
    weights = np.random.default_rng(seed).normal(size=(space.n_var, int(space.cardinalities.max())))
    active = space.active_mask(X)
    return np.array([weights[active[i], X[i][active[i]]].sum() for i in range(len(X))])


def _raw_variants(space, X: np.ndarray, seed: int) -> np.ndarray:
    """The same networks with random values written into their hidden genes."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, space.cardinalities, size=X.shape)
    return np.where(space.active_mask(X), X, noise)


@pytest.fixture(scope="module")
def data(space):
    X = space.sample(240, 11)
    return X, _additive_target(space, X)


def test_registry_lists_builtins():
    assert set(NAMES) <= set(predictor_names())


def test_unknown_name_lists_available_predictors(space):
    with pytest.raises(UnknownNameError) as err:
        build_predictor("xgboost-deluxe", space)
    message = str(err.value)
    assert "xgboost-deluxe" in message
    for name in NAMES:
        assert name in message
    assert isinstance(err.value, KeyError)


@pytest.mark.parametrize("name", NAMES)
def test_is_a_cloneable_sklearn_estimator(space, name):
    est = build_predictor(name, space)
    assert isinstance(est, BaseEstimator)
    twin = clone(est)
    assert twin is not est
    assert type(twin) is type(est)
    assert set(twin.get_params(deep=False)) == set(est.get_params(deep=False))
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


def _parts(est) -> list:
    """The estimator and, for a composite (Pipeline, wrapped regressor), its sub-estimators."""
    parts = [est]
    for step in getattr(est, "steps", []):
        parts += _parts(step[1])
    return parts


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_learned_state_ends_in_underscore(space, data, name):
    X, y = data
    est = build_predictor(name, space)
    params = set(est.get_params(deep=False))
    before = {id(part): set(vars(part)) for part in _parts(est)}
    assert all(not a.endswith("_") or a.startswith("_") for part in _parts(est) for a in vars(part)), \
        "an unfitted estimator holds no learned state"
    assert est.fit(X[:100], y[:100]) is est
    check_is_fitted(est)
    assert set(est.get_params(deep=False)) == params, "fit must not add or drop parameters"
    for part in _parts(est):
        learned = {a for a in set(vars(part)) - before[id(part)] if not a.startswith("_")}  # _private is allowed
        assert learned, f"{type(part).__name__} learned nothing"
        assert all(a.endswith("_") for a in learned), (type(part).__name__, learned)
    # a clone of a fitted estimator is unfitted again
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(est))


@pytest.mark.parametrize("name", NAMES)
def test_predict_takes_the_whole_batch(space, data, name):
    X, y = data
    est = build_predictor(name, space).fit(X[:100], y[:100])
    batch = est.predict(X[100:])
    assert batch.shape == (len(X) - 100,)
    assert np.isfinite(batch).all()
    one_by_one = np.array([est.predict(x[None, :])[0] for x in X[100:110]])
    np.testing.assert_allclose(batch[:10], one_by_one, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_predictions_ignore_hidden_genes(space, data, name):
    """A raw encoding and its canonical form are one network, so they get one prediction."""
    X, y = data
    est = build_predictor(name, space).fit(_raw_variants(space, X[:100], 1), y[:100])
    raw = _raw_variants(space, X[100:], 2)
    assert not np.array_equal(raw, X[100:])  # some hidden genes really were scrambled
    np.testing.assert_allclose(est.predict(raw), est.predict(X[100:]), rtol=0, atol=1e-12)


def test_active_one_hot_identical_for_equal_canonical_forms(space, data):
    X, _ = data
    raw = _raw_variants(space, X, 3)
    features = ActiveOneHot(space).fit(raw)
    np.testing.assert_array_equal(features.transform(raw), features.transform(space.canonicalize(raw)))


def test_active_one_hot_layout(space):
    """One column per (gene, option); exactly one 1 per active gene, none for hidden genes."""
    features = ActiveOneHot(space).fit(None)
    assert features.n_features_out_ == int(space.cardinalities.sum())
    X = space.sample(50, 5)
    F = features.transform(X)
    assert F.shape == (50, space.cardinalities.sum())
    np.testing.assert_array_equal(F.sum(axis=1), space.active_mask(X).sum(axis=1))
    assert set(np.unique(F)) <= {0.0, 1.0}


def test_active_one_hot_rejects_invalid_encodings(space):
    features = ActiveOneHot(space).fit(None)
    bad = np.zeros((1, space.n_var), dtype=np.int64)
    bad[0, 1] = 99
    with pytest.raises(InvalidEncodingError, match=space.names[1].replace(".", r"\.")):
        features.transform(bad)


def test_ridge_ranks_an_additive_target(space):
    """On an additive target over the active genes, ridge's held-out Kendall tau exceeds 0.8."""
    X = space.sample(400, 21)
    y = _additive_target(space, X, seed=4) + np.random.default_rng(9).normal(scale=0.05, size=len(X))
    train, test = slice(0, 150), slice(150, None)
    est = build_predictor("ridge", space).fit(X[train], y[train])
    tau = kendalltau(y[test], est.predict(X[test])).statistic
    assert tau > 0.8, tau


def test_svr_learns_something_on_an_additive_target(space):
    """SVR-RBF is not made for additive targets, but it must still rank clearly better than chance."""
    X = space.sample(400, 22)
    y = _additive_target(space, X, seed=5)
    est = build_predictor("svr_rbf", space).fit(X[:200], y[:200])
    assert kendalltau(y[200:], est.predict(X[200:])).statistic > 0.5
