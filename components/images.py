"""Container images the components run in, chosen by role.

Override at compile time with LINAS_IMAGE_REGISTRY and LINAS_IMAGE_TAG (for all)
or LINAS_IMAGE_<ROLE> (one role, full reference).
"""
from __future__ import annotations

import os

ROLES = ("base", "cuda", "openvino")


def image(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown image role {role!r}; allowed: {', '.join(ROLES)}")
    explicit = os.environ.get(f"LINAS_IMAGE_{role.upper()}")
    if explicit:
        return explicit
    registry = os.environ.get("LINAS_IMAGE_REGISTRY", "ghcr.io/linas-kubeflow")
    tag = os.environ.get("LINAS_IMAGE_TAG", "0.1.0")
    return f"{registry}/linas-{role}:{tag}"
