"""The optional parts of LINAS (extras of the `linas` package) and the error naming one.

The core (search, predictors, local stores, the in-process CLI) needs none of them;
`pip install 'linas[kubeflow,openvino,s3]'` (or the `dev` extra) installs them all.
"""
from __future__ import annotations

import importlib.util

EXTRAS = {  # extra -> the modules it provides (pyproject.toml lists the distributions)
    "kubeflow": ("kfp", "kfp.kubernetes", "kubernetes"),
    "openvino": ("openvino", "nncf"),
    "s3": ("minio",),
}


class MissingExtraError(ImportError):
    """Something that needs an extra that is not installed; the message says how to install it."""

    def __init__(self, what: str, extra: str, missing: list[str] | tuple[str, ...] = ()):
        detail = f" ({', '.join(missing)} not installed)" if missing else ""
        super().__init__(f"{what} needs the {extra} extra{detail}: pip install 'linas[{extra}]'")


def missing(*modules: str) -> list[str]:
    """Those of `modules` that cannot be imported here (found, not imported)."""
    def importable(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ImportError:  # its parent package is missing (kfp for kfp.kubernetes)
            return False

    return [m for m in modules if not importable(m)]


def require(extra: str, what: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise MissingExtraError unless the modules of `extra` (or just `modules`) are importable."""
    absent = missing(*(EXTRAS[extra] if modules is None else modules))
    if absent:
        raise MissingExtraError(what, extra, absent)
