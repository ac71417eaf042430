"""Latency backends, registered by name and chosen per hardware target."""
from __future__ import annotations

from typing import Any

from linas_lib.registry import Registry

backend_registry: Registry = Registry("latency backend")


def _load_builtins() -> None:
    from linas_lib.backends import lut, onnxruntime_backend, openvino_backend, torch_backend  # noqa: F401
    from linas_lib.backends import tabular  # noqa: F401  (table look-ups of tabular benchmarks)


def backend_class(name: str):
    _load_builtins()
    return backend_registry.get(name)


def build_backend(name: str, **target: Any):
    return backend_class(name)(**target)


def backend_names() -> list[str]:
    _load_builtins()
    return backend_registry.names()
