"""The fast paths that keep a 100,000-row table cheap give the answers the direct ones give."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from linas_lib.measurements import encodings
from linas_lib.pareto import FAST_FRONT_ROWS, non_dominated_mask


def test_encodings_parse_the_column_at_once_and_fall_back_for_ragged_rows():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 7, (500, 13))
    frame = pd.DataFrame({"encoding": pd.Series([json.dumps(r) for r in X.tolist()], dtype="string")})
    np.testing.assert_array_equal(encodings(frame), X)
    assert encodings(pd.DataFrame({"encoding": ["[1,2]", "[3, -4]"]})).tolist() == [[1, 2], [3, -4]]
    with pytest.raises(ValueError):
        encodings(pd.DataFrame({"encoding": ["[1, 2]", "[3]"]}))  # as json.loads per row says


@pytest.mark.parametrize("m", [2, 3, 5])
def test_the_fast_front_of_a_large_table_is_pymoos(m):
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    rng = np.random.default_rng(m)
    F = np.round(rng.random((FAST_FRONT_ROWS + 500, m)), 2)
    F = np.vstack([F, F[:50]])  # duplicates stay on the front together
    expected = np.zeros(len(F), dtype=bool)
    expected[NonDominatedSorting().do(F, only_non_dominated_front=True)] = True
    np.testing.assert_array_equal(non_dominated_mask(F), expected)


def test_the_prefix_sum_hypervolume_improvement_equals_the_direct_sum():
    from linas_lib.search.selection import _front, _hvi_2d_prefix, hvi_2d

    rng = np.random.default_rng(1)
    for trial in range(60):
        front = _front(rng.random((int(rng.integers(0, 80)), 2)), 1.1)
        if trial % 5 == 0 and len(front):
            front = np.vstack([front, front[:3]])
        points = rng.random((4, 30, 2)) * 1.3 - 0.1
        np.testing.assert_allclose(_hvi_2d_prefix(points, front, 1.1), hvi_2d(points, front), atol=1e-12)


def test_a_large_tables_hypervolume_history_is_the_per_iteration_one():
    from linas_lib.config import config_from_dict
    from linas_lib.measurements import latency_column, make_row, to_frame
    from linas_lib.pareto import hypervolume
    from linas_lib.search import core

    config = config_from_dict({"name": "hv", "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
                               "objectives": ["accuracy", "latency"], "targets": [{"name": "t", "backend": "tabular"}]})
    rng = np.random.default_rng(2)
    n = FAST_FRONT_ROWS + 600
    acc, lat = rng.random(n), rng.random(n) + 0.5 * rng.random(n)
    frame = to_frame([make_row(subnet_id=f"s{i}", encoding=[0], iteration=i // 200, timestamp=0.0,
                               values={"accuracy": acc[i], latency_column("t"): lat[i]},
                               error="boom" if i % 97 == 0 else "") for i in range(n)])
    objectives = config.resolved_objectives()
    norm = core.normalization(config, frame, objectives)
    direct = [hypervolume(core.objective_matrix(frame[frame["iteration"] <= it], objectives), norm)
              for it in sorted(frame["iteration"].unique())]
    assert core.hypervolume_history(config, frame) == direct  # 2 objectives: the same staircase, bit for bit


def test_a_local_listing_walks_only_what_its_prefix_names(tmp_path):
    from linas_lib.stores.local import LocalStore

    store = LocalStore(tmp_path)
    for key in ("a/b/c.json", "a/b/_index/p.parquet", "a/bc.json", "a/x/y.json", "ab.json", "z.json"):
        store.put_bytes(key, b"{}")
    (tmp_path / "a" / "b" / ".tmp-half").write_bytes(b"")
    everything = store.list()
    assert everything == ["a/b/_index/p.parquet", "a/b/c.json", "a/bc.json", "a/x/y.json", "ab.json", "z.json"]
    for prefix in ("", "a", "a/", "a/b", "a/b/", "a/b/_", "a/b/c", "a/x/y.json", "q/", "../", "a/../a/"):
        assert store.list(prefix) == [k for k in everything if k.startswith(prefix)], prefix


def test_predictors_learn_from_a_uniform_sample_beyond_training_records():
    from linas_lib.config import ConfigError, config_from_dict
    from linas_lib.measurements import latency_column, make_row, to_frame
    from linas_lib.search import core
    from linas_lib.supernets import supernet_space

    space = supernet_space("nasbench201")
    X = space.sample(1200, 0)
    rng = np.random.default_rng(3)
    frame = to_frame([make_row(subnet_id=k, encoding=x, iteration=i // 300, timestamp=0.0,
                               values={"accuracy": float(rng.random()), latency_column("t"): 1 + float(rng.random())})
                      for i, (x, k) in enumerate(zip(X, space.keys(X)))])

    def config(limit):
        return config_from_dict({"name": "cap", "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
                                 "objectives": ["accuracy", "latency"], "targets": [{"name": "t", "backend": "tabular"}],
                                 "search": {"population": 300, "evaluations": 1500, "training_records": limit,
                                            "selection": "rank_crowding",
                                            "predictors": {"accuracy": {"name": "ridge"}, "latency@t": {"name": "ridge"}}}})

    capped = core.fit_predictors(config(500), space, frame, 4)
    assert all(p.training_records_ == {"measured": 1200, "used": 500} for p in capped.values())
    assert core.describe_predictors(capped)["accuracy"]["training_records"] == {"measured": 1200, "used": 500}
    again, later = core.fit_predictors(config(500), space, frame, 4), core.fit_predictors(config(500), space, frame, 5)
    test = space.sample(50, 9)
    np.testing.assert_array_equal(capped["accuracy"].predict(test), again["accuracy"].predict(test))  # seeded
    assert not np.array_equal(capped["accuracy"].predict(test), later["accuracy"].predict(test))  # drawn afresh
    every = core.fit_predictors(config(None), space, frame, 4)
    assert every["accuracy"].training_records_ == {"measured": 1200, "used": 1200}
    sample = core.training_sample(frame, 500, 0)
    assert len(sample) == 500 and sample["subnet_id"].is_unique and set(sample["subnet_id"]) <= set(frame["subnet_id"])
    with pytest.raises(ConfigError, match="search.training_records"):
        config(50)
