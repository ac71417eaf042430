"""The super-network plugin protocol.

A plugin owns a search space and knows how to load its weights, score a batch of
sub-networks on its quality metric and hand out a static, exportable module for
latency measurement. Everything else (search, predictors, stores, pipelines) is
shared. Plugins register by name in `linas_lib.supernets.supernet_registry`.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from linas_lib.api.search_space import SearchSpace


@runtime_checkable
class SuperNetwork(Protocol):
    #: name of the quality column this plugin measures, e.g. "accuracy"
    quality_metric: str
    space: SearchSpace

    def prepare(self, checkpoint: str | None, cache_dir: str) -> str:
        """Return a checkpoint path: the given one, or train/load the cached built-in one."""

    def load(self, checkpoint: str) -> None:
        """Load weights; raise a clear error when the file is missing or foreign."""

    def evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        """Quality metric plus `macs` and `params` for each encoding."""

    def export_module(self, encoding: np.ndarray, batch_size: int) -> tuple[Any, tuple[Any, ...]]:
        """A static torch module of the sub-network and example inputs of that batch size."""
