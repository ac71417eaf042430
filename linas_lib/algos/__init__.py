"""Search algorithms behind the ask/tell `Searcher` protocol, registered by name.

A factory takes (space, n_obj, budget, seed, **params) and returns a Searcher; the
same searcher serves a validation-only search and the LINAS inner loop. Every gene
is an integer option index: operators that work on reals are followed by rounding
repair, and ask() returns canonical int64 encodings only, never a float gene, never
a network the searcher has already been told about (see `linas_lib.algos.base`).

Registered algorithms, defaults from Table 4 of the LINAS paper, and the objective
counts each suits (LINAS searches 1 to 5 objectives: a quality and up to four latency targets):

===========  =====================================================  ==============================
name         algorithm and defaults                                 objectives
===========  =====================================================  ==============================
nsga2        NSGA-II on numpy arrays (default), population 50,      1-2; 3-5 warn (crowding loses
             SBX 0.9 (eta 15), PM 0.02 per gene (eta 20)            pressure: the paper uses unsga3)
nsga2_pymoo  pymoo's Population-based NSGA-II, same settings        as nsga2
agemoea      pymoo AGE-MOEA, population 50, crossover 0.9,          2; 3-5 warn, as nsga2;
             mutation 0.02                                          1 rejected (ValueError)
unsga3       pymoo U-NSGA-III, population 50, crossover 0.9,        2-5; 1 rejected (ValueError)
             mutation 0.02, Riesz s-energy reference directions,
             as many as Das-Dennis with 20 partitions (21/231/1771;
             8 partitions, 495, for 5 objectives)
moead        pymoo MOEA/D (batched), 20 neighbours, neighbour       2-5; 1 rejected (ValueError)
             mating 0.9, population = energy directions (50)
ctaea        pymoo C-TAEA, crossover 1.0, mutation 0.05,            2-5; 1 rejected (ValueError)
             population = energy directions (50)
motpe        optuna multi-objective TPE, prior weight 1.0,          1-5
             24 EI candidates, batches of `population` (50)
random       uniform over genes, batches of `population` (50)       any
===========  =====================================================  ==============================

The reference-direction algorithms decompose the objective space, which needs at
least two objectives. `count_revisits` (evolutionary algorithms, default True)
decides whether proposals answered from the searcher's archive count toward the
budget: True keeps pymoo's evaluation count (20,000 inner evaluations = 400
generations); False makes `budget` the number of distinct networks handed out, which
is what a validation search that measures for real wants.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from linas_lib.registry import Registry

algorithm_registry: Registry[Callable[..., Any]] = Registry(
    "algorithm",
    group="linas.algorithms",
    builtins=("linas_lib.algos.motpe", "linas_lib.algos.nsga2", "linas_lib.algos.pymoo_algos",
              "linas_lib.algos.random_search"),
)

_FIXED = ("space", "n_obj", "budget", "seed")


def algorithm_params(name: str) -> dict[str, Any]:
    """The settings algorithm `name` takes, with their defaults."""
    factory = algorithm_registry.get(name)
    params = inspect.signature(factory).parameters
    return {k: p.default for k, p in params.items() if k not in _FIXED and p.kind is p.POSITIONAL_OR_KEYWORD}


def build_searcher(name: str, space, n_obj: int, budget: int, seed: int, **params: Any):
    factory = algorithm_registry.get(name)
    allowed = algorithm_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"algorithm {name!r} has no setting {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(f'{k}={v!r}' for k, v in allowed.items())}"
        )
    return factory(space, n_obj=n_obj, budget=budget, seed=seed, **params)


def algorithm_names() -> list[str]:
    return algorithm_registry.names()
