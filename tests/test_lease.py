"""One writer per run location: a second pipeline run on the same store fails fast,
naming the run that holds it, before it deletes anything."""
from __future__ import annotations

import pytest

from linas_lib import lease, stages
from linas_lib.config import load_config
from linas_lib.runs import RunStore
from linas_lib.stores import open_store

from conftest import SMOKE_YAML


class Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self):
        return self.t


def test_a_held_lease_refuses_another_run_and_names_the_holder(tmp_path):
    store, clock = open_store(str(tmp_path)), Clock()
    lease.acquire(store, "run-a", 60, holder_name="nightly", settle_s=0, now=clock)
    lease.acquire(store, "run-a", 60, settle_s=0, now=clock)  # a retried task of the same run
    with pytest.raises(lease.LeaseHeld) as info:
        lease.acquire(store, "run-b", 60, settle_s=0, now=clock)
    message = str(info.value)
    assert "in use by run run-a (nightly)" in message and "this run (run-b)" in message
    assert f"delete {store.uri}/lease.json" in message
    with pytest.raises(lease.LeaseHeld):
        lease.renew(store, "run-b", 60, now=clock)
    assert not lease.release(store, "run-b") and store.exists("lease.json")  # not its lease to drop


def test_an_expired_lease_is_taken_over_and_the_old_holder_stops(tmp_path):
    store, clock = open_store(str(tmp_path)), Clock()
    lease.acquire(store, "run-a", 60, settle_s=0, now=clock)
    clock.t += 61
    lease.acquire(store, "run-b", 60, settle_s=0, now=clock)
    with pytest.raises(lease.LeaseHeld, match="in use by run run-b"):
        lease.renew(store, "run-a", 60, now=clock)  # the stale run must not write over the new one
    assert lease.release(store, "run-b") and not store.exists("lease.json")
    lease.acquire(store, "run-c", 60, settle_s=0, now=clock)


def test_the_losing_writer_of_a_simultaneous_start_does_not_go_on(tmp_path, monkeypatch):
    store = open_store(str(tmp_path))
    # run-b's write lands while run-a waits to read back
    monkeypatch.setattr(lease.time, "sleep", lambda s: lease.put_json(store, lease.LEASE, {
        "holder": "run-b", "holder_name": "", "acquired": 0, "expires": 4e9}))
    with pytest.raises(lease.LeaseHeld, match="in use by run run-b"):
        lease.acquire(store, "run-a", 60)


def test_ttl_covers_an_iteration_with_every_retry(monkeypatch):
    from pipelines.placement import deployment

    placed = deployment(load_config(SMOKE_YAML))
    t, retries = placed.cluster.timeouts, placed.cluster.retries
    assert placed.lease_ttl_s >= (t.latency + t.train + t.moea) * (retries + 1)
    # the task reads what the pipeline set on it
    monkeypatch.setenv("LINAS_LEASE_TTL_S", str(placed.lease_ttl_s))
    assert lease.lease_ttl_s() == placed.lease_ttl_s
    monkeypatch.setenv("LINAS_LEASE_TTL_S", "soon")
    with pytest.raises(ValueError, match="LINAS_LEASE_TTL_S"):
        lease.lease_ttl_s()


def test_a_second_pipeline_run_on_the_same_store_fails_before_deleting_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(lease.time, "sleep", lambda s: None)
    config_json = load_config(SMOKE_YAML).to_json()
    store_uri = str(tmp_path / "run")
    assert stages.sample(config_json, store_uri, str(tmp_path / "a.json"), "run-a", "first") == 6
    run = RunStore(store_uri)
    run.save_population({"iteration": 0, "subnet_ids": [], "encodings": []})
    with pytest.raises(lease.LeaseHeld, match=r"in use by run run-a \(first\)"):
        stages.sample(config_json, store_uri, str(tmp_path / "b.json"), "run-b", "clone")
    assert run.store.exists("populations/iter-000.json")  # the first run's state is untouched
    # the refused run's exit task reports why and leaves the lease alone
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    assert stages.report(config_json, store_uri, None, str(html), str(md), "run-b") == {}
    assert "in use by run run-a" in md.read_text() and run.store.exists("lease.json")
    # the holder's exit task releases it, even when the report itself fails
    with pytest.raises(ValueError, match="holds no measurements"):
        stages.report(config_json, store_uri, None, str(html), str(md), "run-a")
    assert not run.store.exists("lease.json")
    stages.sample(config_json, store_uri, str(tmp_path / "b.json"), "run-b", "clone")
