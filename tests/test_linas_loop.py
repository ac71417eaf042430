"""The in-process search loops (LINAS and validation-only) on a cheap synthetic problem.

`SyntheticProblem` stands in for the super-network: accuracy and latency are sums of
per-(gene, option) effects over the *active* genes, both increasing with every
option index, so the problem has a clear structure that predictors can learn and
known extremes (the smallest and the largest network) that fix a common
normalization for comparing hypervolumes across runs.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from linas_lib.config import config_from_dict
from linas_lib.measurements import make_row, to_frame
from linas_lib.pareto import Normalization, hypervolume
from linas_lib.runs import RunStore
from linas_lib.search.loop import run_linas, run_validation
from linas_lib.supernets.elastic_cnn import build_space

ACC, LAT = "accuracy", "latency@cpu-ort"


class SyntheticProblem:
    """A deterministic `measure(iteration, X, predictions)` that records every call."""

    def __init__(self, space, seed: int = 123, fail_ids: set[str] = frozenset(),
                 fail_at: tuple[int, int] | None = None, fail_mode: str = "nan"):
        self.space = space
        rng = np.random.default_rng(seed)
        self.acc_w, self.lat_w = [], []
        for name, card in zip(space.names, space.cardinalities):
            scale = 0.0 if name.endswith("depth") else 1.0  # depth acts through the blocks it reveals
            for table in (self.acc_w, self.lat_w):
                w = np.sort(rng.uniform(0, 1, card)) * scale
                table.append(w - w[0])
        self.fail_ids = set(fail_ids)  # these networks fail, as fail_mode says
        self.fail_at = fail_at  # (call number, position): fail that network too
        self.fail_mode = fail_mode  # "nan": accuracy NaN; "error": an error and a wild finite value
        self.calls: list[dict] = []  # one entry per measure() call
        self.rows: dict[str, dict] = {}  # every row handed out, by subnet_id

    def values(self, x: np.ndarray) -> tuple[float, float]:
        active = self.space.active_mask(x)[0]
        acc = sum(self.acc_w[i][g] + 0.3 for i, g in enumerate(x) if active[i])
        lat = sum(self.lat_w[i][g] + 0.3 for i, g in enumerate(x) if active[i])
        return 0.5 + acc / 40, 1.0 + lat

    def normalization(self) -> Normalization:
        """Bounds from the smallest and largest networks (both objectives are monotone)."""
        lo = self.values(self.space.canonicalize(np.zeros(self.space.n_var, dtype=np.int64))[0])
        hi = self.values(self.space.upper)
        return Normalization((-hi[0], lo[1]), (-lo[0], hi[1]))

    def __call__(self, iteration: int, X: np.ndarray, predictions):
        X = np.asarray(X)
        keys = self.space.keys(X)
        if self.fail_at and self.fail_at[0] == len(self.calls):
            self.fail_ids.add(keys[self.fail_at[1]])
        self.calls.append({"iteration": iteration, "X": X.copy(), "keys": keys, "predictions": predictions})
        rows = []
        for x, key in zip(X, keys):
            acc, lat = self.values(x)
            error = ""
            if key in self.fail_ids:
                if self.fail_mode == "nan":
                    acc = float("nan")
                else:
                    acc, error = 1000.0, "synthetic failure: the device went away"
            values = {ACC: acc, LAT: lat, "macs": float(x.sum())}
            for name, value in ((predictions or {}).get(key) or {}).items():
                values[f"pred:{name}"] = value
            row = make_row(subnet_id=key, encoding=x, iteration=iteration, values=values, run="synthetic",
                           error=error)
            self.rows[key] = row
            rows.append(row)
        return to_frame(rows)

    @property
    def measured_keys(self) -> list[str]:
        return [k for call in self.calls for k in call["keys"]]


def linas_config(seed: int = 0, population: int = 10, evaluations: int = 50, inner_evaluations: int = 1000, **search):
    return config_from_dict({
        "name": "synthetic",
        "seed": seed,
        "search": {
            "population": population,
            "evaluations": evaluations,
            "inner": {"algorithm": "nsga2", "evaluations": inner_evaluations, "population": 30},
            # the synthetic objectives are additive over active genes: ridge's home ground
            "predictors": {"accuracy": {"name": "ridge"}, "latency": {"name": "ridge"}},
            **search,
        },
    })


def _dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _min_form(record) -> tuple[float, float]:
    return (-record[ACC], record[LAT])


def _front_hv(summary, norm: Normalization) -> float:
    return hypervolume(np.array([_min_form(r) for r in summary["pareto"]]), norm)


@pytest.fixture(scope="module")
def space():
    return build_space()


@pytest.fixture(scope="module")
def linas_run(space, tmp_path_factory):
    """One LINAS run with a RunStore (45 evaluations: the last iteration is partial)."""
    problem = SyntheticProblem(space)
    config = linas_config(population=10, evaluations=45)
    run_dir = tmp_path_factory.mktemp("linas-run")
    summary = run_linas(config, space, problem, run=RunStore(str(run_dir)), progress=False)
    return config, problem, summary, run_dir


# ---- LINAS invariants --------------------------------------------------------------
def test_no_subnetwork_is_measured_twice(space, linas_run):
    _, problem, _, _ = linas_run
    keys = problem.measured_keys
    assert len(keys) == len(set(keys))
    for call in problem.calls:
        np.testing.assert_array_equal(space.canonicalize(call["X"]), call["X"])  # canonical form only


def test_budget_is_spent_exactly(linas_run):
    config, problem, summary, _ = linas_run
    assert len(problem.measured_keys) == 45
    assert summary["evaluations"] == 45
    assert [len(c["keys"]) for c in problem.calls] == [10, 10, 10, 10, 5]
    assert [c["iteration"] for c in problem.calls] == [0, 1, 2, 3, 4]
    assert summary["iterations"] == config.search.iterations == 5


def test_predictions_are_handed_to_measure_after_the_first_iteration(linas_run):
    _, problem, _, _ = linas_run
    assert not problem.calls[0]["predictions"]
    for call in problem.calls[1:]:
        assert set(call["predictions"]) == set(call["keys"])
        for predicted in call["predictions"].values():
            assert set(predicted) == {ACC, LAT}
            assert all(np.isfinite(v) for v in predicted.values())


def test_hypervolume_per_iteration_is_non_decreasing(linas_run):
    _, _, summary, _ = linas_run
    hv = summary["hypervolume"]
    assert len(hv) == 5
    assert all(b >= a - 1e-12 for a, b in zip(hv, hv[1:])), hv
    assert hv[-1] > hv[0]


def test_pareto_holds_only_measured_rows(linas_run):
    """Every front entry is a measured row with its measured values, never a prediction."""
    _, problem, summary, _ = linas_run
    assert summary["pareto"]
    for record in summary["pareto"]:
        measured = problem.rows[record["subnet_id"]]
        assert record[ACC] == measured[ACC] and record[LAT] == measured[LAT]
        assert record["encoding"] == json.loads(measured["encoding"])  # a list in the summary, not JSON text
        assert not any(str(k).startswith("pred:") for k in record)


def test_pareto_is_exactly_the_non_dominated_measured_set(linas_run):
    _, problem, summary, _ = linas_run
    front = {r["subnet_id"]: _min_form(r) for r in summary["pareto"]}
    for a, fa in front.items():
        for b, fb in front.items():
            assert a == b or not _dominates(fb, fa), f"{b} dominates {a}"
    measured = {k: _min_form(r) for k, r in problem.rows.items()}
    expected = {k for k, f in measured.items() if not any(_dominates(g, f) for g in measured.values())}
    assert set(front) == expected


def test_run_directory_layout(linas_run):
    _, _, summary, run_dir = linas_run
    files = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    expected = {"config.json", "measurements.parquet", "pareto.json", "summary.json"}
    expected |= {f"populations/iter-{i:03d}.json" for i in range(5)}
    expected |= {f"predictors/iter-{i:03d}.json" for i in range(5)}  # descriptions: never a pickle
    assert expected <= files, expected - files
    stored = json.loads((run_dir / "summary.json").read_text())
    for key in ("evaluations", "iterations", "hypervolume", "pareto"):
        assert key in stored
    assert stored["evaluations"] == 45 and stored["iterations"] == 5
    assert isinstance(stored["hypervolume"], list) and len(stored["hypervolume"]) == 5
    assert isinstance(stored["pareto"], list) and stored["pareto"]
    pareto = json.loads((run_dir / "pareto.json").read_text())
    assert pareto["pareto"] == stored["pareto"] and pareto["units"] == stored["units"]
    assert RunStore(str(run_dir)).load_summary() == stored


def test_population_documents(space, linas_run):
    _, problem, _, run_dir = linas_run
    for i, call in enumerate(problem.calls):
        doc = json.loads((run_dir / f"populations/iter-{i:03d}.json").read_text())
        assert doc["iteration"] == i
        assert doc["subnet_ids"] == call["keys"] == space.keys(np.array(doc["encodings"]))
        if i == 0:
            assert "predicted" not in doc
        else:
            assert set(doc["predicted"]) == {ACC, LAT}
            assert len(doc["predicted"][ACC]) == len(call["keys"])


def test_stored_predictors_load_and_predict(space, linas_run):
    config, _, _, run_dir = linas_run
    described = json.loads((run_dir / "predictors/iter-002.json").read_text())
    assert set(described) == {ACC, LAT} and all("model" in d for d in described.values())
    predictors = RunStore(str(run_dir)).load_predictors(2, config, space)  # refitted from the table
    assert set(predictors) == {ACC, LAT}
    X = space.sample(7, 99)
    for estimator in predictors.values():
        assert estimator.predict(X).shape == (7,)


def test_measurement_table_columns_are_typed(space, linas_run):
    _, _, _, run_dir = linas_run
    frame = RunStore(str(run_dir)).load_measurements()
    assert len(frame) == 45 and frame["subnet_id"].is_unique
    assert frame["iteration"].dtype == np.int64
    assert sorted(frame["iteration"].unique()) == [0, 1, 2, 3, 4]
    assert pd.api.types.is_string_dtype(frame["encoding"]) and pd.api.types.is_string_dtype(frame["subnet_id"])
    for text, key in zip(frame["encoding"], frame["subnet_id"]):
        enc = json.loads(text)
        assert isinstance(enc, list) and len(enc) == space.n_var and all(isinstance(g, int) for g in enc)
        assert space.key(enc) == key
    for column in (ACC, LAT, "macs", f"pred:{ACC}", f"pred:{LAT}"):
        assert frame[column].dtype == np.float64, column
    assert frame.loc[frame["iteration"] == 0, f"pred:{ACC}"].isna().all()
    assert frame.loc[frame["iteration"] > 0, f"pred:{ACC}"].notna().all()
    assert (frame["status"] == "ok").all()


def test_prospective_predictor_quality_is_reported(linas_run):
    _, _, summary, _ = linas_run
    quality = summary["predictor_quality"]
    assert [q["iteration"] for q in quality] == [1, 2, 3, 4]
    assert all(q[ACC]["n"] == (10 if q["iteration"] < 4 else 5) for q in quality)


def test_linas_is_deterministic_for_a_seed(space):
    config = linas_config(seed=3, population=6, evaluations=18, inner_evaluations=300)
    first, second, other = SyntheticProblem(space), SyntheticProblem(space), SyntheticProblem(space)
    run_linas(config, space, first, progress=False)
    run_linas(config, space, second, progress=False)
    assert first.measured_keys == second.measured_keys
    # and the seed is not ignored: another seed measures other networks from the first population on
    run_linas(linas_config(seed=4, population=6, evaluations=18, inner_evaluations=300), space, other, progress=False)
    assert set(other.calls[0]["keys"]) != set(first.calls[0]["keys"])
    assert set(other.measured_keys) != set(first.measured_keys)


def test_a_space_smaller_than_the_budget_is_measured_once_each():
    """27 networks and a budget of 27: the predicted best are the same networks every
    iteration, so only the "not yet measured" filter keeps each to one measurement."""
    from linas_lib.api.search_space import SearchSpace, Variable

    tiny = SearchSpace([Variable(f"g{i}", (1, 2, 3)) for i in range(3)], name="tiny")
    problem = SyntheticProblem(tiny)
    summary = run_linas(linas_config(population=9, evaluations=27, inner_evaluations=200), tiny, problem,
                        progress=False)
    keys = problem.measured_keys
    assert len(keys) == 27 and len(set(keys)) == 27 and summary["evaluations"] == 27


def test_early_stop_ends_the_search_when_the_hypervolume_stalls(space):
    """A gain threshold no iteration can reach: the search stops after `window` + 1
    iterations, says why, and the budget's remaining iterations are never measured."""
    problem = SyntheticProblem(space)
    config = linas_config(population=5, evaluations=40, early_stop={"threshold": 1.0, "window": 2})
    summary = run_linas(config, space, problem, progress=False)
    assert config.search.iterations == 8
    assert [c["iteration"] for c in problem.calls] == [0, 1, 2] and summary["evaluations"] == 15
    unlimited = SyntheticProblem(space)
    run_linas(linas_config(population=5, evaluations=40), space, unlimited, progress=False)
    assert len(unlimited.calls) == 8  # without the early stop, the whole budget


# ---- LINAS versus random search --------------------------------------------------------
def test_linas_beats_random_search_on_hypervolume(space):
    """Same budget, same problem, common normalization: LINAS finds a clearly better front."""
    linas, random = [], []
    for seed in (0, 1):
        problem = SyntheticProblem(space)
        norm = problem.normalization()
        linas.append(_front_hv(run_linas(linas_config(seed=seed), space, problem, progress=False), norm))
        baseline = config_from_dict({"name": "random", "seed": seed, "search": {
            "mode": "validation", "algorithm": "random", "population": 10, "evaluations": 50}})
        random_problem = SyntheticProblem(space)
        summary = run_validation(baseline, space, random_problem, progress=False)
        assert len(random_problem.measured_keys) == 50
        random.append(_front_hv(summary, norm))
    assert np.mean(linas) > np.mean(random) + 0.03, (linas, random)


# ---- failed measurements --------------------------------------------------------------
@pytest.mark.parametrize("failure", ["nan", "error"])
def test_a_failed_measurement_is_kept_but_never_trained_on(space, tmp_path, failure):
    """A failed row stays in the table (status 'failed'), is never re-measured, and no predictor learns from it.

    'nan': the measurement came back NaN. 'error': it came back with an error message
    and a wild but finite value, which would visibly distort a predictor trained on it.
    """
    config = linas_config(seed=5, population=8, evaluations=24, inner_evaluations=400,
                          predictors={"accuracy": {"name": "svr_rbf"}, "latency": {"name": "ridge"}})
    problem = SyntheticProblem(space, fail_at=(0, 2), fail_mode=failure)  # 3rd network of the 1st population
    run = RunStore(str(tmp_path))
    summary = run_linas(config, space, problem, run=run, progress=False)
    (victim,) = problem.fail_ids

    assert len(problem.calls) == 3, "the search must carry on after a failure"
    assert problem.measured_keys.count(victim) == 1, "a failed network is not measured again"
    assert len(set(problem.measured_keys)) == 24
    frame = run.load_measurements()
    failed = frame[frame["subnet_id"] == victim]
    assert len(failed) == 1 and failed["status"].item() == "failed"
    assert failed["error"].item() != ""
    assert (frame.loc[frame["subnet_id"] != victim, "status"] == "ok").all()
    assert summary["evaluations"] == 24 and summary["failed"] == 1 and summary["successful"] == 23
    assert victim not in {r["subnet_id"] for r in summary["pareto"]}

    # The stored predictors of iteration 0 predict exactly like fresh ones fitted on
    # the 7 successful rows of that iteration, i.e. the failed row was left out.
    from linas_lib.measurements import encodings
    from linas_lib.predictors import build_predictor
    from linas_lib.search.problem import search_problem

    ok = frame[(frame["iteration"] == 0) & (frame["status"] == "ok")]
    assert len(ok) == 7
    probe = space.sample(50, 1234)
    stored = run.load_predictors(0, config, space)
    for objective, name in ((ACC, "svr_rbf"), (LAT, "ridge")):
        problem = search_problem(config)  # the plugin's derived features, as the search uses them
        derived = problem.derived_features if problem.has_features else None
        fresh = build_predictor(name, space, derived=derived).fit(encodings(ok), ok[objective].to_numpy())
        np.testing.assert_allclose(stored[objective].predict(probe), fresh.predict(probe), rtol=1e-9, atol=1e-12)


# ---- validation-only search ------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["random", "nsga2"])
def test_validation_search_measures_each_network_once_and_spends_the_budget(space, algorithm):
    config = config_from_dict({"name": "validation", "seed": 0, "search": {
        "mode": "validation", "algorithm": algorithm, "population": 8, "evaluations": 200}})
    problem = SyntheticProblem(space)
    summary = run_validation(config, space, problem, progress=False)
    keys = problem.measured_keys
    outcome = {"measured twice": len(keys) - len(set(keys)), "evaluations": summary["evaluations"]}
    assert outcome == {"measured twice": 0, "evaluations": 200}
    for call in problem.calls:
        np.testing.assert_array_equal(space.canonicalize(call["X"]), call["X"])


@pytest.mark.parametrize("algorithm", ["random", "nsga2"])
def test_validation_search_with_a_partial_last_batch(space, algorithm):
    """evaluations need not be a multiple of population: the last batch is smaller."""
    config = config_from_dict({"name": "validation", "seed": 0, "search": {
        "mode": "validation", "algorithm": algorithm, "population": 10, "evaluations": 45}})
    problem = SyntheticProblem(space)
    summary = run_validation(config, space, problem, progress=False)
    assert summary["evaluations"] == 45
    assert len(set(problem.measured_keys)) == len(problem.measured_keys) == 45
    hv = summary["hypervolume"]
    assert all(b >= a - 1e-12 for a, b in zip(hv, hv[1:]))


def test_validation_search_survives_a_failed_measurement(space):
    config = config_from_dict({"name": "validation", "seed": 0, "search": {
        "mode": "validation", "algorithm": "nsga2", "population": 8, "evaluations": 24}})
    problem = SyntheticProblem(space, fail_at=(0, 0))
    summary = run_validation(config, space, problem, progress=False)
    (victim,) = problem.fail_ids
    assert summary["failed"] == 1 and summary["evaluations"] == 24
    assert victim not in {r["subnet_id"] for r in summary["pareto"]}


def test_an_iteration_whose_every_measurement_failed_is_saved_then_stops_the_search(space, tmp_path):
    """The failed rows and their reasons reach the measurement table before anything raises, the
    error says why, and a resume (the cause fixed) measures that iteration again."""
    from linas_lib.measurements import IterationFailedError

    config = linas_config(seed=2, population=8, evaluations=16, inner_evaluations=200)
    first = config.search.population_at(0)
    problem = SyntheticProblem(space, fail_mode="error")
    problem.fail_ids = _AllKeys()
    run = RunStore(str(tmp_path))
    with pytest.raises(IterationFailedError) as info:
        run_linas(config, space, problem, run=run, progress=False)
    message = str(info.value)
    assert message.startswith(f"all {first} measurements of iteration 0 failed; first error: synthetic failure: "
                              "the device went away; see "), message
    assert message.endswith(f"{run.uri}/measurements/iter-00000.parquet")  # the iteration's own part
    frame = run.load_measurements()
    assert len(frame) == first and (frame["status"] == "failed").all()
    assert (frame["error"] == "synthetic failure: the device went away").all()

    fixed = SyntheticProblem(space)
    summary = run_linas(config, space, fixed, run=run, progress=False, resume=True)
    assert [c["iteration"] for c in fixed.calls] == [0, 1]
    assert summary["evaluations"] == 16 and summary["failed"] == 0


class _AllKeys(set):
    def __contains__(self, key):
        return True
