"""The super-network plugin protocol.

A plugin owns a search space and knows how to load its weights, score a batch of
sub-networks on its quality metric and hand out a static, exportable module for
latency measurement. Everything else (search, predictors, stores, pipelines) is
shared. Plugins register by name in `linas_lib.supernets.supernet_registry`, come
from an installed entry point (group ``linas.supernets``) or from a Python file
named in the config (``supernet.plugin_file``).

Construction: ``Plugin(**config.supernet.params)``; `__init__` must be cheap (no
weights, no data) because search-only stages build plugins just for their space.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from linas_lib.api.search_space import SearchSpace


@runtime_checkable
class SuperNetwork(Protocol):
    #: name of the quality column this plugin measures, e.g. "accuracy", "hr@10", "bleu"
    quality_metric: str
    space: SearchSpace
    # Optional (not checked by isinstance): `checkpoint_digest: str | None`, set by `load()`,
    # identifies the loaded weights: the sha256 of the checkpoint file, or a stable marker
    # of weights that no file holds (the OFA plugins' untrained networks:
    # "untrained:<net id>:classes<n>:seed<seed>"). Caches of measurements across runs key
    # on it; without it the framework hashes the checkpoint file itself.
    # Optional (not checked by isinstance either): `timing_module(encoding, batch_size)`, like
    # `export_module` with the same operators and shapes but weights only good for timing
    # (e.g. batch norm not recalibrated): what a float latency measures, cheaper; without
    # it, latency measures `export_module`. Quantized targets always use `export_module`.

    @classmethod
    def search_space(cls, **params: Any) -> SearchSpace:
        """The space alone, without building the network (used by search-only stages)."""

    def prepare(self, checkpoint: str | None, cache_dir: str) -> str:
        """Return a checkpoint path: the given one, or train/load the cached built-in one."""

    def load(self, checkpoint: str) -> None:
        """Load weights; raise a clear error when the file is missing or foreign.

        Sets the optional `checkpoint_digest` (see above) when the plugin has one."""

    def evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        """Quality metric plus `macs` and `params` for each encoding."""

    def export_module(self, encoding: np.ndarray, batch_size: int) -> tuple[Any, tuple[Any, ...]]:
        """A static torch module of the sub-network (eval mode) and example inputs of that batch size."""

    # Optional, for INT8 targets ------------------------------------------------
    def calibration_inputs(self, batch_size: int, n_batches: int) -> list[tuple[Any, ...]]:
        """Real input batches from the plugin's own data, for post-training quantization."""

    def evaluate_exported(self, encoding: np.ndarray, run: Callable[..., np.ndarray]) -> dict[str, float]:
        """The quality metric when the sub-network's forward pass is `run` (e.g. an INT8 model)."""


def complexity_columns(supernet: Any, encodings: np.ndarray) -> dict[str, np.ndarray]:
    """A plugin's `complexity` as {name: (n,) array}; it may return a dict of arrays or a list of dicts."""
    n = len(encodings)
    out = supernet.complexity(encodings)
    if isinstance(out, dict):
        return {k: np.asarray(v, dtype=float).reshape(n) for k, v in out.items()}
    rows = list(out)
    if len(rows) != n:
        raise ValueError(f"complexity returned {len(rows)} rows for {n} encodings")
    return {k: np.array([float(r[k]) for r in rows]) for k in (rows[0] if rows else {})}


def complexity_rows(supernet: Any, encodings: np.ndarray) -> list[dict[str, float]]:
    """A plugin's `complexity` as one dict per encoding."""
    columns = complexity_columns(supernet, encodings)
    return [{k: float(v[i]) for k, v in columns.items()} for i in range(len(encodings))]
