"""The storage protocol: a flat key -> bytes namespace, like optuna's storages.

Backends (local directory, S3/MinIO) implement five byte-level calls; typed helpers
for JSON and tables live here once, on top of them. Keys use '/' separators.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
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
#
# Crash safety: the object and its sidecar are two writes, and a process killed between
# them must not leave a good object that reads as corrupt. So `put_checked` writes
#   1. the sidecar listing the new digest *and* the digest(s) valid for the current object,
#   2. the object,
#   3. the sidecar with the new digest alone.
# Each write is atomic, so a kill at any point leaves an object whose digest the sidecar
# lists: the old object (before 2) or the new one (after 2). A reader accepts any listed
# digest; bit flips and truncation match none of them and are still reported as corrupt.
# (The first put of a key writes the object, then its sidecar: until the sidecar exists
# the object reads unchecked, as objects written by `put_bytes` alone always do.)
_DIGEST_SUFFIX = ".sha256"
_READ_ATTEMPTS = 3  # a reader racing a writer may see a new object with the old sidecar: re-read


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sidecar_digests(store: Store, key: str) -> list[str] | None:
    """The digests the sidecar of `key` lists; None when there is no sidecar."""
    try:
        text = store.get_bytes(key + _DIGEST_SUFFIX).decode("ascii", errors="replace")
    except MissingObjectError:
        return None
    return text.split()


def put_checked(store: Store, key: str, data: bytes) -> None:
    new, sidecar = _digest(data), key + _DIGEST_SUFFIX
    listed = _sidecar_digests(store, key)
    if listed is None:
        # No sidecar: whatever is there reads unchecked, and so does the new object until
        # its sidecar lands; a kill in between leaves a whole object either way.
        store.put_bytes(key, data)
        store.put_bytes(sidecar, new.encode())
        return
    valid = listed
    if len(listed) > 1:
        # An earlier put was interrupted: keep only the digest of the object there now.
        try:
            current: str | None = _digest(store.get_bytes(key))
        except MissingObjectError:
            current = None
        valid = [current] if current in listed else []
    first = [new] + [d for d in valid if d != new]
    if first != listed:
        store.put_bytes(sidecar, " ".join(first).encode())
    store.put_bytes(key, data)
    if len(first) > 1:
        store.put_bytes(sidecar, new.encode())


def get_checked(store: Store, key: str) -> bytes:
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            time.sleep(0.05 * attempt)
        data = store.get_bytes(key)
        valid = _sidecar_digests(store, key)
        if valid is None or _digest(data) in valid:
            return data
    raise StoreError(f"{store.uri}/{key} is corrupt: its checksum does not match")


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
