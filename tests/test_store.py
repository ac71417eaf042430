"""LocalStore: a flat key -> bytes namespace with checked JSON and table helpers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from linas_lib.api.store import (
    MissingObjectError,
    Store,
    StoreError,
    get_checked,
    get_json,
    get_table,
    put_checked,
    put_json,
    put_table,
)
from linas_lib.stores import open_store
from linas_lib.stores.local import LocalStore


@pytest.fixture
def store(tmp_path):
    return open_store(str(tmp_path / "store"))


def test_open_store_picks_local_for_paths_and_file_uris(tmp_path):
    plain = open_store(str(tmp_path / "a"))
    uri = open_store(f"file://{tmp_path / 'b'}")
    assert isinstance(plain, LocalStore) and isinstance(uri, LocalStore)
    assert isinstance(plain, Store)  # satisfies the protocol
    assert uri.root == (tmp_path / "b").resolve()


def test_unknown_scheme_is_rejected():
    with pytest.raises(KeyError, match="nosuchscheme"):
        open_store("nosuchscheme://bucket/run")


def test_put_get_exists_delete(store):
    assert not store.exists("a/b.bin")
    store.put_bytes("a/b.bin", b"\x00\x01payload")
    assert store.exists("a/b.bin")
    assert store.get_bytes("a/b.bin") == b"\x00\x01payload"
    store.put_bytes("a/b.bin", b"replaced")
    assert store.get_bytes("a/b.bin") == b"replaced"
    store.delete("a/b.bin")
    assert not store.exists("a/b.bin")
    store.delete("a/b.bin")  # deleting what is gone is not an error


def test_list_is_sorted_and_filtered_by_prefix(store):
    assert store.list() == []
    for key in ["z.txt", "populations/iter-001.json", "populations/iter-000.json", "pareto.json"]:
        store.put_bytes(key, b"x")
    assert store.list() == ["pareto.json", "populations/iter-000.json", "populations/iter-001.json", "z.txt"]
    assert store.list("populations/") == ["populations/iter-000.json", "populations/iter-001.json"]
    assert store.list("nothing/") == []


def test_list_of_a_store_that_was_never_written(tmp_path):
    assert open_store(str(tmp_path / "never")).list() == []


def test_list_hides_temporary_files_and_writes_leave_none(store):
    for i in range(5):
        store.put_bytes("k.bin", bytes([i]) * 1000)
    assert store.list() == ["k.bin"]
    assert not [p for p in store.root.rglob("*") if p.name.startswith(".tmp-")]


def test_missing_key_raises_missing_object_error(store):
    with pytest.raises(MissingObjectError) as err:
        store.get_bytes("absent.json")
    assert "absent.json" in str(err.value)
    # usable both as a store error and as a plain missing file
    assert isinstance(err.value, StoreError) and isinstance(err.value, FileNotFoundError)
    with pytest.raises(MissingObjectError):
        get_json(store, "absent.json")


def test_json_round_trip_with_numpy_values(store):
    obj = {"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(3), "nested": {"s": "é", "l": [1, None]}}
    put_json(store, "doc.json", obj)
    assert get_json(store, "doc.json") == {"n": 3, "x": 0.5, "v": [0, 1, 2], "nested": {"s": "é", "l": [1, None]}}


def test_json_refuses_unserializable_objects(store):
    with pytest.raises(TypeError):
        put_json(store, "bad.json", {"x": object()})


def test_table_round_trip(store):
    frame = pd.DataFrame({"iteration": np.array([0, 1], dtype=np.int64), "encoding": ["[0, 1]", "[1, 0]"],
                          "accuracy": [0.5, 0.75]})
    put_table(store, "t.parquet", frame)
    pd.testing.assert_frame_equal(get_table(store, "t.parquet"), frame)


def test_corrupted_json_is_detected(store):
    put_json(store, "summary.json", {"evaluations": 12})
    store.put_bytes("summary.json", b'{"evaluations": 13}')  # valid JSON, but not what was written
    with pytest.raises(StoreError, match="summary.json"):
        get_json(store, "summary.json")


def test_truncated_table_is_detected(store):
    put_table(store, "m.parquet", pd.DataFrame({"a": np.arange(100)}))
    data = store.get_bytes("m.parquet")
    store.put_bytes("m.parquet", data[: len(data) // 2])
    with pytest.raises(StoreError, match="m.parquet"):
        get_table(store, "m.parquet")


def test_bit_flip_is_detected_by_get_checked(store):
    put_checked(store, "blob.bin", b"abcdef")
    store.put_bytes("blob.bin", b"abcdeF")
    with pytest.raises(StoreError, match="corrupt"):
        get_checked(store, "blob.bin")


def test_unreadable_objects_without_digest_raise_store_error(store):
    """Objects written without a digest are still parsed defensively."""
    store.put_bytes("raw.json", b"{not json")
    with pytest.raises(StoreError, match="raw.json"):
        get_json(store, "raw.json")
    store.put_bytes("raw.parquet", b"not a parquet file")
    with pytest.raises(StoreError, match="raw.parquet"):
        get_table(store, "raw.parquet")


@pytest.mark.parametrize("key", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "a/../../../tmp/x"])
def test_keys_may_not_escape_the_root(store, key):
    with pytest.raises(StoreError, match="escapes"):
        store.put_bytes(key, b"x")
    with pytest.raises(StoreError, match="escapes"):
        store.get_bytes(key)
    with pytest.raises(StoreError, match="escapes"):
        store.delete(key)
    assert not (store.root.parent / "outside.txt").exists()


def test_dot_segments_inside_the_root_are_fine(store):
    store.put_bytes("a/../b.txt", b"ok")
    assert store.get_bytes("b.txt") == b"ok"


# ---- the run's measurement table: appended per iteration, compacted now and then -----------
def _iteration_rows(iteration: int, n: int = 3, start: int = 0):
    from linas_lib.measurements import make_row, to_frame

    return to_frame([make_row(subnet_id=f"s{iteration}-{i}", encoding=[i], iteration=iteration,
                              values={"accuracy": iteration + i / 10}, timestamp=1.0) for i in range(start, n)])


def test_each_iteration_appends_its_own_rows_and_compaction_keeps_the_table(tmp_path):
    from linas_lib.measurements import concat
    from linas_lib.runs import COMPACT_PARTS, MEASUREMENTS, RunStore

    run, frame = RunStore(str(tmp_path)), concat()
    for it in range(COMPACT_PARTS + 2):
        frame = concat(frame, _iteration_rows(it))
        saved = run.save_measurements(frame)
        if it == COMPACT_PARTS - 1:  # the 16th part: the whole table in one file, no parts left
            assert saved == MEASUREMENTS and run._parts() == []
        else:  # an ordinary iteration writes its own three rows, not the table
            assert saved == f"measurements/iter-{it:05d}.parquet"
            assert len(get_table(run.store, saved)) == 3
        pd.testing.assert_frame_equal(run.load_measurements(), frame)
    assert [i for i, _ in run._parts()] == [COMPACT_PARTS, COMPACT_PARTS + 1]
    assert len(get_table(run.store, MEASUREMENTS)) == 3 * COMPACT_PARTS


def test_a_retried_iteration_replaces_its_part_and_a_kill_mid_compaction_loses_nothing(tmp_path):
    from linas_lib.measurements import concat
    from linas_lib.runs import RunStore

    run = RunStore(str(tmp_path))
    run.save_measurements(_iteration_rows(0))
    run.save_measurements(concat(_iteration_rows(0), _iteration_rows(1, n=2)))
    frame = concat(_iteration_rows(0), _iteration_rows(1, n=3))  # iteration 1 told again, with more rows
    run.save_measurements(frame)
    pd.testing.assert_frame_equal(run.load_measurements(), frame)
    # a compaction killed after writing the table but before deleting the parts
    put_table(run.store, "measurements.parquet", frame)
    pd.testing.assert_frame_equal(run.load_measurements(), frame)


def test_a_damaged_part_ends_the_recovered_table_before_it(tmp_path):
    from linas_lib.measurements import concat
    from linas_lib.runs import RunStore

    run, frame = RunStore(str(tmp_path)), concat()
    for it in range(3):
        frame = concat(frame, _iteration_rows(it))
        run.save_measurements(frame)
    key = "measurements/iter-00001.parquet"
    run.store.put_bytes(key, run.store.get_bytes(key)[:50])
    with pytest.raises(StoreError, match="corrupt"):
        run.load_measurements()
    pd.testing.assert_frame_equal(run.load_measurements(recover=True), _iteration_rows(0))
