"""Store backends, chosen by URI scheme: a plain path or file:// is local."""
from __future__ import annotations

from urllib.parse import urlparse

from linas_lib.api.store import Store
from linas_lib.registry import Registry

store_registry: Registry = Registry("store scheme")


def open_store(uri: str) -> Store:
    from linas_lib.stores import local, s3  # noqa: F401  (register "file" and "s3")

    parsed = urlparse(uri)
    scheme = parsed.scheme if len(parsed.scheme) > 1 else "file"  # C:\ is not a scheme
    if scheme == "file":
        return store_registry.get("file")(parsed.path if parsed.scheme else uri)
    return store_registry.get(scheme).from_uri(uri)
