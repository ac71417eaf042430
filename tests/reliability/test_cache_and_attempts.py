"""The evaluation cache and the measurement policy: reuse, staleness, corruption,
concurrent writers on a real S3 server, retries, time-outs, NaN and out-of-memory."""
from __future__ import annotations

import multiprocessing as mp
import time
import uuid

import numpy as np
import pytest

from linas_lib.cache import EvaluationCache, cache_uri, latency_scope, sibling_uri
from linas_lib.config import MeasurementPolicy, config_from_dict
from linas_lib.objectives import SupernetMeasurer, measure_latency, measure_quality, target_fingerprint
from linas_lib.objectives.attempts import attempt, check_values
from linas_lib.stores import open_store
from linas_lib.supernets import build_supernet

CONFIG = {
    "name": "nb201-cache",
    "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
    "objectives": ["accuracy", "latency"],
    "targets": [{"name": "nb201", "backend": "tabular"}],
    "search": {"population": 6, "evaluations": 12, "inner": {"evaluations": 500}},
    "measurement": {"retries": 2, "backoff_s": 0},
}


@pytest.fixture(scope="module")
def nb201():
    supernet = build_supernet("nasbench201", dataset="cifar10")
    supernet.load()
    return supernet


def test_second_measurement_of_the_same_subnets_is_all_hits(tmp_path, nb201):
    config = config_from_dict(CONFIG)
    cache = EvaluationCache(str(tmp_path / "cache"), "nb201/x")
    X = nb201.space.sample(8, 0)
    first = SupernetMeasurer(config, nb201, cache)(0, X)
    second = SupernetMeasurer(config, nb201, cache)(0, X)
    assert set(first["cache"].str.count("=miss")) == {2} and set(second["cache"].str.count("=hit")) == {2}
    cols = ["subnet_id", "accuracy", "latency@nb201", "params"]
    assert first[cols].equals(second[cols])
    assert cache.entries("quality-accuracy") == 8


def test_the_cache_key_separates_hardware_targets(nb201):
    config = config_from_dict({**CONFIG, "targets": [{"name": "a", "backend": "tabular"},
                                                     {"name": "b", "backend": "tabular", "threads": 2}]})
    a, b = (latency_scope(target_fingerprint(t)) for t in config.targets)
    assert a != b
    same = config_from_dict({**CONFIG, "targets": [{"name": "renamed", "backend": "tabular"}]}).targets[0]
    assert latency_scope(target_fingerprint(same)) == a  # the name is not hardware


def test_a_corrupt_entry_is_a_miss_and_is_replaced(tmp_path, nb201):
    cache = EvaluationCache(str(tmp_path / "cache"), "ns")
    X = nb201.space.sample(3, 1)
    rows = measure_quality(nb201, X, cache=cache)
    key = f"ns/quality-accuracy/{rows[0]['subnet_id']}.json"
    path = tmp_path / "cache" / key
    path.write_bytes(path.read_bytes()[:-7] + b"garbage")
    # the batch's index pack holds a checked copy of the entry: still a hit, with the measured value
    served = measure_quality(nb201, X, cache=cache)
    assert [r["cache"]["quality-accuracy"] for r in served] == ["hit"] * 3
    assert served[0]["values"] == rows[0]["values"]
    for pack in (tmp_path / "cache" / "ns" / "quality-accuracy" / "_index").glob("*.parquet"):
        pack.write_bytes(pack.read_bytes()[:-7] + b"garbage")  # the copy damaged too
    again = measure_quality(nb201, X, cache=cache)
    assert [r["cache"]["quality-accuracy"] for r in again] == ["miss", "hit", "hit"]
    assert again[0]["values"] == rows[0]["values"]
    assert [r["cache"]["quality-accuracy"] for r in measure_quality(nb201, X, cache=cache)] == ["hit"] * 3


def test_stale_marks_hide_older_entries_only(tmp_path, nb201):
    cache = EvaluationCache(str(tmp_path / "cache"), "ns")
    target = config_from_dict(CONFIG).targets[0]
    X = nb201.space.sample(4, 2)
    measure_latency(nb201, X[:2], target, cache=cache)
    cache.mark_stale(latency_scope(target_fingerprint(target)), "test drift")
    time.sleep(0.01)
    rows = measure_latency(nb201, X, target, cache=cache)
    assert [list(r["cache"].values())[0] for r in rows] == ["miss"] * 4
    rows = measure_latency(nb201, X, target, cache=cache)
    assert [list(r["cache"].values())[0] for r in rows] == ["hit"] * 4


def test_cache_locations(tmp_path):
    config = config_from_dict(CONFIG)
    assert cache_uri(config, str(tmp_path / "runs" / "a")) == str(tmp_path / "runs" / "evaluation-cache")
    assert sibling_uri("s3://b/p/run1?endpoint=h:1", "evaluation-cache") == "s3://b/p/evaluation-cache?endpoint=h:1"
    private = config_from_dict({**CONFIG, "cache": {"enabled": False}})
    assert cache_uri(private, str(tmp_path / "r")) == str(tmp_path / "r" / "evaluation-cache")


def test_the_cache_is_scoped_by_tenant(tmp_path, nb201):
    """Two teams sharing one cache location read only their own measurements by default
    (the tenant is the location holding the run); naming one tenant shares on purpose."""
    from linas_lib.cache import default_tenant, open_cache

    shared = str(tmp_path / "shared-cache")
    X = nb201.space.sample(3, 7)

    def states(run_uri: str, **cache) -> list[str]:
        config = config_from_dict({**CONFIG, "cache": {"uri": shared, **cache}})
        rows = measure_quality(nb201, X, cache=open_cache(config, run_uri, nb201, None))
        return [list(r["cache"].values())[0] for r in rows]

    assert states(str(tmp_path / "team-a" / "runs" / "r1")) == ["miss"] * 3
    assert states(str(tmp_path / "team-a" / "runs" / "r2")) == ["hit"] * 3  # same team: reused
    assert states(str(tmp_path / "team-b" / "runs" / "r1")) == ["miss"] * 3  # another team: not read
    assert states(str(tmp_path / "team-a" / "runs" / "r3"), tenant="vision") == ["miss"] * 3
    assert states(str(tmp_path / "team-b" / "runs" / "r3"), tenant="vision") == ["hit"] * 3  # chosen sharing
    tenants = {k.split("/")[0] for k in open_store(shared).list() if k.endswith(".json")}
    assert len(tenants) == 3 and "vision" in tenants
    assert default_tenant("s3://b/team-a/runs/r1?endpoint=h:1") == default_tenant("s3://b/team-a/runs/r2")
    assert default_tenant("s3://b/team-a/runs/r1") != default_tenant("s3://b/team-b/runs/r1")
    assert "cache.tenant" in _config_error({**CONFIG, "cache": {"tenant": "../other-team"}})


def _config_error(data) -> str:
    from linas_lib.config import ConfigError

    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return str(info.value)


class _CountingStore:
    """A local store that can be taken down, counting the measurements it is asked to keep."""

    def __init__(self, root):
        from linas_lib.stores.local import LocalStore

        self.inner, self.down = LocalStore(root), False
        self.uri = self.inner.uri

    def __getattr__(self, name):
        from linas_lib.api.store import StoreError

        if self.down:
            def refuse(*args, **kwargs):
                raise StoreError(f"{self.uri}: S3 endpoint failed after 5 attempts (ConnectionRefusedError)")
            return refuse
        return getattr(self.inner, name)


def test_a_store_outage_stops_measuring_and_resume_repeats_nothing(tmp_path, nb201, monkeypatch):
    """The store goes down after a lookup: the first measurement cannot be recorded, so it is
    journaled locally and nothing more is measured; once the store is back the journal is
    written first and only the rest is measured."""
    from linas_lib.objectives.recording import NotRecordedError

    monkeypatch.setenv("LINAS_JOURNAL", str(tmp_path / "journal"))
    store = _CountingStore(tmp_path / "cache")
    cache = EvaluationCache(store, "ns")
    X = nb201.space.sample(3, 3)
    calls = []
    evaluate = nb201.evaluate
    monkeypatch.setattr(nb201, "evaluate", lambda enc: calls.append(1) or evaluate(enc))
    original_lookup = cache.lookup

    def lookup_then_fail(*args):
        found = original_lookup(*args)
        store.down = True  # the outage begins mid-iteration
        return found

    monkeypatch.setattr(cache, "lookup", lookup_then_fail)
    with pytest.raises(NotRecordedError, match="kept in the local journal .*journal.*; the search stopped") as info:
        measure_quality(nb201, X, cache=cache)
    assert "failed after 5 attempts" in str(info.value)
    assert len(calls) == 1, "nothing may be measured after a measurement that could not be recorded"

    monkeypatch.undo()
    monkeypatch.setenv("LINAS_JOURNAL", str(tmp_path / "journal"))
    with pytest.raises(Exception, match="failed after 5 attempts"):  # still down: the journal stays
        EvaluationCache(store, "ns").lookup("quality-accuracy", [])
    assert len(list((tmp_path / "journal").glob("*.jsonl"))) == 1
    store.down = False
    calls.clear()
    monkeypatch.setattr(nb201, "evaluate", lambda enc: calls.append(1) or evaluate(enc))
    rows = measure_quality(nb201, X, cache=EvaluationCache(store, "ns"))
    assert [list(r["cache"].values())[0] for r in rows] == ["hit", "miss", "miss"] and len(calls) == 2
    assert not list((tmp_path / "journal").iterdir()), "the journal is emptied once written"


def test_a_measurement_neither_stored_nor_journaled_says_so(tmp_path, nb201, monkeypatch):
    from linas_lib.objectives.recording import NotRecordedError

    (tmp_path / "journal").write_text("a file where the journal directory should be")
    monkeypatch.setenv("LINAS_JOURNAL", str(tmp_path / "journal" / "sub"))
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(NotRecordedError, match="nor in a local journal .*: it will be measured again"):
        measure_quality(nb201, nb201.space.sample(2, 3), cache=EvaluationCache(str(blocker), "ns"))


# ---- the measurement policy --------------------------------------------------
def _flaky(outcomes):
    calls = []

    def measure():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return measure, calls


@pytest.mark.parametrize("failure, reason", [
    (RuntimeError("backend crashed"), "backend crashed"),
    ({"latency@t": float("nan")}, "nan"),
    ({"latency@t": float("inf")}, "inf"),
    ({"latency@t": -1.0}, "must be > 0"),
    ({"latency@t": 0.0}, "must be > 0"),
    ({"accuracy": -0.5}, "must be >= 0"),
    (MemoryError("CUDA out of memory"), "out of memory"),
])
def test_failures_are_retried_with_backoff_then_recorded(failure, reason):
    sleeps = []
    measure, calls = _flaky([failure] * 3)
    values, error, tries = attempt(measure, MeasurementPolicy(retries=2, backoff_s=0.5), "latency@t", sleeps.append)
    assert values == {} and tries == 3 and len(calls) == 3
    assert reason in error and "after 3 attempts" in error
    assert sleeps == [0.5, 1.0]
    measure, calls = _flaky([failure, {"latency@t": 2.0}])
    assert attempt(measure, MeasurementPolicy(retries=2, backoff_s=0), "latency@t")[:2] == ({"latency@t": 2.0}, "")


def test_wrong_input_is_not_retried():
    measure, calls = _flaky([ValueError("gene 3 out of range")] * 3)
    values, error, tries = attempt(measure, MeasurementPolicy(retries=5, backoff_s=0), "quality")
    assert tries == 1 and "gene 3 out of range" in error


def test_a_hanging_measurement_times_out():
    values, error, _ = attempt(lambda: time.sleep(5) or {}, MeasurementPolicy(retries=1, backoff_s=0, timeout_s=0.2),
                               "latency@slow")
    assert values == {} and "timed out after 0.2 s" in error


def test_check_values_accepts_zero_cv_and_accuracy():
    assert check_values({"latency_cv@t": 0.0, "accuracy": 0.0, "latency@t": 1e-3})


def test_failed_subnets_enter_the_table_but_never_the_predictors(tmp_path, nb201, monkeypatch):
    from linas_lib.measurements import successful

    config = config_from_dict(CONFIG)
    X = nb201.space.sample(5, 4)
    bad = nb201.space.keys(X[:2])
    original = type(nb201).evaluate

    def sometimes_nan(self, encodings):
        (row,) = original(self, encodings)
        return [{**row, "accuracy": float("nan")}] if self.space.keys(encodings)[0] in bad else [row]

    monkeypatch.setattr(type(nb201), "evaluate", sometimes_nan)
    frame = SupernetMeasurer(config, nb201, EvaluationCache(str(tmp_path / "c"), "ns"))(0, X)
    assert list(frame["status"]) == ["failed", "failed", "ok", "ok", "ok"]
    assert frame["error"].iloc[0].startswith("quality: accuracy = nan") and "after 3 attempts" in frame["error"].iloc[0]
    assert set(successful(frame, ["accuracy"])["subnet_id"]).isdisjoint(bad)


# ---- many writers on a real S3 server ----------------------------------------
def _cache_writer(uri: str, writer: int, n: int) -> None:
    cache = EvaluationCache(uri, "ns")
    for i in range(n):
        cache.record("quality-accuracy", f"w{writer}-{i:02d}", {"values": {"accuracy": writer + i / 100}})


def test_eight_processes_fill_one_s3_cache_without_losing_an_entry(monkeypatch):
    from s3_server import moto_server

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "linas-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "linas-test-secret")
    with moto_server() as endpoint:
        uri = f"s3://cache-{uuid.uuid4().hex[:8]}/shared?endpoint={endpoint}&secure=false"
        open_store(uri).ensure_bucket()
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_cache_writer, args=(uri, w, 12)) for w in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
            assert p.exitcode == 0
        cache = EvaluationCache(uri, "ns")
        keys = [f"w{w}-{i:02d}" for w in range(8) for i in range(12)]
        found = cache.lookup("quality-accuracy", keys)
        assert len(found) == 96
        assert all(found[f"w{w}-{i:02d}"]["values"]["accuracy"] == w + i / 100 for w in range(8) for i in range(12))
        # a damaged entry on S3 is served from its checked copy in the index, never as planted ...
        cache.store.put_bytes("ns/quality-accuracy/w0-00.json", b'{"values": {"accuracy": 0.99}}')
        assert cache.lookup("quality-accuracy", ["w0-00"])["w0-00"]["values"] == {"accuracy": 0.0}
        # ... and with the copy damaged too, it reads as a miss, not an error
        for key in cache.store.list("ns/quality-accuracy/_index/"):
            if key.endswith(".parquet"):
                cache.store.put_bytes(key, b"PAR1 damaged")
        assert "w0-00" not in cache.lookup("quality-accuracy", ["w0-00"])
        assert len(cache.lookup("quality-accuracy", keys)) == 95  # the others read one by one
