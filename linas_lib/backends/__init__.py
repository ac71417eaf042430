"""Latency backends, registered by name and chosen per hardware target."""
from __future__ import annotations

from typing import Any

from linas_lib.registry import Registry

backend_registry: Registry = Registry(
    "latency backend",
    group="linas.backends",
    builtins=(
        "linas_lib.backends.lut",
        "linas_lib.backends.onnxruntime_backend",
        "linas_lib.backends.openvino_backend",
        "linas_lib.backends.torch_backend",
        "linas_lib.backends.tabular",  # table look-ups of tabular benchmarks
    ),
)


def backend_class(name: str):
    return backend_registry.get(name)


def build_backend(name: str, **target: Any):
    return backend_class(name)(**target)


def backend_names() -> list[str]:
    return backend_registry.names()


def backend_image_role(name: str, device: str) -> str:
    """The container image (a role of `components.images`) a target of backend `name` on
    `device` is measured in: an attribute of the backend, `Backend.image_roles`."""
    roles = backend_class(name).image_roles
    if device not in roles:
        raise ValueError(f"latency backend {name} names no image for device {device!r}; "
                         f"it has images for: {', '.join(roles) or '(none)'}")
    return roles[device]
