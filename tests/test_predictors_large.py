"""Predictors above their size threshold: the linear-cost methods, still sklearn estimators.

The threshold (`max_exact`, 2,000 records by default) is lowered here so that the
large-data paths run on a few hundred records; one test fits 20,000 for real.
"""
from __future__ import annotations

import io
import tracemalloc

import joblib
import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.base import clone
from sklearn.linear_model import RidgeCV

from linas_lib.predictors import build_predictor
from linas_lib.predictors.ensemble import BootstrapEnsemble
from linas_lib.predictors.large import EXACT_MAX_RECORDS, ridge_gram
from linas_lib.supernets import supernet_space
from test_predictor_zoo import synthetic_target

LARGE = {"ridge": "gram", "svr_rbf": "nystroem", "svr_linear": "subsample", "stacked": "blend"}


@pytest.fixture(scope="module")
def space():
    return supernet_space("elastic_cnn")


@pytest.fixture(scope="module")
def problem(space):
    rng = np.random.default_rng(5)
    X = space.sample(800, rng)
    y = synthetic_target(space, X, rng)
    return X[:600], y[:600], X[600:], y[600:]


@pytest.mark.parametrize("name", sorted(LARGE))
def test_above_the_threshold_a_linear_cost_method_keeps_the_contract(space, problem, name):
    X, y, X_test, y_test = problem
    est = build_predictor(name, space, max_exact=150)
    params = est.get_params()
    assert est.fit(X, y) is est
    assert est.scaling_["method"] == LARGE[name] and est.scaling_["records"] == len(y)
    assert all(k.endswith("_") for k in set(vars(est)) - set(params))
    assert est.get_params().keys() == params.keys()
    pred = est.predict(X_test)
    assert kendalltau(pred, y_test).statistic > 0.7
    np.testing.assert_array_equal(clone(est).fit(X, y).predict(X_test), pred)  # deterministic
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    np.testing.assert_array_equal(joblib.load(buf).predict(X_test), pred)


@pytest.mark.parametrize("name", sorted(LARGE))
def test_at_the_threshold_the_exact_model_is_used(space, problem, name):
    X, y, _, _ = problem
    assert build_predictor(name, space, max_exact=300).fit(X[:300], y[:300]).scaling_["method"] == "exact"
    assert build_predictor(name, space).get_params()["max_exact"] == EXACT_MAX_RECORDS


def test_gram_ridge_chooses_ridgecvs_alpha_and_coefficients(space, problem):
    X, y, _, _ = problem
    exact = build_predictor("ridge", space).fit(X, y)
    gram = build_predictor("ridge", space, max_exact=100).fit(X, y)
    assert gram.alpha_ == exact.alpha_
    np.testing.assert_allclose(gram.coef_, exact.coef_, rtol=1e-6, atol=1e-8)
    assert gram.loo_mse_ == pytest.approx(exact.loo_mse_, rel=1e-6)
    # and on an arbitrary design, against scikit-learn's own leave-one-out
    rng = np.random.default_rng(0)
    F, z = rng.normal(size=(300, 12)), rng.normal(size=300)
    alphas = np.logspace(-3, 3, 7)
    ref = RidgeCV(alphas=alphas).fit(F, z)
    alpha, coef, intercept, _ = ridge_gram(F, z, alphas)
    assert alpha == ref.alpha_
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-8)
    assert intercept == pytest.approx(ref.intercept_)


def test_nystroem_svr_takes_the_hyperparameters_chosen_on_a_subsample(space, problem):
    X, y, _, _ = problem
    svr = build_predictor("svr_rbf", space, max_exact=150, landmarks=100).fit(X, y)
    s = svr.scaling_
    assert s["selection_records"] == 150 and s["landmarks"] == 100 and 0 < s["holdout"] < len(y)
    assert svr.C_ in svr.cv_results_["C"] and svr.gamma_ in svr.cv_results_["gamma"]
    assert set(svr.resolved_params()) == {"C", "epsilon", "gamma"}
    assert np.isfinite(svr.heldout_predictions_).sum() == s["holdout"]


def test_large_ensemble_members_are_m_out_of_n_with_a_scaled_spread(space, problem):
    X, y, X_test, _ = problem
    base = build_predictor("ridge", space, max_exact=100)
    big = BootstrapEnsemble(base, n_members=4, max_exact=100, member_records=120).fit(X, y)
    assert big.member_records_ == 120 and big.spread_scale_ == pytest.approx(np.sqrt(120 / 600))
    assert all(m.scaling_["records"] == 120 for m in big.members_)
    mean, std = big.predict_dist(X_test)
    np.testing.assert_array_equal(mean, big.center_.predict(X_test))
    raw = np.column_stack([m.predict(X_test) for m in big.members_]).std(axis=1)
    np.testing.assert_allclose(std, raw * np.sqrt(120 / 600))
    small = BootstrapEnsemble(base, n_members=4).fit(X, y)  # under the threshold: full bootstraps
    assert small.member_records_ == len(y) and small.spread_scale_ == 1.0


def test_description_records_the_method(space, problem):
    from linas_lib.search.core import describe_predictors

    X, y, _, _ = problem
    ens = BootstrapEnsemble(build_predictor("stacked", space, max_exact=150), n_members=2, max_exact=150,
                            member_records=100).fit(X, y)
    entry = describe_predictors({"accuracy": ens})["accuracy"]
    assert entry["scaling"]["method"] == "blend"
    assert entry["scaling"]["bases"]["svr_rbf"]["method"] == "nystroem"
    assert entry["ensemble"] == {"members": 2, "member_records": 100, "spread_scale": pytest.approx(np.sqrt(100 / 600))}


def test_bad_sizes_are_reported(space, problem):
    X, y, _, _ = problem
    with pytest.raises(ValueError, match="max_exact"):
        build_predictor("svr_rbf", space, max_exact=0).fit(X[:30], y[:30])
    with pytest.raises(ValueError, match="landmarks"):
        build_predictor("stacked", space, landmarks=1.5).fit(X[:30], y[:30])


def test_twenty_thousand_records_fit_without_an_n_by_n_matrix(space):
    """The default predictors at 20,000 records: memory stays far below one n x n kernel (3.2 GB)."""
    rng = np.random.default_rng(1)
    X = space.sample(20_000, rng)
    y = synthetic_target(space, X, rng)
    tracemalloc.start()
    try:
        svr = build_predictor("svr_rbf", space).fit(X, y)
        ridge = build_predictor("ridge", space).fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert svr.scaling_["method"] == "nystroem" and ridge.scaling_["method"] == "gram"
    assert peak < 200e6, f"{peak / 1e6:.0f} MB"
    assert kendalltau(svr.predict(X[:2000]), y[:2000]).statistic > 0.8
