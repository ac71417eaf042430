"""Uniform random search over the space."""
from __future__ import annotations

import numpy as np

from linas_lib.algos import algorithm_registry


@algorithm_registry.register("random")
class RandomSearcher:
    def __init__(self, space, n_obj: int, budget: int, seed: int, population: int = 50):
        self.space, self.budget, self.population = space, budget, population
        self._rng = np.random.default_rng(seed)
        self._seen: set[str] = set()
        self._told = 0

    def ask(self) -> np.ndarray:
        n = min(self.population, self.budget - self._told)
        X = self.space.sample(n, self._rng, exclude=self._seen)
        self._seen.update(self.space.keys(X))
        return X

    def tell(self, encodings: np.ndarray, objectives: np.ndarray) -> None:
        self._told += len(encodings)

    def has_next(self) -> bool:
        return self._told < self.budget
