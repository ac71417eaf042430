"""The S3 store against a real S3 server (moto_server) on loopback."""
from __future__ import annotations

import json
import multiprocessing as mp
import uuid

import boto3
import pytest

from linas_lib.api.store import MissingObjectError, StoreError, get_json, get_table, put_json, put_table
from linas_lib.measurements import make_row, to_frame
from linas_lib.runs import RunStore
from linas_lib.stores import open_store
from linas_lib.stores.s3 import S3Store
from s3_server import free_port, moto_server

CREDS = {"AWS_ACCESS_KEY_ID": "linas-test", "AWS_SECRET_ACCESS_KEY": "linas-test-secret"}


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as ep:
        yield ep


@pytest.fixture
def store(endpoint, monkeypatch):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    s = open_store(f"s3://bucket-{uuid.uuid4().hex[:8]}/runs/r1?endpoint={endpoint}&secure=false")
    s.ensure_bucket()
    return s


def test_put_get_list_delete(store):
    store.put_bytes("a.txt", b"alpha")
    store.put_bytes("dir/b.txt", b"beta")
    assert store.get_bytes("a.txt") == b"alpha"
    assert store.list() == ["a.txt", "dir/b.txt"]
    assert store.list("dir/") == ["dir/b.txt"]
    assert store.exists("dir/b.txt") and not store.exists("dir/c.txt")
    store.delete("a.txt")
    assert store.list() == ["dir/b.txt"]


def test_missing_object_is_a_clear_error(store):
    with pytest.raises(MissingObjectError, match="nothing.json: does not exist"):
        store.get_bytes("nothing.json")


def test_checksummed_json_and_tables_round_trip_and_detect_corruption(store):
    put_json(store, "summary.json", {"hypervolume": [0.5, 0.7]})
    assert get_json(store, "summary.json") == {"hypervolume": [0.5, 0.7]}
    frame = to_frame([make_row(subnet_id="abc", encoding=[1, 2], iteration=0, values={"accuracy": 0.8})])
    put_table(store, "measurements.parquet", frame)
    assert get_table(store, "measurements.parquet")["subnet_id"].tolist() == ["abc"]
    store.put_bytes("summary.json", b'{"hypervolume": [9.9]}')  # bypasses the checksum
    with pytest.raises(StoreError, match="corrupt"):
        get_json(store, "summary.json")
    store.put_bytes("measurements.parquet", store.get_bytes("measurements.parquet")[:40])
    with pytest.raises(StoreError, match="corrupt"):
        get_table(store, "measurements.parquet")


def test_run_store_works_on_s3(store):
    run = RunStore(store)
    frame = to_frame([make_row(subnet_id=f"s{i}", encoding=[i], iteration=0, values={"accuracy": i / 10}) for i in range(5)])
    run.save_measurements(frame)
    assert run.load_measurements()["subnet_id"].tolist() == [f"s{i}" for i in range(5)]


def test_missing_credentials_and_missing_endpoint_are_clear(monkeypatch, endpoint):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(StoreError, match="no S3 credentials"):
        open_store(f"s3://b/p?endpoint={endpoint}&secure=false")
    monkeypatch.delenv("LINAS_S3_ENDPOINT", raising=False)
    with pytest.raises(StoreError, match="no S3 endpoint"):
        open_store("s3://b/p")


def test_unreachable_endpoint_retries_then_fails_clearly():
    store = S3Store(f"127.0.0.1:{free_port()}", "bucket", secure=False, access_key="k", secret_key="s", retries=2, backoff_s=0.01)
    with pytest.raises(StoreError, match="failed after 3 attempts"):
        store.get_bytes("x")


def test_wrong_credentials_are_rejected_without_leaking_the_secret():
    """moto enforces IAM auth after the 3 setup requests that create the user."""
    import json as _json

    with moto_server(auth_free_actions=3) as ep:
        iam = boto3.client("iam", endpoint_url=f"http://{ep}", region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="linas")
        iam.put_user_policy(UserName="linas", PolicyName="s3", PolicyDocument=_json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="linas")["AccessKey"]
        good = S3Store(ep, "bucket", secure=False, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        good.ensure_bucket()
        good.put_bytes("x", b"1")
        secret = "definitely-wrong-secret"
        bad = S3Store(ep, "bucket", secure=False, access_key=key["AccessKeyId"], secret_key=secret, retries=0)
        with pytest.raises(StoreError, match="rejected the credentials") as info:
            bad.get_bytes("x")
        assert secret not in str(info.value)


def _writer(uri: str, writer: int, n: int) -> None:
    store = open_store(uri)
    for i in range(n):
        put_json(store, f"records/w{writer}-{i:03d}.json", {"writer": writer, "i": i})


def test_eight_concurrent_writer_processes_lose_nothing(store, endpoint):
    uri = f"{store.uri}?endpoint={endpoint}&secure=false"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(uri, w, 15)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    keys = [k for k in store.list("records/") if k.endswith(".json")]
    assert len(keys) == 8 * 15
    records = {(r["writer"], r["i"]) for r in (get_json(store, k) for k in keys)}
    assert records == {(w, i) for w in range(8) for i in range(15)}
    assert json.loads(store.get_bytes(keys[0]))["writer"] == 0


def test_checkpoint_uri_on_s3_is_downloaded_once_into_the_cache(store, endpoint, tmp_path, monkeypatch):
    from linas_lib.supernets import fetch_checkpoint

    monkeypatch.setenv("LINAS_CACHE", str(tmp_path))
    store.put_bytes("weights/net.pt", b"weights-bytes")
    uri = f"{store.uri}/weights/net.pt?endpoint={endpoint}&secure=false"
    local = fetch_checkpoint(uri)
    assert open(local, "rb").read() == b"weights-bytes"
    store.delete("weights/net.pt")
    assert fetch_checkpoint(uri) == local  # cached: no second download
    assert fetch_checkpoint(str(tmp_path / "x.pt")) == str(tmp_path / "x.pt")
