"""Store faults: corrupt and truncated objects, missing runs, a full disk, a writer killed
mid-put, and unreachable or slow S3 endpoints. Each is a clear StoreError and loses no data."""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linas_lib.api.store import (
    MissingObjectError,
    StoreError,
    get_checked,
    get_json,
    get_table,
    put_checked,
    put_json,
    put_table,
)
from linas_lib.runs import RunStore
from linas_lib.stores.local import LocalStore
from linas_lib.stores.s3 import S3Store

ROOT = Path(__file__).resolve().parents[2]


# ---- corrupt and truncated objects ------------------------------------------------------------
def _table_bytes() -> bytes:
    buf = io.BytesIO()
    pd.DataFrame({"subnet_id": [f"s{i}" for i in range(50)], "accuracy": np.linspace(0, 1, 50)}).to_parquet(buf)
    return buf.getvalue()


TABLE = _table_bytes()


@settings(max_examples=15, deadline=None)
@given(st.integers(0, len(TABLE) - 1), st.booleans())
def test_truncated_table_is_a_store_error_with_or_without_digest(tmp_path_factory, cut, keep_digest):
    store = LocalStore(tmp_path_factory.mktemp("s"))
    put_checked(store, "m.parquet", TABLE)
    store.put_bytes("m.parquet", TABLE[:cut])  # behind the checksum's back
    if not keep_digest:
        store.delete("m.parquet.sha256")
    with pytest.raises(StoreError, match="m.parquet"):
        get_table(store, "m.parquet")


@settings(max_examples=15, deadline=None)
@given(st.integers(0, len(TABLE) * 8 - 1))
def test_any_bit_flip_is_detected(tmp_path_factory, bit):
    store = LocalStore(tmp_path_factory.mktemp("s"))
    put_checked(store, "m.parquet", TABLE)
    data = bytearray(TABLE)
    data[bit // 8] ^= 1 << (bit % 8)
    store.put_bytes("m.parquet", bytes(data))
    with pytest.raises(StoreError, match="m.parquet is corrupt"):
        get_table(store, "m.parquet")


def test_a_garbled_sidecar_reads_as_corrupt_not_as_a_crash(tmp_path):
    store = LocalStore(tmp_path)
    put_json(store, "a.json", {"x": 1})
    store.put_bytes("a.json.sha256", b"\xff\xfe not a digest")
    with pytest.raises(StoreError, match="corrupt"):
        get_json(store, "a.json")


# ---- a missing run directory -------------------------------------------------------------------
def test_reading_a_missing_run_is_an_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "no-such-run"
    run = RunStore(str(missing))
    with pytest.raises(MissingObjectError, match="no-such-run/summary.json does not exist"):
        run.load_summary()
    with pytest.raises(MissingObjectError):
        get_json(run.store, "config.json")
    assert not missing.exists()


# ---- a full disk --------------------------------------------------------------------------------
FULL_DISK = textwrap.dedent('''
    import json, os, resource, signal, sys
    from linas_lib.api.store import StoreError, put_checked
    from linas_lib.stores.local import LocalStore

    store = LocalStore(sys.argv[1])
    old = b"old-" * 1000
    store.put_bytes("plain.bin", old)
    put_checked(store, "checked.bin", old)
    # a file-size limit makes writes fail with EFBIG, as a full disk fails them with ENOSPC
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    out = {}
    for name, put in [("plain.bin", store.put_bytes), ("checked.bin", lambda k, d: put_checked(store, k, d)),
                      ("fresh/new.bin", store.put_bytes)]:
        try:
            put(name, b"new-" * 50_000)
            out[name] = None
        except StoreError as exc:
            out[name] = str(exc)
        except BaseException as exc:
            out[name] = "WRONG TYPE " + type(exc).__name__ + ": " + str(exc)
    print(json.dumps(out))
''')


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_object(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("plain.bin", "checked.bin", "fresh/new.bin"):
        message = errors[key]
        assert message is not None, f"{key}: the write beyond the limit succeeded"
        assert message.startswith(f"cannot write {tmp_path.resolve()}/{key}: the disk is full"), message
        assert "EFBIG" in message
    assert "previous object is unchanged" in errors["plain.bin"]
    assert "nothing was written" in errors["fresh/new.bin"]
    store = LocalStore(tmp_path)
    assert store.get_bytes("plain.bin") == b"old-" * 1000
    assert get_checked(store, "checked.bin") == b"old-" * 1000  # the sidecar still vouches for it
    assert not store.exists("fresh/new.bin")
    assert not [p for p in tmp_path.rglob(".tmp-*")], "temp files left behind"
    put_checked(store, "checked.bin", b"after")  # and the store keeps working
    assert get_checked(store, "checked.bin") == b"after"


def test_other_write_failures_are_store_errors(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("dir/a.bin", b"1")
    os.chmod(tmp_path / "dir", 0o500)
    try:
        if os.access(tmp_path / "dir", os.W_OK):  # root ignores permissions
            pytest.skip("running as root")
        with pytest.raises(StoreError, match="cannot write .*dir/a.bin.*previous object is unchanged"):
            store.put_bytes("dir/a.bin", b"2")
    finally:
        os.chmod(tmp_path / "dir", 0o700)
    assert store.get_bytes("dir/a.bin") == b"1"


# ---- a writer killed in the middle of put_checked -------------------------------------------------
class _Killed(BaseException):
    pass


class CrashAfter:
    """A store that dies (like kill -9) before its (n+1)-th write."""

    def __init__(self, store, n: int):
        self.inner, self.n, self.uri = store, n, store.uri

    def put_bytes(self, key, data):
        if self.n == 0:
            raise _Killed
        self.n -= 1
        self.inner.put_bytes(key, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _crash_put(store, key, data, n):
    try:
        put_checked(CrashAfter(store, n), key, data)
    except _Killed:
        pass


@pytest.mark.parametrize("first", range(4))
@pytest.mark.parametrize("second", range(4))
def test_put_checked_survives_a_kill_after_any_write(tmp_path, first, second):
    """Two interrupted overwrites in a row; the object always reads back whole."""
    store = LocalStore(tmp_path)
    v1, v2, v3, v4 = (json.dumps({"v": i, "pad": "x" * 100 * i}).encode() for i in range(1, 5))
    put_checked(store, "o.json", v1)
    _crash_put(store, "o.json", v2, first)
    assert get_checked(store, "o.json") in (v1, v2)
    _crash_put(store, "o.json", v3, second)
    assert get_checked(store, "o.json") == store.get_bytes("o.json") in (v1, v2, v3)
    # real corruption is still caught in the interrupted state
    good = store.get_bytes("o.json")
    store.put_bytes("o.json", good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(StoreError, match="corrupt"):
        get_checked(store, "o.json")
    store.put_bytes("o.json", good)
    put_checked(store, "o.json", v4)
    assert get_checked(store, "o.json") == v4
    assert store.get_bytes("o.json.sha256").split() == [hashlib.sha256(v4).hexdigest().encode()]


@pytest.mark.parametrize("n", range(3))
def test_first_put_of_a_key_survives_a_kill(tmp_path, n):
    store = LocalStore(tmp_path)
    store.put_bytes("legacy.json", b'{"unchecked": true}')  # an object written without a digest
    _crash_put(store, "legacy.json", b'{"new": 1}', n)
    assert json.loads(get_checked(store, "legacy.json")) in ({"unchecked": True}, {"new": 1})
    _crash_put(store, "fresh.json", b'{"new": 1}', n)
    if store.exists("fresh.json"):
        assert get_checked(store, "fresh.json") == b'{"new": 1}'


def _writer(root: str, gen: int, started: int) -> None:
    store = LocalStore(root)
    rng = random.Random(gen)
    i = 0
    while True:
        i += 1
        doc = {"gen": gen, "i": i, "pad": "p" * rng.randrange(0, 60_000)}
        put_checked(store, "obj.json", json.dumps(doc).encode())
        if i == 1:  # the parent's clock starts once this writer is really writing
            os.write(started, b"1")
            os.close(started)


def test_kill_9_at_random_points_never_breaks_the_object(tmp_path):
    """A real SIGKILL of a writer process at random moments, until the kills have landed at
    more than 5 distinct points (at most 200 kills); every time, the object must read whole.

    Each kill waits until the forked writer reports its first completed put, so on a loaded
    machine a kill cannot land before the writer ever ran."""
    store = LocalStore(tmp_path)
    put_checked(store, "obj.json", json.dumps({"gen": -1, "i": 0}).encode())
    rng = random.Random(1234)
    seen = set()
    for gen in range(200):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child writes until it is killed
            try:
                os.close(read_end)
                _writer(str(tmp_path), gen, write_end)
            finally:
                os._exit(1)
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], 60)
            assert ready and os.read(read_end, 1) == b"1", "the writer never started"
            time.sleep(rng.uniform(0.0, 0.03))
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
        doc = json.loads(get_checked(store, "obj.json"))  # raises if the kill broke it
        seen.add((doc["gen"], doc["i"]))
        if gen >= 39 and len(seen) > 5:
            break
    assert len(seen) > 5, f"200 kills landed at only {len(seen)} distinct points"
    assert store.list() == ["obj.json", "obj.json.sha256"]  # temp files of killed writers are hidden


# ---- S3: unreachable, slow, flaky ----------------------------------------------------------------
def test_unreachable_endpoint_retries_with_backoff_then_fails_clearly():
    from s3_server import free_port

    store = S3Store(f"127.0.0.1:{free_port()}", "bucket", secure=False, access_key="k", secret_key="s",
                    retries=3, backoff_s=0.05, timeout_s=0.5)
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        get_json(store, "summary.json")
    elapsed = time.monotonic() - start
    assert "failed after 4 attempts" in str(info.value) and "s3://bucket" in str(info.value)
    assert 0.05 + 0.1 + 0.2 <= elapsed < 10  # it did back off, and it did give up


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers: a hung S3 endpoint."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    conns, stop = [], threading.Event()

    def serve():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(sock.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for c in conns:
        c.close()
    sock.close()


def test_slow_endpoint_times_out_and_fails_clearly(silent_server):
    store = S3Store(silent_server, "bucket", secure=False, access_key="k", secret_key="s",
                    retries=1, backoff_s=0.01, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(StoreError, match="failed after 2 attempts") as info:
        store.put_bytes("x.json", b"{}")
    assert time.monotonic() - start < 10
    assert "Timeout" in str(info.value)


def test_an_invalid_bucket_name_is_not_retried_as_an_outage():
    store = S3Store("127.0.0.1:9", "b", secure=False, access_key="k", secret_key="s", retries=5, backoff_s=1)
    start = time.monotonic()
    with pytest.raises(StoreError, match="invalid bucket name"):
        store.get_bytes("x")
    assert time.monotonic() - start < 1


def test_a_transient_failure_is_retried(monkeypatch):
    store = S3Store("127.0.0.1:9", "bucket", secure=False, access_key="k", secret_key="s", retries=2, backoff_s=0.01)
    calls = []

    def flaky(bucket, key):
        calls.append(key)
        if len(calls) == 1:
            raise ConnectionResetError("peer reset")
        return object()

    monkeypatch.setattr(store._client, "stat_object", flaky)
    assert store.exists("k") is True and len(calls) == 2


@pytest.fixture(scope="module")
def moto_endpoint():
    from s3_server import moto_server

    with moto_server() as ep:
        yield ep


def test_put_checked_on_s3_survives_kills_too(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    store = S3Store(moto_endpoint, "faults", secure=False, retries=1, backoff_s=0.01, timeout_s=5)
    store.ensure_bucket()
    put_table(store, "m.parquet", pd.DataFrame({"a": [1, 2]}))
    for n in range(3):
        _crash_put(store, "m.parquet", TABLE, n)
        assert len(get_table(store, "m.parquet")) in (2, 50)
    store.put_bytes("m.parquet", TABLE[: len(TABLE) // 2])
    with pytest.raises(StoreError, match="m.parquet is corrupt"):
        get_table(store, "m.parquet")
