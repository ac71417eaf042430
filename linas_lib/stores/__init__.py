"""Store backends, chosen by URI scheme: a plain path or file:// is local."""
from __future__ import annotations

from urllib.parse import urlparse

from linas_lib.api.store import Store
from linas_lib.registry import Registry

store_registry: Registry = Registry(
    "store scheme", group="linas.stores", builtins=("linas_lib.stores.local", "linas_lib.stores.s3")
)


def open_store(uri: str) -> Store:
    parsed = urlparse(uri)
    scheme = parsed.scheme if len(parsed.scheme) > 1 else "file"  # C:\ is not a scheme
    if scheme == "file":
        return store_registry.get("file")(parsed.path if parsed.scheme else uri)
    return store_registry.get(scheme).from_uri(uri)
