"""Integrity of stored objects in a shared bucket: with LINAS_INTEGRITY_KEY every object is
HMAC-signed and verified on read, so a writer without the key can neither plant, alter nor
move an object; without a key the sha256 sidecar catches corruption only."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from linas_lib.api.store import (
    INTEGRITY_KEY_ENV,
    IntegrityError,
    StoreError,
    get_checked,
    get_json,
    put_checked,
    put_json,
)
from linas_lib.cache import EvaluationCache
from linas_lib.stores.local import LocalStore

KEY = "k" * 16 + "-linas-test-integrity-key"


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv(INTEGRITY_KEY_ENV, KEY)


def _attacker_writes(store, key: str, data: bytes, monkeypatch, with_key: str | None = None) -> None:
    """What someone with the bucket's credentials but not the integrity key can do."""
    with monkeypatch.context() as m:
        if with_key:
            m.setenv(INTEGRITY_KEY_ENV, with_key)
        else:
            m.delenv(INTEGRITY_KEY_ENV, raising=False)
        put_checked(store, key, data)


def test_signed_objects_round_trip_and_carry_an_hmac(tmp_path, keyed):
    store = LocalStore(tmp_path)
    put_json(store, "a.json", {"x": 1})
    put_json(store, "a.json", {"x": 2})  # an overwrite too
    assert get_json(store, "a.json") == {"x": 2}
    tags = store.get_bytes("a.json.sha256").decode().split()
    assert len(tags) == 1 and tags[0].startswith("hmac-sha256:")


def test_an_object_rewritten_without_the_key_is_refused(tmp_path, keyed, monkeypatch):
    store = LocalStore(tmp_path)
    put_json(store, "summary.json", {"hypervolume": 0.5})
    _attacker_writes(store, "summary.json", b'{"hypervolume": 0.99}', monkeypatch)  # fresh plain sha256 sidecar
    with pytest.raises(IntegrityError, match="summary.json is not signed"):
        get_json(store, "summary.json")


@pytest.mark.parametrize("how", ["no sidecar", "bytes changed", "wrong key", "moved"])
def test_planted_altered_or_moved_objects_are_refused(tmp_path, keyed, monkeypatch, how):
    store = LocalStore(tmp_path)
    put_json(store, "a.json", {"v": "genuine a"})
    put_json(store, "b.json", {"v": "genuine b"})
    if how == "no sidecar":
        store.put_bytes("planted.json", b'{"v": "evil"}')
        key, match = "planted.json", "is not signed"
    elif how == "bytes changed":
        store.put_bytes("a.json", b'{"v": "evil"}')
        key, match = "a.json", "fails its integrity check"
    elif how == "wrong key":
        _attacker_writes(store, "a.json", b'{"v": "evil"}', monkeypatch, with_key="another-key-of-16-bytes")
        key, match = "a.json", "fails its integrity check"
    else:  # a genuinely signed object copied over another key, sidecar and all
        store.put_bytes("b.json", store.get_bytes("a.json"))
        store.put_bytes("b.json.sha256", store.get_bytes("a.json.sha256"))
        key, match = "b.json", "fails its integrity check"
    with pytest.raises(IntegrityError, match=match) as info:
        get_checked(store, key)
    assert KEY not in str(info.value)


def test_without_a_key_a_signed_object_asks_for_it_and_plain_digests_stay_as_before(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    monkeypatch.setenv(INTEGRITY_KEY_ENV, KEY)
    put_json(store, "signed.json", {"x": 1})
    monkeypatch.delenv(INTEGRITY_KEY_ENV)
    with pytest.raises(IntegrityError, match=f"signed with an integrity key: set {INTEGRITY_KEY_ENV}"):
        get_json(store, "signed.json")
    put_json(store, "plain.json", {"x": 2})
    assert get_json(store, "plain.json") == {"x": 2}
    assert len(store.get_bytes("plain.json.sha256").decode()) == 64


def test_a_short_key_is_refused_without_echoing_it(tmp_path, monkeypatch):
    monkeypatch.setenv(INTEGRITY_KEY_ENV, "tiny-secret")
    with pytest.raises(StoreError, match="too short") as info:
        put_json(LocalStore(tmp_path), "a.json", {})
    assert "tiny-secret" not in str(info.value)


class _Killed(BaseException):
    pass


class _CrashAfter:
    def __init__(self, store, n: int):
        self.inner, self.n, self.uri = store, n, store.uri

    def put_bytes(self, key, data):
        if self.n == 0:
            raise _Killed
        self.n -= 1
        self.inner.put_bytes(key, data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("n", range(4))
def test_signed_puts_survive_a_kill_after_any_write(tmp_path, keyed, n):
    store = LocalStore(tmp_path)
    v1, v2, v3 = b'{"v": 1}', b'{"v": 2, "pad": "xx"}', b'{"v": 3}'
    for key in ("fresh.json", "over.json"):
        if key == "over.json":
            put_checked(store, key, v1)
        try:
            put_checked(_CrashAfter(store, n), key, v2)
        except _Killed:
            pass
        if store.exists(key):  # a first put killed early leaves no object, never an unsigned one
            assert get_checked(store, key) in (v1, v2)
        put_checked(store, key, v3)
        assert get_checked(store, key) == v3


def test_a_planted_cache_entry_is_a_miss(tmp_path, keyed, monkeypatch):
    """The shared evaluation cache cannot be poisoned by a writer without the key."""
    cache = EvaluationCache(LocalStore(tmp_path), "tenant/ns")
    cache.record("quality-accuracy", "good", {"subnet_id": "good", "values": {"accuracy": 0.5}})
    with monkeypatch.context() as m:
        m.delenv(INTEGRITY_KEY_ENV)
        put_json(cache.store, "tenant/ns/quality-accuracy/evil.json",
                 {"measured_at": 1e12, "subnet_id": "evil", "values": {"accuracy": 0.999}})
    found = cache.lookup("quality-accuracy", ["good", "evil"])
    assert set(found) == {"good"} and found["good"]["values"] == {"accuracy": 0.5}


def test_a_run_resumes_past_a_planted_measurement_table(tmp_path, keyed, monkeypatch):
    """A tampered table gives way to the newest signed snapshot, as a corrupt one does."""
    import pandas as pd

    from linas_lib.runs import RunStore

    run = RunStore(str(tmp_path))
    frame = pd.DataFrame({"iteration": [0, 0], "subnet_id": ["a", "b"], "status": ["ok", "ok"]})
    run.save_measurements(frame)
    with monkeypatch.context() as m:
        m.delenv(INTEGRITY_KEY_ENV)
        run.save_measurements(frame.assign(subnet_id=["x", "y"]))  # overwrites table and snapshot, unsigned
    with pytest.raises(IntegrityError):
        run.load_measurements()
    assert run.load_measurements(recover=True).empty  # nothing signed is left: resume from the cache alone


def test_compiled_pipeline_injects_the_integrity_key_from_its_own_secret(tmp_path, monkeypatch):
    from linas_lib.config import config_from_dict
    from pipelines.linas_pipeline import compile_pipeline

    monkeypatch.setenv(INTEGRITY_KEY_ENV, KEY)  # the compiling machine's key must not leak into the package
    config = config_from_dict({
        "name": "sig", "search": {"population": 4, "evaluations": 8}, "store": "s3://linas/runs/sig",
        "cluster": {"store_secret": "team-store", "integrity_secret": "team-integrity", "s3_endpoint": "minio:9000"},
    })
    text = Path(compile_pipeline(config, str(tmp_path / "p.yaml"))).read_text()
    assert KEY not in text
    found = []
    for doc in yaml.safe_load_all(text):
        for executor in ((doc or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
                         .get("executors", {}).values()):
            for item in executor.get("secretAsEnv", []):
                found.append((item["secretName"], tuple(sorted((e["secretKey"], e["envVar"]) for e in item["keyToEnv"]))))
    assert ("team-integrity", (("integritykey", INTEGRITY_KEY_ENV),)) in found
    stores = sum(1 for name, _ in found if name == "team-store")
    assert stores == sum(1 for name, _ in found if name == "team-integrity")  # every task that touches the store
