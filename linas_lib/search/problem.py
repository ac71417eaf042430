"""What the search knows about a super-network beyond its space: exact cheap values,
derived features and fixed hypervolume bounds.

Built once per config from the plugin class, whose `__init__` is cheap by contract
(no weights, no data). Nothing here is persisted: stages rebuild it from the config.

Plugin hooks, all optional (see docs/plugins.md):

* `complexity(encodings)` with `fast_complexity = True`: MACs and parameters computed
  exactly and quickly for a whole batch. Those objectives are then evaluated exactly
  in the inner search and never predicted. Without the flag (e.g. OFA, which builds a
  module per network) they are still measured for real but predicted in the search.
* `features(encodings) -> (n, k) array`: cheap derived features (depth, width, MACs...)
  that the predictors may use next to the encoding. With a fast `complexity` and no
  `features`, log MACs and log parameters serve.
* `objective_bounds(names) -> {name: (best, worst)}`: fixed normalization bounds for
  the hypervolume, e.g. a tabular benchmark's true front.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from linas_lib.api.objective import ColumnKey
from linas_lib.api.supernet import complexity_columns

COMPLEXITY = ("macs", "params")


@dataclass
class SearchProblem:
    """The plugin's cheap, exact knowledge, as plain callables over encodings."""

    plugin: Any = None
    fast_complexity: bool = False
    exact_names: tuple[str, ...] = ()  # objectives computed, never predicted
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    key: tuple = ()  # (plugin name, params): what the derived features depend on

    def exact(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Exact values of `exact_names` for a batch of encodings."""
        if not self.exact_names or len(X) == 0:
            return {k: np.zeros(len(X)) for k in self.exact_names}
        values = complexity_columns(self.plugin, np.asarray(X, dtype=np.int64))
        return {k: values[k] for k in self.exact_names}

    @property
    def has_features(self) -> bool:
        return hasattr(self.plugin, "features") or self.fast_complexity

    def derived_features(self, X: np.ndarray) -> np.ndarray:
        """(n, k) cheap features of each encoding: the plugin's own, else log MACs and log params."""
        X = np.ascontiguousarray(X, dtype=np.int64)
        memo = (self.key, X.shape, hashlib.sha1(X.data, usedforsecurity=False).digest()) if self.key else None
        if memo in _RECENT_DERIVED:
            _RECENT_DERIVED.move_to_end(memo)
            return _RECENT_DERIVED[memo].copy()
        if hasattr(self.plugin, "features"):
            D = np.asarray(self.plugin.features(X), dtype=float).reshape(len(X), -1)
        elif not self.fast_complexity:
            raise ValueError("this super-network offers no derived features (no features() and no fast complexity())")
        else:
            values = complexity_columns(self.plugin, X)
            D = np.column_stack([np.log1p(np.maximum(values[k], 0.0)) for k in COMPLEXITY if k in values])
        if memo is not None:
            _RECENT_DERIVED[memo] = D.copy()
            while len(_RECENT_DERIVED) > RECENT_DERIVED:
                _RECENT_DERIVED.popitem(last=False)
        return D


# The derived features of the last few batches, by content: every objective's predictor asks
# for the same batches (the table, then each generation), as clones, so with copies of the
# problem: the memo is the module's, keyed by the plugin. Enough entries for an ensemble's
# members, which ask for their own samples between one objective's table and the next's
# (an entry is the features alone: n x k floats).
RECENT_DERIVED = 32
_RECENT_DERIVED: OrderedDict = OrderedDict()


def _plugin(name: str, params_json: str):
    from linas_lib.supernets import build_supernet

    try:
        return build_supernet(name, **json.loads(params_json))
    except Exception:  # a plugin that cannot be constructed cheaply offers no hooks; validation names it elsewhere
        return None


@lru_cache(maxsize=16)
def _problem(name: str, params_json: str, objective_names: tuple[str, ...]) -> SearchProblem:
    plugin = _plugin(name, params_json)
    if plugin is None:
        return SearchProblem()
    fast = bool(getattr(plugin, "fast_complexity", False)) and hasattr(plugin, "complexity")
    exact = tuple(n for n in objective_names if n in COMPLEXITY) if fast else ()
    bounds: dict[str, tuple[float, float]] = {}
    if hasattr(plugin, "objective_bounds"):
        given = plugin.objective_bounds(list(objective_names)) or {}
        bounds = {k: (float(v[0]), float(v[1])) for k, v in given.items()}
    elif hasattr(plugin, "true_front"):
        bounds = _front_bounds(plugin, objective_names)
    return SearchProblem(plugin, fast, exact, bounds, key=(name, params_json))


def _front_bounds(plugin, names: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """(best, worst) of each objective over a true front given in natural units."""
    front = plugin.true_front(list(names))
    if front is None or len(front) == 0:
        return {}
    front = np.asarray(front, dtype=float)
    quality = getattr(plugin, "quality_metric", None)
    out = {}
    for i, name in enumerate(names):
        col = front[:, i]
        higher_is_better = quality is not None and ColumnKey.parse(name).kind == quality
        out[name] = (col.max(), col.min()) if higher_is_better else (col.min(), col.max())
    return out


def search_problem(config, space=None) -> SearchProblem:
    """The config's super-network as the search sees it (cached per process). Given the
    `space` searched, the plugin's hooks serve only if it is the plugin's own space."""
    names = tuple(o.name for o in config.resolved_objectives())
    problem = _problem(config.supernet.name, json.dumps(config.supernet.params, sort_keys=True, default=str), names)
    own = getattr(problem.plugin, "space", None)
    if space is not None and own is not None and list(own.names) != list(space.names):
        return SearchProblem()
    return problem
