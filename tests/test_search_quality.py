"""What makes a search need fewer real measurements: exact objectives, aliases, derived
features, uncertainty-aware selection, adaptive populations and a readable hypervolume."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from linas_lib.config import auto_plan, config_from_dict
from linas_lib.pareto import Normalization, hypervolume
from linas_lib.search import core
from linas_lib.search.selection import ehvi_rank_selection, ehvi_selection, hvi_2d

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = str(ROOT / "bench" / "plugins" / "synthetic_problems.py")
POOL = str(ROOT / "bench" / "plugins" / "elastic_cnn_pool.py")


def nb201(objectives=("accuracy", "latency"), **search):
    targets = [{"name": "nb201", "backend": "tabular"}] if "latency" in objectives else []
    return config_from_dict({"name": "t", "seed": 0, "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
                             "objectives": list(objectives), "targets": targets, "search": {"mode": "linas", **search}})


def aliased(**search):
    return config_from_dict({"name": "a", "seed": 0, "supernet": {"name": "aliased_cells", "plugin_file": SYNTHETIC},
                             "objectives": ["accuracy", "latency"], "targets": [{"name": "sim", "backend": "tabular"}],
                             "search": {"mode": "linas", **search}})


def run(config, measured=None):
    from linas_lib.objectives import supernet_measure
    from linas_lib.search.loop import run_linas
    from linas_lib.supernets import load_supernet

    net = load_supernet(config.supernet, progress=False)
    real = supernet_measure(config, net)
    calls = []

    def measure(iteration, X, predictions=None):
        calls.append(np.asarray(X).copy())
        return real(iteration, X, predictions)

    return run_linas(config, net.space, measure, progress=False), net, calls


# ---- exact objectives, no needless targets ---------------------------------------------------
def test_elastic_cnn_closed_form_complexity_equals_the_modules_own_count():
    torch = pytest.importorskip("torch")
    from linas_lib.supernets import elastic_cnn as E

    space = E.build_space()
    net = E._new_net()
    X = space.canonicalize(np.vstack([np.zeros(space.n_var, np.int64), space.upper, space.sample(6, 3)]))
    closed = E.complexity_of(X)
    for i, x in enumerate(X):
        macs, params = E.count_macs_params(net.extract(E.decode(space, x)).eval(), torch.zeros(1, 1, 28, 28))
        assert (closed["macs"][i], closed["params"][i]) == (macs, params)


def test_cheap_objectives_are_computed_in_the_search_never_predicted():
    config = nb201(("accuracy", "params"), evaluations=40)
    from linas_lib.supernets import load_supernet

    net = load_supernet(config.supernet, progress=False)
    X = net.space.sample(30, 1)
    frame = __import__("linas_lib.objectives", fromlist=["x"]).supernet_measure(config, net)(0, X)
    predictors = core.fit_predictors(config, net.space, frame)
    assert isinstance(predictors["params"], core.ExactObjective)
    probe = net.space.sample(200, 2)
    np.testing.assert_array_equal(predictors["params"].predict(probe), [r["params"] for r in net.evaluate(probe)])
    assert core.describe_predictors(predictors)["params"] == {"exact": True}


def test_a_search_without_latency_needs_no_target_and_measures_no_latency():
    config = nb201(("accuracy", "params"), evaluations=40, population=20)
    assert config.targets == [] and config.latency_targets == []
    summary, _, _ = run(config)
    assert summary["evaluations"] == 40 and summary["failed"] == 0
    assert not any(k.startswith("latency") for row in summary["pareto"] for k in row)
    # the default target of a file that names none is not measured either
    listed = config_from_dict({**json.loads(config.to_json()), "targets": [{"name": "cpu-ort"}]})
    assert listed.latency_targets == []
    with pytest.raises(ValueError, match="targets: the objective latency needs at least one hardware target"):
        config_from_dict({**json.loads(config.to_json()), "objectives": ["accuracy", "latency"], "targets": []})


# ---- aliases -----------------------------------------------------------------------------------
def test_a_plugin_file_space_subclass_names_aliases_as_one_network():
    config = aliased(evaluations=20)
    from linas_lib.supernets import supernet_space

    space = supernet_space(config.supernet.name)
    x = np.array([[0, 1, 2, 3, 4, 5, 1, 2]])
    permuted = np.array([[5, 4, 3, 2, 1, 0, 1, 2]])
    assert space.keys(x) == space.keys(permuted)
    assert space.keys(x) != space.keys(np.array([[0, 1, 2, 3, 4, 4, 1, 2]]))


def test_no_network_is_measured_twice_even_where_aliases_abound():
    # 7,392 networks behind 746,496 gene vectors: without canonical identity an MOEA revisits
    summary, net, calls = run(aliased(evaluations=150, population=30))
    keys = [k for X in calls for k in net.space.keys(X)]
    assert len(keys) == 150 and len(set(keys)) == 150


def test_dedup_is_what_prevents_repeats_on_a_small_space():
    # a 15,625-cell space enumerated by the inner search: the best predicted cells are the same
    # every iteration, so only the "not yet measured" filter keeps them from being measured again
    summary, net, calls = run(nb201(evaluations=120, population=30))
    keys = [k for X in calls for k in net.space.keys(X)]
    assert len(set(keys)) == len(keys) == 120


def test_the_real_measurement_pool_names_every_gene_vector_a_pooled_network():
    """The suite's elastic_cnn problem: real measurements replayed, each gene vector its nearest pooled network."""
    config = config_from_dict({"name": "pool", "seed": 0, "supernet": {"name": "elastic_cnn_pool", "plugin_file": POOL},
                               "objectives": ["accuracy", "latency"], "targets": [{"name": "t", "backend": "tabular"}],
                               "search": {"evaluations": 40, "population": 10}})
    from linas_lib.objectives import supernet_measure
    from linas_lib.supernets import load_supernet

    net = load_supernet(config.supernet, progress=False)
    space, pool = net.space, net.space.pool()
    doc = json.loads((ROOT / "bench" / "data" / "elastic_cnn_pool.json").read_text())
    assert len(pool) == len(doc["rows"]) >= 100 and space.n_encodings == len(pool)
    np.testing.assert_array_equal(space.canonicalize(pool), pool)  # a pooled network names itself
    raw = np.random.default_rng(0).integers(0, space.cardinalities, (50, space.n_var))
    X, base = space.canonicalize_valid(raw), np.where(space.active_mask(raw), raw, 0)
    d = np.abs(base[:, None, :] - pool[None]).sum(axis=2)
    np.testing.assert_array_equal(np.abs(base - X).sum(axis=1), d.min(axis=1))  # the nearest one
    sample = space.sample(30, 1, exclude=set(space.keys(pool[:5])))
    assert len(set(space.keys(sample))) == 30 and not set(space.keys(sample)) & set(space.keys(pool[:5]))
    frame = supernet_measure(config, net)(0, pool[:3])
    rows = {space.key(r["encoding"]): r for r in doc["rows"][:3]}
    for row in frame.to_dict("records"):
        assert row["accuracy"] == rows[row["subnet_id"]]["accuracy"]
        assert row["latency@t"] == pytest.approx(rows[row["subnet_id"]]["latency@cpu-ort"])
    summary, _, calls = run(config)
    keys = [k for c in calls for k in space.keys(c)]
    assert len(keys) == len(set(keys)) == 40 and summary["hypervolume_optimum"] is not None


# ---- predictors: features and uncertainty ---------------------------------------------------------
def test_feature_kinds_and_derived_features():
    from linas_lib.predictors.features import EncodingFeatures
    from linas_lib.supernets import elastic_cnn as E

    space = E.build_space()
    plugin = E.ElasticCNNSupernet()
    X = space.sample(40, 0)
    onehot = EncodingFeatures(space, "onehot").fit(X).transform(X)
    ordinal = EncodingFeatures(space, "ordinal").fit(X).transform(X)
    both = EncodingFeatures(space, "ordinal+derived", plugin.features).fit(X).transform(X)
    assert onehot.shape == (40, int(space.cardinalities.sum())) and ordinal.shape == (40, space.n_var)
    assert both.shape == (40, space.n_var + 3)
    np.testing.assert_allclose(both[:, -3:].mean(axis=0), 0, atol=1e-9)  # standardized on the training set
    assert EncodingFeatures(space, "auto").fit(X).kind_ == "onehot"
    assert EncodingFeatures(space, "auto", plugin.features).fit(X).kind_ == "onehot+derived"
    with pytest.raises(ValueError, match="needs derived features"):
        EncodingFeatures(space, "onehot+derived").fit(X)


def test_derived_features_are_memoized_by_content_and_never_stale():
    from linas_lib.config import config_from_dict
    from linas_lib.search import problem as P

    problem = P.search_problem(config_from_dict({"name": "memo"}))
    space = problem.plugin.space
    calls = []
    original = problem.plugin.features
    problem.plugin.features = lambda X: calls.append(len(X)) or original(X)
    try:
        A, B = space.sample(30, 1), space.sample(30, 2)  # the same shape, other networks
        first = problem.derived_features(A)
        first[:] = -1.0  # a caller's changes do not reach the memo
        for X in (A, B, A.copy(), B):
            np.testing.assert_array_equal(problem.derived_features(X), original(X))
        assert calls == [30, 30]  # each batch computed once
        for seed in range(P.RECENT_DERIVED + 1):  # a bounded memo: the oldest entries go
            problem.derived_features(space.sample(5, 100 + seed))
        assert len(P._RECENT_DERIVED) == P.RECENT_DERIVED
        problem.derived_features(A)
        assert calls[-1] == 30
    finally:
        del problem.plugin.features


@pytest.mark.parametrize("name", ["ridge", "svr_rbf", "stacked"])
def test_bootstrap_ensemble_keeps_the_sklearn_contract_and_reports_spread(name):
    from linas_lib.predictors import build_predictor
    from linas_lib.predictors.ensemble import BootstrapEnsemble
    from linas_lib.supernets import elastic_cnn as E

    space = E.build_space()
    X = space.sample(60, 0)
    y = E.complexity_of(X)["macs"] / 1e6 + np.random.default_rng(0).normal(0, 0.1, 60)
    base = build_predictor(name, space)
    ensemble = BootstrapEnsemble(base, n_members=5)
    assert ensemble.fit(X, y) is ensemble
    assert clone(ensemble).get_params()["n_members"] == 5
    probe = space.sample(30, 9)
    mean, std = ensemble.predict_dist(probe)
    np.testing.assert_allclose(mean, clone(base).fit(X, y).predict(probe))  # the centre is the full fit
    assert np.all(std > 0) and np.all(np.isfinite(std))
    assert set(ensemble.resolved_params()) <= set(base.get_params())


def test_derived_features_help_where_the_genes_hide_the_structure():
    """MACs are a product of genes; log MACs as a feature lets ridge get them nearly right."""
    from linas_lib.predictors import build_predictor
    from linas_lib.supernets import elastic_cnn as E

    space, plugin = E.build_space(), E.ElasticCNNSupernet()
    X, probe = space.sample(50, 0), space.sample(300, 1)
    y, truth = (np.log(E.complexity_of(A)["macs"]) for A in (X, probe))
    err = {kind: np.abs(build_predictor("ridge", space, features=kind, derived=plugin.features).fit(X, y)
                        .predict(probe) - truth).mean() for kind in ("onehot", "onehot+derived")}
    assert err["onehot+derived"] < 0.5 * err["onehot"]


# ---- selection -----------------------------------------------------------------------------------------
def test_hvi_2d_is_the_exact_hypervolume_difference():
    rng = np.random.default_rng(3)
    norm = Normalization((0.0, 0.0), (1.1, 1.1))  # the selection's reference point is 1.1
    for _ in range(20):
        front = rng.random((6, 2))
        front = front[core.non_dominated_mask(front)]
        points = rng.random((10, 2)) * 1.2  # some beyond the reference point
        base = hypervolume(front, norm) * 1.1**2
        expected = [hypervolume(np.vstack([front, p]), norm) * 1.1**2 - base for p in points]
        np.testing.assert_allclose(hvi_2d(points, front), expected, atol=1e-12)


def test_ehvi_picks_the_improvement_first_and_spreads_a_batch():
    measured = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.6]])
    # candidate 0 improves the front a lot; 1 and 2 are copies of one point; 3 is dominated
    mean = np.array([[0.3, 0.3], [0.8, 0.1], [0.8, 0.1], [0.9, 0.9], [0.1, 0.7]])
    std = np.zeros_like(mean)
    picked = ehvi_selection(mean, std, measured, 3, seed=0)
    assert picked[0] == 0
    assert not {1, 2} <= set(picked.tolist())  # the believer makes the copy worthless
    assert 3 not in picked
    # an uncertain candidate behind the front can still promise an improvement
    unsure = ehvi_selection(np.array([[0.6, 0.7], [0.6, 0.7]]), np.array([[0.3, 0.3], [0.0, 0.0]]), measured, 1, 0)
    assert unsure.tolist() == [0]


def test_the_default_mix_takes_the_predicted_front_and_improvements_beyond_it():
    measured = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.6]])
    # 0 and 1 form the predicted front; 2 is behind it but uncertain; 3 is behind and certain
    mean = np.array([[0.2, 0.5], [0.4, 0.3], [0.45, 0.45], [0.6, 0.6]])
    std = np.array([[0.0, 0.0], [0.0, 0.0], [0.3, 0.3], [0.0, 0.0]])
    picked = ehvi_rank_selection(mean, std, measured, 3, seed=0)
    assert len(set(picked.tolist())) == 3 and set(picked[:2].tolist()) == {0, 1} and picked[2] == 2
    assert config_from_dict({}).search.selection == "ehvi_rank"


def test_auto_population_plan_spends_the_budget_in_growing_batches():
    for budget in (40, 125, 500, 1000):
        plan = auto_plan(budget)
        assert sum(plan) == budget
        assert plan[0] == min(max(round(budget / 10), 10), 50, budget)
        assert all(1 <= n <= 50 for n in plan)
    assert len(auto_plan(500)) <= 20
    assert nb201(evaluations=500).search.plan() == auto_plan(500)


# ---- a readable hypervolume --------------------------------------------------------------------------------
def test_hypervolume_is_a_share_of_a_fixed_box():
    summary, _, _ = run(nb201(evaluations=60, population=20))
    assert summary["normalization"]["basis"] == "bounds"
    hv = summary["hypervolume"]
    assert all(0 <= v <= 1 for v in hv) and hv == sorted(hv)
    optimum = core.hypervolume_optimum(nb201())
    assert 0 < hv[-1] <= optimum <= 1


def test_anchors_fix_the_box_the_same_way_for_every_seed():
    from linas_lib.supernets import supernet_space

    space = supernet_space("elastic_cnn")
    anchors = space.anchors()
    assert len(anchors) == 2
    first = [core.initial_population(space, 20, seed) for seed in (0, 1)]
    for X in first:
        assert space.keys(X[:2]) == space.keys(anchors) and len(set(space.keys(X))) == 20
    assert space.keys(first[0][2:]) != space.keys(first[1][2:])
    config = config_from_dict({"objectives": ["accuracy", "macs"], "targets": []})
    frame = pd.DataFrame({"iteration": [0] * 3, "subnet_id": space.keys(np.vstack([anchors, space.sample(1, 5)])),
                          "status": ["ok"] * 3, "accuracy": [0.7, 0.8, 0.9], "macs": [1.0, 9.0, 5.0]})
    norm = core.normalization(config, frame)
    assert norm.basis == "anchors" and norm.lower == (-0.8, 1.0) and norm.upper == (-0.7, 9.0)
    assert hypervolume(np.array([[-0.9, 5.0]]), norm) == pytest.approx(0.5)  # clipped at the ideal


# ---- nothing executable is read back --------------------------------------------------------------------------
class _Planted:
    def __reduce__(self):
        return (Path.touch, (Path(_Planted.marker),))


def test_the_moea_stage_refits_and_never_unpickles_the_predictors_artifact(tmp_path):
    from linas_lib import stages
    from linas_lib.objectives import supernet_measure
    from linas_lib.supernets import load_supernet

    config = nb201(evaluations=40, population=20)
    net = load_supernet(config.supernet, progress=False)
    frame = supernet_measure(config, net)(0, core.initial_population(net.space, 20, 0))
    frame.to_parquet(tmp_path / "m.parquet", index=False)
    _Planted.marker = str(tmp_path / "pwned")
    (tmp_path / "predictors").write_bytes(pickle.dumps(_Planted()))
    stages.run_moea(config.to_json(), 1, str(tmp_path / "m.parquet"), str(tmp_path / "predictors"),
                    str(tmp_path / "population.json"))
    assert not (tmp_path / "pwned").exists()
    doc = json.loads((tmp_path / "population.json").read_text())
    assert len(doc["encodings"]) == 20 and not set(doc["subnet_ids"]) & set(frame["subnet_id"])


# ---- the benchmark suite's own plumbing --------------------------------------------------------------------------
def test_suite_smoke_writes_the_documented_layout(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import suite
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert suite.main(["--smoke", "--jobs", "1", "--problems", "aliased-cells", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "suite.json").read_text())
    methods = result["problems"]["aliased-cells"]["methods"]
    assert set(methods) == {"linas", "linas_paper", "nsga2", "random"}
    for entry in methods.values():
        assert {"evals_to_nsga2_hv", "evals_to_random_hv", "hv_at", "repeats", "cpu_s_per_iteration"} <= set(entry)
        assert set(entry["evals_to_nsga2_hv"]) >= {"mean", "per_seed"}
    assert methods["linas"]["repeats"]["mean"] == 0  # aliases are one network to LINAS
    curves = [r["curve"] for r in result["runs"]]
    assert all(len(c) == 60 and c == sorted(c) and 0 <= c[-1] <= 1 for c in curves)
    assert (tmp_path / "suite.png").is_file() and "| aliased-cells | linas |" in (tmp_path / "suite.md").read_text()
