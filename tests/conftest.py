"""Shared fixtures: an isolated checkpoint cache and the smoke super-network, trained once."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

# One intra-op thread for torch, here and in kfp.local's task subprocesses: on a small,
# shared CI machine multi-threaded BLAS/OpenMP spins cost far more than they gain.
# Set before anything imports torch; an explicit OMP_NUM_THREADS wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No vendor telemetry from the tests or their subprocesses (see linas_lib/backends/telemetry.py).
os.environ.setdefault("NNCF_CI", "1")

import pytest

from linas_lib.backends.telemetry import disable_vendor_telemetry
from linas_lib.config import load_config

disable_vendor_telemetry()

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
SMOKE_YAML = CONFIGS / "smoke.yaml"
ANIMAL_YAML = CONFIGS / "animal_mnist.yaml"


@pytest.fixture(scope="session", autouse=True)
def linas_cache(tmp_path_factory) -> Path:
    """Point LINAS_CACHE at a per-session temp dir, so no test touches ~/.cache/linas."""
    cache = tmp_path_factory.mktemp("linas-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINAS_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def train_supernet(linas_cache):
    """`train_supernet(name, **params)`: the built-in plugin, trained into LINAS_CACHE on first
    use (reused for the same training recipe) and loaded."""
    from linas_lib.supernets import build_supernet

    def train(name: str, **params):
        plugin = build_supernet(name, **params)
        plugin.load(plugin.prepare(None, str(linas_cache)))
        return plugin

    return train


@pytest.fixture(scope="session")
def smoke_config():
    return load_config(SMOKE_YAML)


@pytest.fixture(scope="session")
def smoke_checkpoint(smoke_config, linas_cache) -> str:
    """The smoke super-network, trained once per session into LINAS_CACHE."""
    from linas_lib.supernets import prepare_checkpoint

    path = prepare_checkpoint(smoke_config.supernet, progress=False)
    assert Path(path).parent == linas_cache
    return path


@pytest.fixture(scope="session")
def smoke_supernet(smoke_config, smoke_checkpoint):
    from linas_lib.supernets import load_supernet

    return load_supernet(smoke_config.supernet, smoke_checkpoint, progress=False)


@contextlib.contextmanager
def plugins_restored():
    """Registered super-networks and loaded plugin files restored afterwards, one torch
    thread meanwhile: for tests that register plugins (other files check that a plugin's
    name is unknown without its file), on tiny ops that run fastest on one thread."""
    import torch

    from linas_lib import algos, backends, predictors, registry, supernets  # noqa: F401  (their registries)
    from linas_lib.search import selection  # noqa: F401
    from linas_lib.stores import open_store  # noqa: F401

    registries = list(registry.Registry.instances)
    for r in registries:
        r.names()  # the built-ins registered first: a restore must keep them
    entries = {id(r): dict(r._entries) for r in registries}
    loaded = dict(registry._loaded_files)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        for r in registries:
            r._entries.clear()
            r._entries.update(entries[id(r)])
        registry._loaded_files.clear()
        registry._loaded_files.update(loaded)
