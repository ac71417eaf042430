"""Super-network plugins, registered by name."""
from __future__ import annotations

from typing import Any

from linas_lib.registry import Registry

supernet_registry: Registry = Registry("super-network")


def _load_builtins() -> None:
    from linas_lib.supernets import elastic_cnn, ncf, transformer  # noqa: F401
    from linas_lib.supernets import ofa  # noqa: F401  (ofa_mbv3, ofa_resnet50)
    from linas_lib.supernets import nasbench201  # noqa: F401  (tabular NAS-Bench-201)


ENTRY_POINT_GROUP = "linas.supernets"
_entry_points_loaded = False


def _load_entry_points() -> None:
    """Import installed plugins (entry-point group `linas.supernets`) once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        plugin = ep.load()
        if ep.name not in supernet_registry and isinstance(plugin, type):
            supernet_registry.register(ep.name)(plugin)


_loaded_files: dict[str, Any] = {}


def load_plugin_file(path: str) -> None:
    """Execute a plugin file the user named in the config; it registers its plugins."""
    import importlib.util
    from pathlib import Path

    resolved = str(Path(path).expanduser().resolve())
    if resolved in _loaded_files:
        return
    if not Path(resolved).is_file():
        raise FileNotFoundError(f"supernet.plugin_file {path!r} does not exist")
    import sys

    name = f"linas_plugin_{len(_loaded_files)}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(spec)
    _loaded_files[resolved] = module
    # in sys.modules while it runs, as for any import: dataclasses and pickling look the module up there
    sys.modules[name] = module
    # its folder first on sys.path while it loads, as for a script: it can import the modules beside it
    folder = str(Path(resolved).parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception:
        del _loaded_files[resolved]
        sys.modules.pop(name, None)
        raise
    finally:
        if folder in sys.path:
            sys.path.remove(folder)


def _load_all() -> None:
    _load_builtins()
    _load_entry_points()


def supernet_class(name: str):
    _load_all()
    return supernet_registry.get(name)


def build_supernet(name: str, **params: Any):
    return supernet_class(name)(**params)


def supernet_names() -> list[str]:
    _load_all()
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
