"""pymoo algorithms on integer genes, driven through pymoo's own ask/tell.

Crossover and mutation work on reals and are rounded back (RoundingRepair), and
every candidate is canonicalized before it leaves the searcher, so a float gene
or a hidden-gene variant never reaches a predictor or a sub-network builder.
Duplicates are eliminated by hashing canonical encodings: cheaper than pymoo's
pairwise-distance default, and aware that two encodings can be one network.

Registered here (defaults from Table 4 of the LINAS paper):

=============  ============================================================  ==========
name           algorithm                                                     objectives
=============  ============================================================  ==========
nsga2_pymoo    pymoo NSGA2, population 50, crossover 0.9, mutation 0.02      1-2 (3-5 warn)
agemoea        pymoo AGEMOEA, population 50, crossover 0.9, mutation 0.02    2 (3-5 warn; 1 rejected)
unsga3         pymoo UNSGA3, population 50, crossover 0.9, mutation 0.02,    2-5
               Riesz s-energy directions, as many as Das-Dennis has for 20
               partitions (21, 231, 1771; 8 partitions, 495, for 5)
moead          pymoo MOEA/D (batched as pymoo's ParallelMOEAD), neighbours   2-5
               20, neighbour mating 0.9, population = energy directions (50)
ctaea          pymoo C-TAEA, crossover 1.0, mutation 0.05, population =      2-5
               energy directions (50)
=============  ============================================================  ==========

`mutation` is always the per-gene probability (PM's prob_var); every individual
goes through mutation (prob 1.0), as in pymoo's NSGA-II. The vectorized NSGA-II
registered as "nsga2" lives in `linas_lib.algos.nsga2`.
"""
from __future__ import annotations

import contextlib
import io
import time

import numpy as np
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.problems.static import StaticProblem

from linas_lib.algos import algorithm_registry
from linas_lib.algos.base import BatchSearcher, check_objectives, round_to_space, row_keys
from linas_lib.algos.refdirs import das_dennis_count, reference_directions

# pymoo re-mates up to 100 times to replace duplicate offspring; on a converged
# integer population that loop dominates the run, so cap it and accept a few fewer.
MATING_RETRIES = 5


class EncodingProblem(Problem):
    """Bounds only; objective values always come from outside through tell()."""

    def __init__(self, space, n_obj: int):
        super().__init__(n_var=space.n_var, n_obj=n_obj, xl=0, xu=space.upper, vtype=int)


class CanonicalDuplicateElimination(DuplicateElimination):
    """Two individuals are duplicates when their rounded, canonical encodings are equal."""

    def __init__(self, space):
        super().__init__()
        self.space = space
        self.seconds = 0.0

    def _keys(self, pop) -> list[bytes]:
        return row_keys(round_to_space(self.space, pop.get("X")))

    def _do(self, pop, other, is_duplicate):
        t0 = time.perf_counter()
        seen = set(self._keys(other)) if other is not None and len(other) else set()
        for i, key in enumerate(self._keys(pop)):
            if key in seen:
                is_duplicate[i] = True
            else:
                seen.add(key)
        self.seconds += time.perf_counter() - t0
        return is_duplicate


def integer_operators(space, crossover: float, mutation: float | None, eta_c: float = 15, eta_m: float = 20,
                      crossover_offsprings: int = 2) -> dict:
    """Operators shared by the genetic algorithms; `mutation` is the per-gene probability."""
    return dict(
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=crossover, eta=eta_c, n_offsprings=crossover_offsprings, vtype=float,
                      repair=RoundingRepair()),
        mutation=PM(prob=1.0, prob_var=mutation, eta=eta_m, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=CanonicalDuplicateElimination(space),
    )


class PymooSearcher(BatchSearcher):
    """A pymoo algorithm behind the Searcher protocol (archive and budget: see `BatchSearcher`)."""

    def __init__(self, space, algorithm, n_obj: int, budget: int, seed: int, count_revisits: bool = True):
        super().__init__(space, n_obj, budget, count_revisits=count_revisits)
        self.problem = EncodingProblem(space, n_obj)
        self.algorithm = algorithm
        mating = getattr(algorithm, "mating", None)
        if mating is not None and getattr(mating, "n_max_iterations", 0) > MATING_RETRIES:
            mating.n_max_iterations = MATING_RETRIES
        # The budget is ours (BatchSearcher.spent); pymoo only stops when it has nothing to mate.
        self.algorithm.setup(self.problem, termination=NoTermination(), seed=seed, verbose=False)
        self._infills = None
        self._elimination = next(
            (e for e in (getattr(algorithm, "eliminate_duplicates", None), getattr(mating, "eliminate_duplicates", None))
             if isinstance(e, CanonicalDuplicateElimination)), None)
        self._elimination_seconds = 0.0

    @property
    def generations(self) -> int:
        return int(self.algorithm.n_iter or 0)

    def _propose(self) -> np.ndarray:
        if not self.algorithm.has_next():
            return np.zeros((0, self.space.n_var), dtype=np.int64)
        infills = self.algorithm.ask()
        if infills is None or len(infills) == 0:
            return np.zeros((0, self.space.n_var), dtype=np.int64)
        X = round_to_space(self.space, infills.get("X"))
        infills.set("X", X)
        self._infills = infills
        self._sync_dedup_time()
        return X

    def _accept(self, X: np.ndarray, F: np.ndarray) -> None:
        infills, self._infills = self._infills, None
        self.algorithm.evaluator.eval(StaticProblem(self.problem, F=np.asarray(F, float)), infills)
        self.algorithm.tell(infills=infills)

    def _sync_dedup_time(self) -> None:
        if self._elimination is not None:
            self.dedup_seconds += self._elimination.seconds - self._elimination_seconds
            self._elimination_seconds = self._elimination.seconds


def _quiet(build):
    """Build a pymoo algorithm without its print()ed advice (e.g. NSGA-III's population warning)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


@algorithm_registry.register("nsga2_pymoo")
def nsga2_pymoo(space, n_obj, budget, seed, population: int = 50, crossover: float = 0.9, mutation: float = 0.02,
                count_revisits: bool = True):
    """pymoo's Population-based NSGA-II; "nsga2" is the same algorithm on plain arrays, several times faster."""
    from pymoo.algorithms.moo.nsga2 import NSGA2

    check_objectives("nsga2_pymoo", n_obj, warn_above=2)
    algorithm = NSGA2(pop_size=population, **integer_operators(space, crossover, mutation))
    # The classic crowded-comparison tournament (rank, then crowding), as "nsga2" uses.
    algorithm.tournament_type = "comp_by_rank_and_crowding"
    return PymooSearcher(space, algorithm, n_obj, budget, seed, count_revisits)


def _agemoea_module():
    """pymoo's AGE-MOEA module, importable without numba.

    pymoo refuses to import it unless numba is installed, only to jit three small
    helpers. Without numba, a stand-in whose `jit` returns the function unchanged
    is in sys.modules for the duration of the import alone; the helpers then run as
    numpy code (the hot one, `minkowski_distances`, is vectorized in `_AGESurvival`).
    """
    import importlib
    import sys
    import types

    name = "pymoo.algorithms.moo.age"
    if name in sys.modules:
        return sys.modules[name]
    try:
        import numba  # noqa: F401
    except ImportError:
        stub = types.ModuleType("numba")
        stub.jit = lambda *a, **k: (a[0] if a and callable(a[0]) and not k else (lambda f: f))
        stub.intp, stub.boolean, stub.float64 = np.intp, np.bool_, np.float64
        sys.modules["numba"] = stub
        try:
            return importlib.import_module(name)
        finally:
            if sys.modules.get("numba") is stub:
                del sys.modules["numba"]
    return importlib.import_module(name)


def _age_survival(age):
    class _AGESurvival(age.AGEMOEASurvival):
        @staticmethod
        def minkowski_distances(A, B, p):
            return (np.abs(A[:, None, :] - B[None, :, :]) ** p).sum(axis=2) ** (1 / p)

    return _AGESurvival()


@algorithm_registry.register("agemoea")
def agemoea(space, n_obj, budget, seed, population: int = 50, crossover: float = 0.9, mutation: float = 0.02,
            count_revisits: bool = True):
    check_objectives("agemoea", n_obj, min_obj=2, warn_above=2, why="it estimates the geometry of a front")
    age = _agemoea_module()
    algorithm = age.AGEMOEA(pop_size=population, **integer_operators(space, crossover, mutation))
    algorithm.survival = _age_survival(age)
    return PymooSearcher(space, algorithm, n_obj, budget, seed, count_revisits)


@algorithm_registry.register("unsga3")
def unsga3(space, n_obj, budget, seed, population: int = 50, crossover: float = 0.9, mutation: float = 0.02,
           partitions: int | None = None, count_revisits: bool = True):
    """U-NSGA-III; its niches are `das_dennis_count(n_obj, partitions)` Riesz s-energy directions
    (by default 20 partitions, 8 for five objectives)."""
    from pymoo.algorithms.moo.unsga3 import UNSGA3

    check_objectives("unsga3", n_obj, min_obj=2)
    ref_dirs = reference_directions(n_obj, das_dennis_count(n_obj, partitions))
    ops = integer_operators(space, crossover, mutation)
    algorithm = _quiet(lambda: UNSGA3(ref_dirs, pop_size=population, **ops))
    return PymooSearcher(space, algorithm, n_obj, budget, seed, count_revisits)


@algorithm_registry.register("moead")
def moead(space, n_obj, budget, seed, population: int = 50, n_neighbors: int = 20,
          prob_neighbor_mating: float = 0.9, crossover: float = 1.0, mutation: float | None = None,
          count_revisits: bool = True):
    """MOEA/D, one offspring per sub-problem per batch (pymoo's ParallelMOEAD).

    pymoo's MOEAD asks for a single individual at a time; the batched variant mates
    every sub-problem from the same population and then applies the replacements
    in turn, so one ask() is one generation, as a measurement batch needs.
    `population` is the number of energy directions (sub-problems); `mutation`
    None is pymoo's 1/n_var per gene.
    """
    from pymoo.algorithms.moo.moead import ParallelMOEAD

    check_objectives("moead", n_obj, min_obj=2)
    ops = integer_operators(space, crossover, mutation, eta_c=20, eta_m=20)
    ops.pop("eliminate_duplicates")  # MOEA/D keeps duplicates in its population; the archive absorbs them
    algorithm = ParallelMOEAD(reference_directions(n_obj, population), n_neighbors=min(n_neighbors, population),
                              prob_neighbor_mating=prob_neighbor_mating, **ops)
    return PymooSearcher(space, algorithm, n_obj, budget, seed, count_revisits)


@algorithm_registry.register("ctaea")
def ctaea(space, n_obj, budget, seed, population: int = 50, crossover: float = 1.0, mutation: float = 0.05,
          count_revisits: bool = True):
    """C-TAEA with its own SBX (one offspring per mating, eta 30); `population` energy directions."""
    from pymoo.algorithms.moo.ctaea import CTAEA

    check_objectives("ctaea", n_obj, min_obj=2)
    ops = integer_operators(space, crossover, mutation, eta_c=30, crossover_offsprings=1)
    algorithm = CTAEA(reference_directions(n_obj, population), **ops)
    return PymooSearcher(space, algorithm, n_obj, budget, seed, count_revisits)
