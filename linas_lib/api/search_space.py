"""Discrete, conditional search spaces over integer genes.

An *encoding* is a vector of option indices, one gene per design variable. A gene
may be conditional: a block hidden by its stage's depth does not exist, so its
kernel and expansion genes carry no meaning. `canonicalize` zeroes such genes so
that every network has exactly one encoding, which is what deduplication, the
measurement cache and the predictors' features rely on.

Aliases beyond hidden genes (several gene vectors that build the same network, e.g.
two orderings of commuting operations) are the plugin's knowledge: a plugin returns a
subclass from `search_space()` that overrides `canonicalize_valid` to map every alias
to one representative. Keys, "not yet measured", the evaluation cache and the
predictors' features then all see networks, not gene vectors.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from linas_lib.messages import short_repr


class InvalidEncodingError(ValueError):
    """An encoding that names no network of the space."""


@dataclass(frozen=True)
class ActiveWhen:
    """The gene exists only while `variable`'s option value is >= `at_least`."""

    variable: str
    at_least: float


@dataclass(frozen=True)
class Variable:
    name: str
    options: tuple[Any, ...]
    active_when: ActiveWhen | None = None

    def __post_init__(self) -> None:
        if len(self.options) == 0:
            raise ValueError(f"variable {self.name!r} has no options")


@dataclass
class SearchSpace:
    variables: Sequence[Variable]
    name: str = "space"
    _index: dict[str, int] = field(init=False, repr=False)
    _levels: list = field(init=False, repr=False)
    _cards: np.ndarray = field(init=False, repr=False)
    _upper: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.variables = tuple(self.variables)
        if not self.variables:
            raise ValueError("a search space needs at least one variable")
        self._index = {v.name: i for i, v in enumerate(self.variables)}
        if len(self._index) != len(self.variables):
            raise ValueError("variable names must be unique")
        # (gene, parent gene, on[option index of the parent]) per conditional gene:
        # a lookup table, so options may be listed in any order.
        conditions = []
        for i, var in enumerate(self.variables):
            if var.active_when is None:
                continue
            p = self._index.get(var.active_when.variable)
            if p is None or p >= i:
                raise ValueError(
                    f"variable {var.name!r}: condition must name an earlier variable, "
                    f"got {var.active_when.variable!r}"
                )
            options = np.asarray(self.variables[p].options, dtype=float)
            conditions.append((i, p, options >= var.active_when.at_least))
        self._levels = self._condition_levels(conditions)
        self._cards = np.array([len(v.options) for v in self.variables], dtype=np.int64)
        self._upper = self._cards - 1
        for fixed in (self._cards, self._upper):
            fixed.setflags(write=False)

    def _condition_levels(self, conditions: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The conditions grouped by nesting depth, each group one table lookup:
        (children, parents, on[condition, parent option], condition rows)."""
        depth = np.zeros(len(self.variables), dtype=np.int64)
        for i, p, _ in conditions:  # parents precede children
            depth[i] = depth[p] + 1
        levels = []
        for d in range(1, int(depth.max()) + 1):
            group = [(i, p, on) for i, p, on in conditions if depth[i] == d]
            on = np.zeros((len(group), max(len(o) for _, _, o in group)), dtype=bool)
            for row, (_, _, o) in enumerate(group):
                on[row, : len(o)] = o
            levels.append((np.array([i for i, _, _ in group]), np.array([p for _, p, _ in group]), on,
                           np.arange(len(group))))
        return levels

    def __deepcopy__(self, memo) -> "SearchSpace":
        # Fixed once built, so shared: scikit-learn deep-copies it with every predictor clone.
        return self

    # ---- shape -------------------------------------------------------------
    @property
    def n_var(self) -> int:
        return len(self.variables)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def cardinalities(self) -> np.ndarray:
        return self._cards  # read-only: computed once, asked on every validation

    @property
    def upper(self) -> np.ndarray:
        return self._upper

    # ---- validation --------------------------------------------------------
    def _gene_error(self, column: int, value: Any, problem: str) -> InvalidEncodingError:
        var = self.variables[column]
        if isinstance(value, np.generic):
            value = value.item()
        return InvalidEncodingError(
            f"gene {column} ({var.name!r}) {problem}, got {short_repr(value)}; allowed: option indices "
            f"0..{len(var.options) - 1} for options {short_repr(list(var.options), 200)}"
        )

    def validate(self, encodings: Any) -> np.ndarray:
        """Return encodings as an int matrix, or raise naming the bad gene and its allowed range.

        Accepted: integer genes, and floats with an integral value (as MOEAs hand them out).
        Refused with an InvalidEncodingError (a ValueError): a wrong number of genes, NaN or
        infinity, fractions, booleans, strings, ragged rows and indices out of range.
        """
        if isinstance(encodings, np.ndarray) and encodings.dtype.kind in "iu":
            arr = encodings  # the hot path: int matrices from this library
        elif isinstance(encodings, (str, bytes, dict, set)) or np.isscalar(encodings):
            raise InvalidEncodingError(
                f"an encoding of {self.name!r} is a list of {self.n_var} gene indices "
                f"({', '.join(self.names)}); got {short_repr(encodings)}"
            )
        elif isinstance(encodings, np.ndarray):
            arr = encodings
        else:
            # Lists keep their Python objects, so that [0, True] or [0, 'x'] is not silently cast
            # to ints or strings and the bad gene can be named.
            try:
                arr = np.array(encodings, dtype=object)
            except (ValueError, TypeError):
                raise InvalidEncodingError(
                    f"encodings of {self.name!r} must be rows of {self.n_var} gene indices "
                    f"({', '.join(self.names)}); got ragged or nested rows"
                ) from None
        shape = arr.shape
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_var:
            raise InvalidEncodingError(
                f"an encoding of {self.name!r} has {self.n_var} genes ({', '.join(self.names)}); "
                f"got shape {shape}"
            )
        if arr.dtype.kind not in "iu":
            arr = self._integral(arr)
        out_of_range = (arr < 0) | (arr > self.upper)
        if out_of_range.any():
            r, c = np.argwhere(out_of_range)[0]
            raise self._gene_error(int(c), arr[r, c], "is out of range")
        return arr.astype(np.int64, copy=False)

    def _integral(self, arr: np.ndarray) -> np.ndarray:
        """Integral floats (and ints in object arrays) as int64; anything else names its gene."""
        upper = self.upper
        if arr.dtype.kind == "f":
            whole = np.isfinite(arr) & (arr == np.round(arr))
            if not whole.all():
                r, c = np.argwhere(~whole)[0]
                raise self._gene_error(int(c), arr[r, c], "must be a finite integer option index")
            out_of_range = (arr < 0) | (arr > upper)  # before the cast, which is undefined beyond int64
            if out_of_range.any():
                r, c = np.argwhere(out_of_range)[0]
                raise self._gene_error(int(c), arr[r, c], "is out of range")
            return arr.astype(np.int64)
        if arr.dtype == object and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in arr.flat
        ):  # the usual list of ints: cast, and let the caller check the range
            try:
                return arr.astype(np.int64)
            except OverflowError:  # beyond int64: the loop below names the gene
                pass
        out = np.empty(arr.shape, dtype=np.int64)
        for (r, c), value in np.ndenumerate(arr):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
                raise self._gene_error(c, value, "must be an integer option index")
            if isinstance(value, (float, np.floating)) and not (np.isfinite(value) and value == round(value)):
                raise self._gene_error(c, value, "must be a finite integer option index")
            if not 0 <= value <= upper[c]:
                raise self._gene_error(c, value, "is out of range")
            out[r, c] = int(value)
        return out

    # ---- conditional genes -------------------------------------------------
    def active_mask(self, encodings: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(encodings)
        mask = np.ones(X.shape, dtype=bool)
        for children, parents, on, rows in self._levels:  # a level's parents are settled by the levels before
            mask[:, children] = mask[:, parents] & on[rows, X[:, parents]]
        return mask

    def canonicalize(self, encodings: Any) -> np.ndarray:
        return self.canonicalize_valid(self.validate(encodings))

    def canonicalize_valid(self, X: np.ndarray) -> np.ndarray:
        """Hot-path variant for an int matrix already known to be in range."""
        return np.where(self.active_mask(X), X, 0)

    # ---- identity ----------------------------------------------------------
    def key(self, encoding: Sequence[int]) -> str:
        """Stable sub-network id of an encoding (canonicalized first)."""
        canon = self.canonicalize(encoding)[0]
        return hashlib.sha1(json.dumps([int(g) for g in canon]).encode()).hexdigest()[:12]

    def keys(self, encodings: np.ndarray) -> list[str]:
        canon = self.canonicalize(encodings)
        return [hashlib.sha1(json.dumps(row.tolist()).encode()).hexdigest()[:12] for row in canon]

    def decode(self, encoding: Sequence[int]) -> dict[str, Any]:
        """Option values of the active genes."""
        canon = self.canonicalize(encoding)[0]
        active = self.active_mask(canon)[0]
        return {v.name: v.options[g] for v, g, a in zip(self.variables, canon, active) if a}

    # ---- sampling ----------------------------------------------------------
    def sample(
        self, n: int, rng: np.random.Generator | int | None = None, exclude: Iterable[str] = ()
    ) -> np.ndarray:
        """`n` distinct canonical encodings whose keys are not in `exclude`.

        Depth genes are drawn uniformly, so sampling is uniform over genes rather than
        over networks; that matches OFA's sampler and the paper's initial population.
        """
        rng = np.random.default_rng(rng)
        seen = set(exclude)
        rows: list[np.ndarray] = []
        attempts = 0
        while len(rows) < n:
            attempts += 1
            if attempts > 50:
                raise ValueError(f"could not sample {n} distinct unseen networks from {self.name!r}")
            X = self.canonicalize(rng.integers(0, self.cardinalities, size=(max(2 * n, 16), self.n_var)))
            for row, key in zip(X, self.keys(X)):
                if key not in seen:
                    seen.add(key)
                    rows.append(row)
                    if len(rows) == n:
                        break
        return np.array(rows, dtype=np.int64).reshape(n, self.n_var)

    # ---- size, enumeration and anchors ------------------------------------
    @property
    def n_encodings(self) -> float:
        """Gene vectors in the space (aliases counted separately), as a float: it may be astronomical."""
        return float(np.prod(self.cardinalities.astype(float)))

    def enumerate(self, limit: int) -> np.ndarray | None:
        """Every distinct canonical encoding, or None when there are more than `limit` gene vectors."""
        if self.n_encodings > limit:
            return None
        grids = np.meshgrid(*[np.arange(c) for c in self.cardinalities], indexing="ij")
        X = self.canonicalize_valid(np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int64))
        return np.unique(X, axis=0)

    @property
    def ordinal(self) -> bool:
        """Every gene's options are numbers listed in increasing order (depth, width, kernel...)."""
        for v in self.variables:
            if not all(isinstance(o, (int, float, np.integer, np.floating)) and not isinstance(o, bool)
                       for o in v.options):
                return False
            if list(v.options) != sorted(v.options):
                return False
        return True

    def anchors(self) -> np.ndarray:
        """The smallest and the largest network of an ordinal space (first and last option of
        every gene); none for a categorical space. LINAS measures them first: they span the
        trade-off and fix the hypervolume's bounds, identically for every seed."""
        if not self.ordinal:
            return np.zeros((0, self.n_var), dtype=np.int64)
        X = self.canonicalize_valid(np.vstack([np.zeros(self.n_var, np.int64), self.upper]))
        return X[[0, 1]] if self.keys(X[:1]) != self.keys(X[1:]) else X[:1]
