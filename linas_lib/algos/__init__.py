"""Search algorithms behind the ask/tell `Searcher` protocol, registered by name.

A factory takes (space, n_obj, budget, seed, **params) and returns a Searcher; the
same searcher serves a validation-only search and the LINAS inner loop.
"""
from __future__ import annotations

from typing import Any, Callable

from linas_lib.registry import Registry

algorithm_registry: Registry[Callable[..., Any]] = Registry("algorithm")


def _load_builtins() -> None:
    from linas_lib.algos import pymoo_algos, random_search  # noqa: F401


def build_searcher(name: str, space, n_obj: int, budget: int, seed: int, **params: Any):
    _load_builtins()
    return algorithm_registry.get(name)(space, n_obj=n_obj, budget=budget, seed=seed, **params)


def algorithm_names() -> list[str]:
    _load_builtins()
    return algorithm_registry.names()
