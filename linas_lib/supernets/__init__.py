"""Super-network plugins, registered by name."""
from __future__ import annotations

from typing import Any

from linas_lib.registry import Registry

supernet_registry: Registry = Registry("super-network")


def _load_builtins() -> None:
    from linas_lib.supernets import elastic_cnn  # noqa: F401


def supernet_class(name: str):
    _load_builtins()
    return supernet_registry.get(name)


def build_supernet(name: str, **params: Any):
    return supernet_class(name)(**params)


def supernet_names() -> list[str]:
    _load_builtins()
    return supernet_registry.names()


def supernet_space(name: str, **params: Any):
    """The search space alone, without loading weights or torch-heavy state."""
    return supernet_class(name).search_space(**params)


def cache_dir() -> str:
    import os

    return os.environ.get("LINAS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "linas"))


def prepare_checkpoint(supernet_config, progress: bool = True) -> str:
    """The checkpoint to use: the configured one, or the cached (trained once) built-in."""
    supernet = build_supernet(supernet_config.name, **{"progress": progress, **supernet_config.params})
    return supernet.prepare(supernet_config.checkpoint, cache_dir())


def load_supernet(supernet_config, checkpoint: str | None = None, progress: bool = True):
    supernet = build_supernet(supernet_config.name, **{"progress": progress, **supernet_config.params})
    supernet.load(checkpoint or supernet.prepare(supernet_config.checkpoint, cache_dir()))
    return supernet
