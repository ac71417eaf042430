"""The evaluation cache's index: look-ups of a population read packs, not one entry each."""
from __future__ import annotations

import pytest

from linas_lib import cache as cache_module
from linas_lib.api.store import put_json
from linas_lib.cache import EvaluationCache
from linas_lib.stores.local import LocalStore

SCOPE = "quality-accuracy"


class CountingStore(LocalStore):
    """A real local store that counts its requests, as an S3 bill would."""

    def __init__(self, root):
        super().__init__(root)
        self.calls: dict[str, int] = {}

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def list(self, prefix=""):
        self._count("list")
        return super().list(prefix)

    def get_bytes(self, key):
        self._count("get")
        return super().get_bytes(key)

    def reset(self):
        self.calls = {}


def _batch(cache, ids, value=0.5, close=True):
    for i in ids:
        cache.record(SCOPE, i, {"values": {"accuracy": value}})
    if close:
        cache.close_batch(SCOPE)


def _keys(n, tag="s"):
    return [f"{tag}{i:04d}" for i in range(n)]


def test_a_population_is_looked_up_with_one_listing_and_one_read_per_pack(tmp_path):
    store = CountingStore(tmp_path)
    cache = EvaluationCache(store, "ns")
    assert cache.lookup(SCOPE, _keys(3)) == {}  # a new scope: indexed from its first look-up
    _batch(cache, _keys(200)[:100])
    _batch(cache, _keys(200)[100:])
    store.reset()
    found = cache.lookup(SCOPE, _keys(300))
    assert set(found) == set(_keys(200)) and found["s0007"]["values"] == {"accuracy": 0.5}
    # the listings of the scope's own folders; a pack and its digest per batch: no read per hit
    assert store.calls == {"list": 2, "get": 4}
    assert cache.entries(SCOPE) == 200  # every entry is still its own object


def test_a_writer_killed_before_its_pack_loses_nothing(tmp_path):
    store = CountingStore(tmp_path)
    cache = EvaluationCache(store, "ns")
    cache.lookup(SCOPE, [])
    _batch(cache, _keys(20))
    _batch(EvaluationCache(store, "ns"), _keys(30)[20:], close=False)  # killed: entries, marker, no pack
    found = cache.lookup(SCOPE, _keys(30))
    assert set(found) == set(_keys(30))  # the scope was listed, the loose entries read one by one
    store.reset()
    assert set(cache.lookup(SCOPE, _keys(30))) == set(_keys(30))
    assert store.calls["list"] == 2 and store.calls["get"] == 4  # repaired: two packs, no full listing
    assert not store.list(f"ns/{SCOPE}/_pending/")


def test_a_cache_from_before_the_index_migrates_a_bounded_number_per_look_up(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "REPAIR_MAX", 4)
    store = CountingStore(tmp_path)
    for i in _keys(10):  # entries as an older version wrote them: no packs, no origin
        put_json(store, f"ns/{SCOPE}/{i}.json", {"measured_at": 1.0, "values": {"accuracy": 0.1}})
    cache = EvaluationCache(store, "ns")
    assert set(cache.lookup(SCOPE, ["s0009"])) == {"s0009"}
    assert not store.exists(f"ns/{SCOPE}/_index/origin.json")  # 5 of 10 packed so far
    assert set(cache.lookup(SCOPE, _keys(10))) == set(_keys(10))
    assert store.exists(f"ns/{SCOPE}/_index/origin.json")
    store.reset()
    assert set(cache.lookup(SCOPE, _keys(10))) == set(_keys(10)) and store.calls["list"] == 2


def test_many_packs_are_merged_and_the_newest_copy_wins(tmp_path):
    store = CountingStore(tmp_path)
    cache = EvaluationCache(store, "ns")
    cache.lookup(SCOPE, [])
    for b in range(cache_module.MAX_PACKS + 2):
        _batch(cache, [f"b{b}-{i}" for i in range(3)] + ["shared"], value=float(b))
    packs = lambda: [k for k in store.list(f"ns/{SCOPE}/_index/") if k.endswith(".parquet")]  # noqa: E731
    assert len(packs()) == cache_module.MAX_PACKS + 2
    cache.lookup(SCOPE, ["shared"])  # merges
    assert len(packs()) < cache_module.MAX_PACKS
    found = cache.lookup(SCOPE, ["shared"] + [f"b{b}-{i}" for b in range(10) for i in range(3)])
    assert len(found) == 31 and found["shared"]["values"]["accuracy"] == float(cache_module.MAX_PACKS + 1)


def test_stale_marks_apply_to_packed_entries(tmp_path):
    cache = EvaluationCache(LocalStore(tmp_path), "ns")
    _batch(cache, _keys(5))
    cache.mark_stale(SCOPE, "drift")
    assert cache.lookup(SCOPE, _keys(5)) == {}


@pytest.mark.parametrize("damage", ["pack", "entry"])
def test_a_damaged_pack_or_entry_costs_a_listing_never_a_wrong_value(tmp_path, damage):
    store = LocalStore(tmp_path)
    cache = EvaluationCache(store, "ns")
    cache.lookup(SCOPE, [])
    _batch(cache, _keys(6))
    if damage == "pack":
        (pack,) = [k for k in store.list(f"ns/{SCOPE}/_index/") if k.endswith(".parquet")]
        store.put_bytes(pack, b"not parquet")
    else:
        store.put_bytes(f"ns/{SCOPE}/s0000.json", b'{"measured_at": 9e9, "values": {"accuracy": 9}}')
    found = cache.lookup(SCOPE, _keys(6))
    assert set(found) == set(_keys(6)) and {e["values"]["accuracy"] for e in found.values()} == {0.5}
