"""Search modes beyond plain LINAS: one-shot predictor search, constraint groups,
per-iteration schedules and latency normalization."""
from __future__ import annotations

import numpy as np
import pytest

from linas_lib.config import ConfigError, config_from_dict
from linas_lib.measurements import make_row, to_frame
from linas_lib.search.loop import run_linas
from linas_lib.supernets import supernet_space

SPACE = supernet_space("elastic_cnn")
WEIGHTS = np.random.default_rng(1).normal(size=SPACE.n_var)


def latency_of(x: np.ndarray) -> float:
    active = SPACE.active_mask(x)[0]
    return 1 + 0.1 * active.sum() + 0.05 * (x * active).sum()


def measure(iteration, X, predictions):
    rows = []
    for x, key in zip(X, SPACE.keys(X)):
        active = SPACE.active_mask(x)[0]
        values = {
            "accuracy": 0.7 + 0.01 * np.tanh(float((WEIGHTS * x * active).sum())) + 0.001 * active.sum(),
            "latency@cpu-ort": latency_of(x),
        }
        values.update({f"pred:{k}": v for k, v in (predictions or {}).get(key, {}).items()})
        rows.append(make_row(subnet_id=key, encoding=x, iteration=iteration, values=values))
    return to_frame(rows)


def test_oneshot_measures_samples_then_validates_the_predicted_front_per_constraint_group():
    config = config_from_dict({
        "search": {
            "mode": "oneshot", "population": 20, "evaluations": 100, "inner": {"evaluations": 2000},
            "constraints": [{"objective": "latency@cpu-ort", "max": 3.0}, {"objective": "latency@cpu-ort", "max": 4.0}],
        }
    })
    assert config.search.plan() == [80, 20]
    calls = []

    def recording(iteration, X, predictions):
        calls.append((iteration, X.copy(), predictions))
        return measure(iteration, X, predictions)

    summary = run_linas(config, SPACE, recording, progress=False)
    assert summary["evaluations"] == 100 and summary["iterations"] == 2
    (_, first, none), (_, picks, predicted) = calls
    assert len(first) == 80 and none is None
    # Every pick was predicted to meet a constraint group's latency budget.
    assert all(p["latency@cpu-ort"] <= 4.0 + 1e-9 for p in predicted.values())
    # Both groups got their share: 10 picks predicted within the tighter budget.
    assert sum(p["latency@cpu-ort"] <= 3.0 for p in predicted.values()) >= 10


def test_schedule_changes_population_algorithm_and_predictor_between_iterations():
    config = config_from_dict({
        "search": {
            "population": 20, "evaluations": 100, "inner": {"evaluations": 1000},
            "schedule": [{"from_iteration": 2, "population": 30, "inner": {"algorithm": "random", "evaluations": 500},
                          "predictors": {"accuracy": {"name": "ridge"}}}],
        }
    })
    assert config.search.plan() == [20, 20, 30, 30]
    assert config.search.inner_at(1).algorithm == "nsga2"
    assert config.search.inner_at(3).algorithm == "random"
    assert config.predictor_for("accuracy", 1).name == "svr_rbf"
    assert config.predictor_for("accuracy", 2).name == "ridge"
    summary = run_linas(config, SPACE, measure, progress=False)
    assert summary["evaluations"] == 100
    assert len(summary["hypervolume"]) == 4


def test_constraint_on_unknown_objective_and_bad_schedule_are_rejected():
    with pytest.raises(ConfigError, match="search.constraints|unknown objective 'latency@gpu'"):
        config_from_dict({"search": {"constraints": [{"objective": "latency@gpu", "max": 1}]}})
    with pytest.raises(ConfigError, match="strictly increasing"):
        config_from_dict({"search": {"schedule": [{"from_iteration": 3}, {"from_iteration": 2}]}})
    with pytest.raises(ConfigError, match="oneshot_samples"):
        config_from_dict({"search": {"mode": "oneshot", "evaluations": 50, "population": 10, "oneshot_samples": 50}})


def test_normalized_latency_becomes_the_objective():
    config = config_from_dict({"search": {"normalize_latency": True}})
    names = [o.name for o in config.resolved_objectives()]
    assert names == ["accuracy", "latency_norm@cpu-ort"]
    assert config.predictor_for("latency_norm@cpu-ort").name == "ridge"
