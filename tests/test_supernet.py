"""The built-in elastic CNN plugin on the session-trained smoke checkpoint."""
from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from linas_lib.measurements import latency_column
from linas_lib.objectives import measure_latency, measure_quality, supernet_measure
from linas_lib.supernets import build_supernet, load_supernet, prepare_checkpoint
from linas_lib.supernets.elastic_cnn import CheckpointError


@pytest.fixture(scope="module")
def space(smoke_supernet):
    return smoke_supernet.space


@pytest.fixture(scope="module")
def extremes(space):
    """Canonical smallest and largest sub-networks, plus the smallest with junk in its hidden genes."""
    smallest = space.canonicalize(np.zeros(space.n_var, dtype=np.int64))[0]
    largest = space.canonicalize(space.upper)[0]
    junk = np.where(space.active_mask(smallest)[0], smallest, space.upper)
    assert not np.array_equal(junk, smallest)
    return smallest, largest, junk


@pytest.fixture(scope="module")
def evaluated(smoke_supernet, extremes):
    return smoke_supernet.evaluate(np.vstack(extremes))


def test_evaluate_returns_quality_and_complexity(evaluated):
    assert len(evaluated) == 3
    for row in evaluated:
        assert set(row) >= {"accuracy", "macs", "params"}
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["macs"] > 0 and row["params"] > 0
        assert all(math.isfinite(v) for v in row.values())


def test_bigger_subnetwork_costs_more(evaluated):
    small, large, _ = evaluated
    assert large["macs"] > small["macs"]
    assert large["params"] > small["params"]


def test_hidden_genes_do_not_change_the_network(evaluated):
    """An encoding with junk in hidden genes is the same network as its canonical form."""
    small, _, junk = evaluated
    assert junk == small


def test_checkpoint_has_a_matching_digest_sidecar(smoke_checkpoint):
    path = Path(smoke_checkpoint)
    sidecar = path.with_name(path.name + ".sha256")
    assert sidecar.is_file()
    assert sidecar.read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_prepare_reuses_the_cached_checkpoint(smoke_config, smoke_checkpoint):
    before = os.stat(smoke_checkpoint).st_mtime_ns
    assert prepare_checkpoint(smoke_config.supernet, progress=False) == smoke_checkpoint
    assert os.stat(smoke_checkpoint).st_mtime_ns == before


def test_loaded_supernet_records_the_checkpoint_digest(smoke_supernet, smoke_checkpoint):
    assert smoke_supernet.checkpoint_digest == hashlib.sha256(Path(smoke_checkpoint).read_bytes()).hexdigest()


def _copy_checkpoint(src: str, dst_dir: Path) -> Path:
    src = Path(src)
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_name(src.name + ".sha256"), dst.with_name(dst.name + ".sha256"))
    return dst


def test_tampered_checkpoint_is_refused(smoke_config, smoke_checkpoint, tmp_path):
    path = _copy_checkpoint(smoke_checkpoint, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        build_supernet("elastic_cnn", **smoke_config.supernet.params).load(str(path))
    assert str(path) in str(err.value) and "sha256" in str(err.value)
    with pytest.raises(CheckpointError, match="sha256"):
        load_supernet(smoke_config.supernet, str(path), progress=False)


def test_foreign_file_is_refused(smoke_config, tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"definitely not a torch checkpoint")
    with pytest.raises(CheckpointError, match="not an elastic_cnn checkpoint"):
        build_supernet("elastic_cnn", **smoke_config.supernet.params).load(str(path))


def test_missing_checkpoint_is_refused(smoke_config, tmp_path):
    missing = str(tmp_path / "missing.pt")
    supernet = build_supernet("elastic_cnn", **smoke_config.supernet.params)
    with pytest.raises(CheckpointError, match="does not exist"):
        supernet.load(missing)
    with pytest.raises(CheckpointError, match="does not exist"):
        supernet.prepare(missing, str(tmp_path))


def test_evaluate_without_weights_is_a_clear_error(smoke_config, extremes):
    supernet = build_supernet("elastic_cnn", **smoke_config.supernet.params)
    with pytest.raises(CheckpointError, match="load"):
        supernet.evaluate(extremes[0][None, :])


def test_measure_latency_with_onnxruntime(smoke_supernet, smoke_config, space):
    target = smoke_config.targets[0]
    X = space.sample(2, 4)
    rows = measure_latency(smoke_supernet, X, target)
    assert [r["subnet_id"] for r in rows] == space.keys(X)
    for row in rows:
        assert row["error"] == ""
        median = row["values"][latency_column(target.name)]
        cv = row["values"][f"latency_cv@{target.name}"]
        assert median > 0 and math.isfinite(median)
        assert math.isfinite(cv) and cv >= 0
        assert row["values"][f"latency_p90@{target.name}"] >= median
        assert row["fingerprint"]["backend"] == "onnxruntime"
        assert row["fingerprint"]["batch_size"] == target.batch_size


def test_measure_quality_rows(smoke_supernet, space):
    X = space.sample(1, 6)
    (row,) = measure_quality(smoke_supernet, X)
    assert row["subnet_id"] == space.key(X[0]) and row["error"] == ""
    assert row["encoding"] == X[0].tolist()
    assert 0 <= row["values"]["accuracy"] <= 1


def test_supernet_measure_builds_table_rows(smoke_supernet, smoke_config, space):
    """The real measure() of the search loops: one ok row per network with every objective."""
    X = space.sample(2, 8)
    predictions = {space.key(X[0]): {"accuracy": 0.5}}
    frame = supernet_measure(smoke_config, smoke_supernet)(3, X, predictions)
    assert list(frame["subnet_id"]) == space.keys(X)
    assert (frame["status"] == "ok").all() and (frame["iteration"] == 3).all()
    for objective in smoke_config.resolved_objectives():
        assert frame[objective.name].notna().all()
    assert frame["pred:accuracy"].iloc[0] == 0.5 and np.isnan(frame["pred:accuracy"].iloc[1])


def test_scored_accuracy_is_the_plain_forward_pass(smoke_supernet, extremes):
    """evaluate() folds batch norm and runs channels-last for speed: its accuracy must be
    what the recalibrated static sub-network itself gives."""
    import torch

    _, test = smoke_supernet._splits()
    x, y = torch.from_numpy(test.x), torch.from_numpy(test.y)
    for encoding, row in zip(extremes[:2], smoke_supernet.evaluate(np.vstack(extremes[:2]))):
        module = smoke_supernet.subnet(encoding)
        assert all(p.is_contiguous() for p in module.parameters())  # handed back in the default layout
        with torch.no_grad():
            correct = int((module(x).argmax(1) == y).sum())
        assert abs(row["accuracy"] - correct / len(y)) <= 2 / len(y)  # float reordering may flip a tie


def test_timing_module_is_the_exported_graph_without_recalibration(smoke_supernet, extremes):
    """Latency times `timing_module`: it must have exactly the operators and shapes of the
    exported sub-network, or float latencies would time another network."""
    import torch

    for encoding in extremes:
        exported, inputs = smoke_supernet.export_module(encoding, 4)
        timed, timed_inputs = smoke_supernet.timing_module(encoding, 4)
        assert [i.shape for i in inputs] == [i.shape for i in timed_inputs]
        assert [(n, p.shape) for n, p in exported.named_parameters()] == \
               [(n, p.shape) for n, p in timed.named_parameters()]
        assert [type(m) for m in exported.modules()] == [type(m) for m in timed.modules()]
        assert not timed.training
        with torch.no_grad():
            assert timed(*inputs).shape == exported(*inputs).shape


def test_float_latency_times_the_timing_module_and_int8_the_exported_one(smoke_supernet, smoke_config, space,
                                                                        monkeypatch):
    calls = []
    for name in ("timing_module", "export_module"):
        original = getattr(smoke_supernet, name)
        monkeypatch.setattr(smoke_supernet, name,
                            lambda *a, _name=name, _f=original: calls.append(_name) or _f(*a))
    measure_latency(smoke_supernet, space.sample(2, 7), smoke_config.targets[0])
    assert calls == ["timing_module"] * 2
    calls.clear()
    from linas_lib.objectives.latency import measure_latency as measure

    int8 = smoke_config.targets[0].model_copy(update={"backend": "openvino", "precision": "int8",
                                                      "calibration_samples": 8})
    rows = measure(smoke_supernet, space.sample(1, 7), int8)
    assert calls == ["export_module"], rows
