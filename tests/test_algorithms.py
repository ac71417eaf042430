"""Every registered search algorithm, in both of its modes, on small real problems.

Validation mode measures every candidate (a cheap deterministic measure function
stands in for the super-network); inner-loop mode searches fitted predictors. Both
must improve on the algorithm's initial population.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linas_lib.algos import algorithm_names, algorithm_params, build_searcher
from linas_lib.algos.base import row_keys
from linas_lib.algos.nsga2 import crowding_distance
from linas_lib.algos.refdirs import das_dennis_count, reference_directions
from linas_lib.config import ConfigError, config_from_dict
from linas_lib.measurements import make_row, to_frame
from linas_lib.pareto import Normalization, hypervolume
from linas_lib.registry import UnknownNameError
from linas_lib.search import core
from linas_lib.search.loop import run_validation
from linas_lib.supernets import supernet_space

SPACE = supernet_space("elastic_cnn")
ALGORITHMS = algorithm_names()
WEIGHTS = np.random.default_rng(1).normal(size=(2, SPACE.n_var))
# Inner-loop settings: enough generations to improve, few enough for a quick suite
# (TPE's cost per trial grows with the trials so far, so MOTPE gets fewer, in smaller batches).
INNER = {"motpe": {"evaluations": 60, "population": 10}}
LATENCY = "latency@cpu-ort"


def values_of(x: np.ndarray) -> dict[str, float]:
    active = SPACE.active_mask(x)[0]
    size = float((x * active).sum())
    return {
        "accuracy": 0.7 + 0.05 * np.tanh(float((WEIGHTS[0] * x * active).sum()) / 3) + 0.002 * size,
        LATENCY: 1 + 0.1 * active.sum() + 0.05 * size,
        "macs": 10 + float((np.abs(WEIGHTS[1]) * (1 + x) * active).sum()),
    }


def measure(iteration, X, predictions):
    rows = [make_row(subnet_id=k, encoding=x, iteration=iteration, values=values_of(x))
            for x, k in zip(X, SPACE.keys(X))]
    return to_frame(rows)


def minimization(X: np.ndarray, objectives=("accuracy", LATENCY)) -> np.ndarray:
    rows = [values_of(x) for x in X]
    return np.array([[(-1 if o == "accuracy" else 1) * r[o] for o in objectives] for r in rows])


@pytest.fixture(scope="module")
def records():
    X = SPACE.sample(150, 7)
    return measure(0, X, None)


def inner_config(name: str, objectives=("accuracy", "latency"), **inner):
    return config_from_dict({
        "objectives": list(objectives),
        "search": {"inner": {"algorithm": name, "evaluations": 1000, **inner, **INNER.get(name, {})},
                   "predictors": {"accuracy": {"name": "ridge"}, "latency": {"name": "ridge"},
                                  "macs": {"name": "ridge"}}},
    })


def quietly(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


# ---- both modes, every algorithm ------------------------------------------------------
@pytest.mark.parametrize("name", ALGORITHMS)
def test_validation_mode_improves_on_the_initial_population(name):
    # A validation search pays for every network it measures: the budget counts distinct ones.
    params = {"count_revisits": False} if "count_revisits" in algorithm_params(name) else {}
    config = config_from_dict({"search": {"mode": "validation", "algorithm": name, "population": 10,
                                          "evaluations": 60, "algorithm_params": params}})
    summary = run_validation(config, SPACE, measure, progress=False)
    hv = summary["hypervolume"]
    assert summary["evaluations"] == 60, summary["evaluations"]
    assert len(hv) >= 4 and hv[-1] > hv[0], hv


@pytest.mark.parametrize("name", ALGORITHMS)
def test_inner_loop_mode_improves_on_the_initial_population(name, records):
    config = inner_config(name)
    predictors = core.fit_predictors(config, SPACE, records)
    X, F = core.run_inner_search(config, SPACE, predictors, 3)
    assert X.dtype == np.int64 and (SPACE.canonicalize(X) == X).all()
    assert len(set(row_keys(X))) == len(X), "a searcher handed out the same network twice"
    first = config.search.inner.population or algorithm_params(name)["population"]
    initial, F_initial = X[:first], F[:first]
    assert len(initial) == first
    norm = Normalization.from_values(F_initial)
    assert hypervolume(F, norm) > hypervolume(F_initial, norm) + 0.01


# ---- objective counts --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["unsga3", "moead", "ctaea", "nsga2", "motpe"])
def test_three_objectives(name, records):
    config = inner_config(name, objectives=("accuracy", "latency", "macs"), evaluations=400)
    assert len(config.resolved_objectives()) == 3
    predictors = core.fit_predictors(config, SPACE, records)
    X, F = quietly(core.run_inner_search, config, SPACE, predictors, 1)
    first = config.search.inner.population or algorithm_params(name)["population"]
    assert F.shape[1] == 3 and len(X) > first
    norm = Normalization.from_values(F[:first])
    assert hypervolume(F, norm) > hypervolume(F[:first], norm)


@pytest.mark.parametrize("name", ["moead", "ctaea", "unsga3", "agemoea"])
def test_reference_direction_algorithms_reject_one_objective(name):
    with pytest.raises(ValueError, match=r"needs at least 2 objectives.*got 1"):
        build_searcher(name, SPACE, 1, 100, 0)


@pytest.mark.parametrize("name", ["nsga2", "nsga2_pymoo", "motpe", "random"])
def test_one_objective_works_where_it_makes_sense(name):
    budget = 40 if name == "motpe" else 120
    searcher = build_searcher(name, SPACE, 1, budget, 0, population=20)
    told = []
    while searcher.has_next():
        X = searcher.ask()
        if len(X) == 0:
            break
        told.append(minimization(X, ("accuracy",))[:, 0])
        searcher.tell(X, told[-1][:, None])
    values = np.concatenate(told)
    assert len(values) == budget
    if name != "random":  # a searcher that learns from what it is told improves on its first batch
        assert np.mean(values[-20:]) < np.mean(values[:20]), (values[:20].mean(), values[-20:].mean())


@pytest.mark.parametrize("name", ["nsga2", "nsga2_pymoo", "agemoea"])
def test_crowding_based_algorithms_warn_beyond_two_objectives(name):
    with pytest.warns(UserWarning, match="unsga3"):
        build_searcher(name, SPACE, 3, 100, 0)


def test_more_than_five_objectives_is_an_error():
    with pytest.raises(ValueError, match="1 to 5"):
        build_searcher("unsga3", SPACE, 6, 100, 0)


FIVE = ("accuracy", LATENCY, "macs", LATENCY, "macs")


def five_objectives(X: np.ndarray) -> np.ndarray:
    """A quality and four latency-like costs, each a different blend (four hardware targets)."""
    F = minimization(X, FIVE)
    return F + np.array([0, 0, 0, 0.3, 0.2]) * F[:, [0, 0, 0, 2, 1]]


@pytest.mark.parametrize("name", ["unsga3", "moead", "ctaea", "nsga2", "motpe", "random"])
def test_five_objectives(name):
    """A quality and four hardware targets: every multi-objective algorithm searches them."""
    budget, population = (60, 10) if name == "motpe" else (300, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nsga2's many-objective advice
        searcher = build_searcher(name, SPACE, 5, budget, 0, population=population) if name != "unsga3" \
            else build_searcher(name, SPACE, 5, budget, 0)
    told = 0
    while searcher.has_next():
        X = searcher.ask()
        if len(X) == 0:
            break
        assert np.array_equal(SPACE.canonicalize(X), X)
        searcher.tell(X, five_objectives(X))
        told += len(X)
    assert told > 2 * population  # generations beyond the first (MOEA/D stops on its own when it only revisits)


def test_five_objectives_have_shipped_reference_directions():
    from linas_lib.algos.refdirs import _shipped

    assert das_dennis_count(5) == 495  # 8 partitions: 20 would be 10,626
    for n in (10, 50, 495):
        R = _shipped(5, n)
        assert R is not None and R.shape == (n, 5) and np.allclose(R.sum(axis=1), 1) and (R >= 0).all()
        assert len(np.unique(R.round(6), axis=0)) == n


# ---- integer genes -------------------------------------------------------------------------
def _drive(searcher, rounds: int, n_obj: int = 2):
    for _ in range(rounds):
        if not searcher.has_next():
            break
        X = searcher.ask()
        if len(X) == 0:
            break
        assert X.dtype.kind == "i", X.dtype
        assert np.array_equal(SPACE.canonicalize(X), X)  # validates the range, and canonical
        searcher.tell(X, minimization(X, ("accuracy", LATENCY, "macs")[:n_obj]))


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_float_gene_leaves_ask(name, seed):
    rounds = 1 if name == "motpe" else 6
    _drive(build_searcher(name, SPACE, 2, 10_000, seed, population=10), rounds)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), population=st.integers(2, 40), crossover=st.floats(0, 1),
       mutation=st.floats(0, 1))
def test_nsga2_asks_only_valid_integer_encodings(seed, population, crossover, mutation):
    _drive(build_searcher("nsga2", SPACE, 2, 10_000, seed, population=population, crossover=crossover,
                          mutation=mutation), 5)


# ---- names and settings ----------------------------------------------------------------------
def test_unknown_algorithm_lists_the_available_names():
    with pytest.raises(UnknownNameError) as err:
        build_searcher("nsga9", SPACE, 2, 100, 0)
    for name in ALGORITHMS:
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="unknown algorithm 'nsga9'; available: .*nsga2"):
        config_from_dict({"search": {"algorithm": "nsga9"}})


def test_unknown_setting_lists_the_algorithm_settings():
    with pytest.raises(ValueError, match=r"no setting 'eta'.*population=50"):
        build_searcher("nsga2", SPACE, 2, 100, 0, eta=3)


def test_registry_has_the_paper_algorithms_and_defaults():
    assert {"nsga2", "nsga2_pymoo", "agemoea", "unsga3", "moead", "ctaea", "motpe", "random"} <= set(ALGORITHMS)
    for name in ("nsga2", "nsga2_pymoo", "agemoea", "unsga3"):
        p = algorithm_params(name)
        assert (p["population"], p["crossover"], p["mutation"]) == (50, 0.9, 0.02), name
    assert (algorithm_params("ctaea")["crossover"], algorithm_params("ctaea")["mutation"]) == (1.0, 0.05)
    assert (algorithm_params("moead")["n_neighbors"], algorithm_params("moead")["prob_neighbor_mating"]) == (20, 0.9)
    assert (algorithm_params("motpe")["prior_weight"], algorithm_params("motpe")["n_ei_candidates"]) == (1.0, 24)


# ---- the vectorized NSGA-II -------------------------------------------------------------------
def _trajectory(seed: int, name: str = "nsga2", budget: int = 1500):
    searcher = build_searcher(name, SPACE, 2, budget, seed)
    batches = []
    while searcher.has_next():
        X = searcher.ask()
        if len(X) == 0:
            break
        batches.append(X)
        searcher.tell(X, minimization(X))
    return np.vstack(batches), searcher


def test_vectorized_nsga2_is_deterministic_for_a_seed():
    a, sa = _trajectory(5)
    b, sb = _trajectory(5)
    c, _ = _trajectory(6)
    assert np.array_equal(a, b) and sa.generations == sb.generations
    assert np.array_equal(sa.X, sb.X) and np.array_equal(sa.F, sb.F)
    assert not np.array_equal(a[: len(c)], c[: len(a)])


def test_vectorized_nsga2_counts_generations_like_pymoo():
    _, searcher = _trajectory(0, budget=20_000)
    # 20,000 evaluations of a population of 50: ~400 generations (fewer offspring when duplicates run out)
    assert 400 <= searcher.generations + 1 <= 480
    assert searcher.spent >= 20_000 and searcher.revisits > 0
    assert len(searcher.X) == 50 and (searcher.rank[:-1] <= searcher.rank[1:]).all()


def test_crowding_distance_matches_pymoo():
    from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    pymoo_cd = get_crowding_function("cd")
    rng = np.random.default_rng(0)
    for trial in range(50):
        F = rng.integers(0, 4, (int(rng.integers(1, 40)), 2)).astype(float) if trial % 2 else rng.random((30, 3))
        fronts = NonDominatedSorting().do(F)
        order = np.concatenate(fronts)
        front_of = np.repeat(np.arange(len(fronts)), [len(f) for f in fronts])
        expected = np.concatenate([pymoo_cd.do(F[f], n_remove=0) for f in fronts])
        assert np.allclose(crowding_distance(F[order], front_of), expected)


# ---- the ask/tell contract -----------------------------------------------------------------------
def test_budget_counts_proposals_or_distinct_networks():
    _, counting = _trajectory(0, budget=3000)
    assert counting.spent >= 3000 and counting.revisits > 0
    searcher = build_searcher("nsga2", SPACE, 2, 600, 0, count_revisits=False)
    handed = []
    while searcher.has_next():
        X = searcher.ask()
        if len(X) == 0:
            break
        handed.append(X)
        searcher.tell(X, minimization(X))
    handed = np.vstack(handed)
    assert len(handed) == searcher.spent >= 600 and len(set(row_keys(handed))) == len(handed)


def test_ask_tell_order_is_enforced_and_a_partial_tell_ends_the_search():
    searcher = build_searcher("nsga2", SPACE, 2, 1000, 0)
    with pytest.raises(RuntimeError, match="last ask"):
        searcher.tell(np.zeros((1, SPACE.n_var), np.int64), np.zeros((1, 2)))
    X = searcher.ask()
    with pytest.raises(RuntimeError, match="before tell"):
        searcher.ask()
    with pytest.raises(ValueError, match="shape"):
        searcher.tell(X, np.zeros((len(X), 3)))
    searcher.tell(X[:5], minimization(X[:5]))  # the caller's budget ran out mid-batch
    assert not searcher.has_next()


def test_reference_directions_are_energy_sets_of_the_paper_sizes():
    assert [das_dennis_count(m) for m in (2, 3, 4)] == [21, 231, 1771]
    for m, n in ((2, 21), (3, 231), (4, 1771), (2, 10), (3, 50)):
        R = reference_directions(m, n)
        assert R.shape == (n, m) and np.allclose(R.sum(axis=1), 1) and (R >= 0).all()
        assert len(np.unique(R.round(6), axis=0)) == n
    with pytest.raises(ValueError, match="at least 2 objectives"):
        reference_directions(1, 10)
