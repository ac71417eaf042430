"""Animal-MNIST: 10,000 28x28 animal silhouettes in 10 balanced classes (MIT).

The `animal-mnist` wheel ships the data as gzip pickles of numpy arrays; its own
loader imports TensorFlow, so we read the files directly. Labels are stored sorted
by class, hence the seeded shuffle before splitting.
"""
from __future__ import annotations

import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_CLASSES = 10


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, (n, 1, 28, 28), standardized
    y: np.ndarray  # int64, (n,)


def _data_dir() -> Path:
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the animal-mnist wheel is not installed; run `pip install --no-deps animal-mnist==0.4` "
            "(make setup does this)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"


def load_splits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    folder = _data_dir()
    with gzip.open(folder / "animal_data_version_3.gz", "rb") as fh:
        images = np.asarray(pickle.load(fh), dtype=np.float32)  # trusted: shipped in an installed wheel
    with gzip.open(folder / "animal_label_version_3.gz", "rb") as fh:
        labels = np.asarray(pickle.load(fh), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    images, labels = images[order] / 255.0, labels[order]
    n_test = int(round(len(labels) * test_fraction))
    train_x, test_x = images[n_test:], images[:n_test]
    mean, std = float(train_x.mean()), float(train_x.std())
    standardize = lambda x: ((x - mean) / std)[:, None, :, :].astype(np.float32)  # noqa: E731
    return Split(standardize(train_x), labels[n_test:]), Split(standardize(test_x), labels[:n_test])
