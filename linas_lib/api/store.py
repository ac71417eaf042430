"""The storage protocol: a flat key -> bytes namespace, like optuna's storages.

Backends (local directory, S3/MinIO) implement five byte-level calls; typed helpers
for JSON and tables live here once, on top of them. Keys use '/' separators.
"""
from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Protocol, runtime_checkable

import pandas as pd


class StoreError(RuntimeError):
    """A store object that is missing, corrupt or unreachable."""


class MissingObjectError(StoreError, FileNotFoundError):
    pass


@runtime_checkable
class Store(Protocol):
    uri: str

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write atomically: readers see the old object or the new one, never a mix."""

    def get_bytes(self, key: str) -> bytes:
        """Raise MissingObjectError when absent."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""

    def delete(self, key: str) -> None: ...


# Every object carries a digest so a truncated or corrupt object is detected on read.
_DIGEST_SUFFIX = ".sha256"


def put_checked(store: Store, key: str, data: bytes) -> None:
    store.put_bytes(key, data)
    store.put_bytes(key + _DIGEST_SUFFIX, hashlib.sha256(data).hexdigest().encode())


def get_checked(store: Store, key: str) -> bytes:
    data = store.get_bytes(key)
    if store.exists(key + _DIGEST_SUFFIX):
        expected = store.get_bytes(key + _DIGEST_SUFFIX).decode().strip()
        if hashlib.sha256(data).hexdigest() != expected:
            raise StoreError(f"{store.uri}/{key} is corrupt: its checksum does not match")
    return data


def put_json(store: Store, key: str, obj: Any) -> None:
    put_checked(store, key, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def get_json(store: Store, key: str) -> Any:
    data = get_checked(store, key)
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{store.uri}/{key} is not valid JSON: {exc}") from None


def put_table(store: Store, key: str, frame: pd.DataFrame) -> None:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    put_checked(store, key, buf.getvalue())


def get_table(store: Store, key: str) -> pd.DataFrame:
    data = get_checked(store, key)
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise StoreError(f"{store.uri}/{key} is not a readable table: {exc}") from None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialize {type(obj).__name__}")
