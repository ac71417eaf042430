"""Several forked processes where they disturb no measurement (`measurement.workers`):
sub-networks scored side by side (the same values as one process, each recorded as it
arrives, a worker that dies costing only the sub-network it held), and exported side by
side before they are timed one by one."""
from __future__ import annotations

import os

import numpy as np
import pytest

from linas_lib.cache import EvaluationCache
from linas_lib.config import MeasurementPolicy, TargetConfig
from linas_lib.objectives import measure_latency, measure_quality
from linas_lib.objectives.workers import WorkerDied, in_parallel
from linas_lib.supernets import build_supernet


def test_forked_workers_score_the_real_cnn_exactly_as_one_process(smoke_supernet):
    X = smoke_supernet.space.sample(5, np.random.default_rng(3))
    one = measure_quality(smoke_supernet, X, policy=MeasurementPolicy(retries=0, workers=1))
    two = measure_quality(smoke_supernet, X, policy=MeasurementPolicy(retries=0, workers=2))
    assert [r["subnet_id"] for r in two] == [r["subnet_id"] for r in one]  # the input order
    assert [r["values"] for r in two] == [r["values"] for r in one]
    assert all(r["error"] == "" and 0 < r["values"]["accuracy"] <= 1 for r in two)


class _DiesOn:
    """The tabular benchmark, except that scoring `fatal` kills the process outright."""

    def __init__(self, inner, fatal: str, parent: int):
        self.inner, self.fatal, self.parent = inner, fatal, parent
        self.space, self.quality_metric = inner.space, inner.quality_metric

    def evaluate(self, encodings):
        if self.space.keys(encodings)[0] == self.fatal and os.getpid() != self.parent:
            os._exit(9)  # what the OOM killer leaves: no exception, no result
        return self.inner.evaluate(encodings)


@pytest.fixture(scope="module")
def nb201():
    supernet = build_supernet("nasbench201", dataset="cifar10")
    supernet.load()
    return supernet


def test_a_worker_that_dies_costs_its_subnet_only_and_the_rest_are_recorded(tmp_path, nb201):
    X = nb201.space.canonicalize(nb201.space.sample(7, 5))
    keys = nb201.space.keys(X)
    dying = _DiesOn(nb201, fatal=keys[2], parent=os.getpid())
    cache = EvaluationCache(str(tmp_path / "cache"), "ns")
    rows = measure_quality(dying, X, policy=MeasurementPolicy(retries=0, workers=3), cache=cache)
    assert [r["subnet_id"] for r in rows] == keys
    assert "exited with code 9" in rows[2]["error"] and rows[2]["values"] == {}
    assert all(r["error"] == "" for i, r in enumerate(rows) if i != 2)
    assert cache.entries("quality-accuracy") == 6  # every other score kept, though a worker died
    again = measure_quality(nb201, X, policy=MeasurementPolicy(retries=0, workers=2), cache=cache)
    assert [r["cache"]["quality-accuracy"] for r in again] == ["hit", "hit", "miss", "hit", "hit", "hit", "hit"]


def test_in_parallel_yields_every_item_once_whatever_happens_to_it():
    def job(i):
        if i == 3:
            raise ValueError("bad item")
        if i == 5:
            os._exit(1)
        return i * i

    results = dict(in_parallel(job, 8, workers=2))
    assert sorted(results) == list(range(8))
    assert isinstance(results[3], ValueError) and isinstance(results[5], WorkerDied)
    assert all(results[i] == i * i for i in range(8) if i not in (3, 5))
    assert dict(in_parallel(lambda i: i + 1, 3, workers=1)) == {0: 1, 1: 2, 2: 3}


def test_a_caller_that_stops_early_leaves_no_worker_behind():
    import multiprocessing

    results = in_parallel(lambda i: i, 10, workers=2)
    next(results)
    results.close()
    assert multiprocessing.active_children() == []


class _RecordsExports:
    """The smoke CNN, noting which process builds each sub-network that is timed."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log
        self.space, self.quality_metric = inner.space, inner.quality_metric

    def timing_module(self, encoding, batch_size):
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return self.inner.timing_module(encoding, batch_size)

    export_module = timing_module


def test_sub_networks_are_exported_by_workers_and_timed_in_this_process(tmp_path, smoke_supernet):
    log = tmp_path / "pids"
    plugin = _RecordsExports(smoke_supernet, log)
    target = TargetConfig(name="cpu-ort", backend="onnxruntime", batch_size=4, warmup=1, min_repeats=3,
                          min_time_s=0.01)
    X = smoke_supernet.space.sample(5, np.random.default_rng(7))
    rows = measure_latency(plugin, X, target, policy=MeasurementPolicy(retries=0, workers=2, max_latency_cv=None))
    assert all(r["error"] == "" and r["values"]["latency@cpu-ort"] > 0 for r in rows)
    pids = [int(line) for line in log.read_text().split()]
    assert len(pids) == 5 and os.getpid() not in pids  # every export in a worker, none repeated here
    log.unlink()
    measure_latency(plugin, X[:2], target, policy=MeasurementPolicy(retries=0, workers=1, max_latency_cv=None))
    assert [int(line) for line in log.read_text().split()] == [os.getpid()] * 2


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
def test_a_model_prepared_from_exported_bytes_computes_what_the_module_does(smoke_supernet, backend_name):
    from linas_lib.backends import build_backend

    backend = build_backend(backend_name, warmup=1, min_repeats=3, min_time_s=0.01)
    module, inputs = smoke_supernet.export_module(smoke_supernet.space.sample(1, 2), 4)
    direct = backend.prepare(module, inputs).runner(inputs[0].numpy())
    from_bytes = backend.prepare(None, inputs, exported=backend.export(module, inputs)).runner(inputs[0].numpy())
    np.testing.assert_allclose(from_bytes, direct, rtol=1e-5, atol=1e-6)
