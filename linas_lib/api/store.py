"""The storage protocol: a flat key -> bytes namespace, like optuna's storages.

Backends (local directory, S3/MinIO) implement five byte-level calls; typed helpers
for JSON and tables live here once, on top of them. Keys use '/' separators.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pandas is imported by the table helpers: a config check or `linas --help` never needs it
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
# Integrity: with LINAS_INTEGRITY_KEY set (from a Kubernetes Secret of its own, not the
# store's credentials), the sidecar holds HMAC-SHA256 tags over the object's key and bytes
# instead of plain digests, and a reader with the key accepts nothing else: an object that
# someone with write access to the bucket but without the key wrote, altered or moved to
# another key is refused. Without a key a sidecar is a plain sha256 that anyone who can
# write the object can rewrite too: it catches corruption, not tampering.
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
# the object reads unchecked, as objects written by `put_bytes` alone always do. With a
# key nothing reads unchecked, so the first put writes the sidecar first: a kill in
# between leaves no object rather than an unsigned one.)
_DIGEST_SUFFIX = ".sha256"
_READ_ATTEMPTS = 3  # a reader racing a writer may see a new object with the old sidecar: re-read
INTEGRITY_KEY_ENV = "LINAS_INTEGRITY_KEY"
_HMAC_PREFIX = "hmac-sha256:"
_MIN_KEY_BYTES = 16


class IntegrityError(StoreError):
    """An object that is not signed with the integrity key, or whose signature does not match."""


def integrity_key() -> bytes | None:
    """The HMAC key from LINAS_INTEGRITY_KEY; None when unset (plain digests)."""
    value = os.environ.get(INTEGRITY_KEY_ENV)
    if not value:
        return None
    key = value.encode()
    if len(key) < _MIN_KEY_BYTES:  # never echo it
        raise StoreError(f"{INTEGRITY_KEY_ENV} is too short ({len(key)} bytes): use at least {_MIN_KEY_BYTES} "
                         "random bytes, e.g. `openssl rand -hex 32`")
    return key


def _digest(data: bytes, key: bytes | None = None, name: str = "") -> str:
    if key is None:
        return hashlib.sha256(data).hexdigest()
    # the object's key is signed too, so a signed object moved to another key does not verify
    mac = hmac.new(key, name.encode() + b"\0", hashlib.sha256)
    mac.update(data)
    return _HMAC_PREFIX + mac.hexdigest()


def _sidecar_digests(store: Store, key: str) -> list[str] | None:
    """The digests the sidecar of `key` lists; None when there is no sidecar."""
    try:
        text = store.get_bytes(key + _DIGEST_SUFFIX).decode("ascii", errors="replace")
    except MissingObjectError:
        return None
    return text.split()


def put_checked(store: Store, key: str, data: bytes) -> None:
    secret = integrity_key()
    new, sidecar = _digest(data, secret, key), key + _DIGEST_SUFFIX
    listed = _sidecar_digests(store, key)
    if listed is None:
        if secret is not None:
            store.put_bytes(sidecar, new.encode())
            store.put_bytes(key, data)
            return
        # No sidecar: whatever is there reads unchecked, and so does the new object until
        # its sidecar lands; a kill in between leaves a whole object either way.
        store.put_bytes(key, data)
        store.put_bytes(sidecar, new.encode())
        return
    valid = listed
    if len(listed) > 1:
        # An earlier put was interrupted: keep only the digest of the object there now.
        try:
            current: str | None = _digest(store.get_bytes(key), secret, key)
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
    secret = integrity_key()
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            time.sleep(0.05 * attempt)
        data = store.get_bytes(key)
        valid = _sidecar_digests(store, key)
        if secret is not None:
            if not any(d.startswith(_HMAC_PREFIX) for d in valid or ()):
                raise IntegrityError(f"{store.uri}/{key} is not signed: {INTEGRITY_KEY_ENV} is set and the object "
                                     "has no HMAC (written without the key, or by someone who does not hold it)")
            mine = _digest(data, secret, key)
            if any(hmac.compare_digest(mine, d) for d in valid):
                return data
            continue
        if valid is not None and valid and all(d.startswith(_HMAC_PREFIX) for d in valid):
            raise IntegrityError(f"{store.uri}/{key} is signed with an integrity key: set {INTEGRITY_KEY_ENV} "
                                 "(the Secret's key) to read it")
        if valid is None or _digest(data) in valid:
            return data
    if secret is not None:
        raise IntegrityError(f"{store.uri}/{key} fails its integrity check: its HMAC does not match (altered, "
                             f"corrupt, moved from another key, or signed with another {INTEGRITY_KEY_ENV})")
    raise StoreError(f"{store.uri}/{key} is corrupt: its checksum does not match")


def put_json(store: Store, key: str, obj: Any) -> None:
    # In the order the document was built, not sorted: an architecture's genes then read in
    # the search space's order (s0.depth before s0.b0.kernel, layer2 before layer10).
    put_checked(store, key, json.dumps(obj, indent=2, default=_json_default).encode())


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
    import pandas as pd

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
