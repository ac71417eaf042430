"""pymoo algorithms on integer genes, driven through pymoo's own ask/tell.

Crossover and mutation work on reals and are rounded back (RoundingRepair), and
every candidate is canonicalized before it leaves the searcher, so a float gene
or a hidden-gene variant never reaches a predictor or a sub-network builder.
Duplicates are eliminated by hashing canonical encodings: cheaper than pymoo's
pairwise-distance default, and aware that two encodings can be one network.
"""
from __future__ import annotations

import numpy as np
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.problems.static import StaticProblem

from linas_lib.algos import algorithm_registry


MATING_RETRIES = 5


class EncodingProblem(Problem):
    """Bounds only; objective values always come from outside through tell()."""

    def __init__(self, space, n_obj: int):
        super().__init__(n_var=space.n_var, n_obj=n_obj, xl=0, xu=space.upper, vtype=int)


class CanonicalDuplicateElimination(DuplicateElimination):
    def __init__(self, space):
        super().__init__()
        self.space = space

    def _keys(self, pop) -> list[bytes]:
        X = np.clip(np.round(pop.get("X")), 0, self.space.upper).astype(np.int64)
        return [row.tobytes() for row in self.space.canonicalize_valid(X)]

    def _do(self, pop, other, is_duplicate):
        seen = set(self._keys(other)) if other is not None else set()
        for i, key in enumerate(self._keys(pop)):
            if key in seen:
                is_duplicate[i] = True
            else:
                seen.add(key)
        return is_duplicate


def integer_operators(space, crossover: float, mutation: float, eta_c: float = 15, eta_m: float = 20) -> dict:
    """Operators shared by the genetic algorithms; `mutation` is the per-gene probability."""
    return dict(
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=crossover, eta=eta_c, vtype=float, repair=RoundingRepair()),
        mutation=PM(prob=1.0, prob_var=mutation, eta=eta_m, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=CanonicalDuplicateElimination(space),
    )


class PymooSearcher:
    def __init__(self, space, algorithm, n_obj: int, budget: int, seed: int):
        self.space = space
        self.problem = EncodingProblem(space, n_obj)
        self.algorithm = algorithm
        self.algorithm.setup(self.problem, termination=("n_eval", budget), seed=seed, verbose=False)
        self._pending = None

    def ask(self) -> np.ndarray:
        self._pending = self.algorithm.ask()
        X = np.round(self._pending.get("X")).astype(np.int64)
        X = self.space.canonicalize(X)
        self._pending.set("X", X)
        return X

    def tell(self, encodings: np.ndarray, objectives: np.ndarray) -> None:
        if self._pending is None or len(encodings) != len(self._pending):
            raise RuntimeError("tell() must answer the batch returned by the last ask()")
        self.algorithm.evaluator.eval(StaticProblem(self.problem, F=np.asarray(objectives, float)), self._pending)
        self.algorithm.tell(infills=self._pending)
        self._pending = None

    def has_next(self) -> bool:
        return self.algorithm.has_next()


@algorithm_registry.register("nsga2")
def nsga2(space, n_obj, budget, seed, population: int = 50, crossover: float = 0.9, mutation: float = 0.02):
    from pymoo.algorithms.moo.nsga2 import NSGA2, binary_tournament
    from pymoo.core.mating import Mating
    from pymoo.operators.selection.tournament import TournamentSelection

    ops = integer_operators(space, crossover, mutation)
    # pymoo re-mates up to 100 times to replace duplicate offspring; on a converged
    # integer population that loop dominates the run, so cap it and accept a few fewer.
    mating = Mating(TournamentSelection(func_comp=binary_tournament), ops["crossover"], ops["mutation"],
                    eliminate_duplicates=ops["eliminate_duplicates"], n_max_iterations=MATING_RETRIES)
    algorithm = NSGA2(pop_size=population, mating=mating, **ops)
    return PymooSearcher(space, algorithm, n_obj, budget, seed)
