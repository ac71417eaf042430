"""Super-network plugins, registered by name."""
from __future__ import annotations

from typing import Any

from linas_lib.registry import Registry

supernet_registry: Registry = Registry(
    "super-network",
    group="linas.supernets",
    builtins=(
        "linas_lib.supernets.elastic_cnn",
        "linas_lib.supernets.ncf",
        "linas_lib.supernets.transformer",
        "linas_lib.supernets.ofa",  # ofa_mbv3, ofa_resnet50
        "linas_lib.supernets.nasbench201",  # tabular NAS-Bench-201
    ),
)


def supernet_class(name: str):
    return supernet_registry.get(name)


def build_supernet(name: str, **params: Any):
    return supernet_class(name)(**params)


def supernet_names() -> list[str]:
    return supernet_registry.names()


def supernet_space(name: str, **params: Any):
    """The search space alone, without loading weights or torch-heavy state."""
    return supernet_class(name).search_space(**params)


def cache_dir() -> str:
    import os

    return os.environ.get("LINAS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "linas"))


def _build_from_config(supernet_config, progress: bool):
    import inspect

    cls = supernet_class(supernet_config.name)
    params = dict(supernet_config.params)
    if "progress" in inspect.signature(cls).parameters:  # plugins need not support it
        params.setdefault("progress", progress)
    return cls(**params)


def fetch_checkpoint(uri: str | None) -> str | None:
    """A local path for a checkpoint path or URI (file://, s3://BUCKET/KEY?endpoint=...).

    Remote checkpoints are downloaded once into the cache, named by their URI.
    """
    import hashlib
    import os
    from urllib.parse import urlparse, urlunparse

    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:
        return parsed.path if parsed.scheme == "file" else uri
    from linas_lib.stores import open_store

    folder, _, key = parsed.path.rpartition("/")
    local = os.path.join(cache_dir(), "checkpoints", hashlib.sha256(uri.encode()).hexdigest()[:16] + "-" + key)
    if not os.path.isfile(local):
        data = open_store(urlunparse(parsed._replace(path=folder))).get_bytes(key)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        tmp = local + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, local)
    return local


def prepare_checkpoint(supernet_config, progress: bool = True) -> str:
    """The checkpoint to use: the configured one, or the cached (trained once) built-in."""
    checkpoint = fetch_checkpoint(supernet_config.checkpoint)
    return _build_from_config(supernet_config, progress).prepare(checkpoint, cache_dir())


def load_supernet(supernet_config, checkpoint: str | None = None, progress: bool = True):
    supernet = _build_from_config(supernet_config, progress)
    local = fetch_checkpoint(checkpoint or supernet_config.checkpoint)
    supernet.load(local if checkpoint else supernet.prepare(local, cache_dir()))
    return supernet
