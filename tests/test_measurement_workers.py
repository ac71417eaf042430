"""Several forked processes where they disturb no measurement (`measurement.workers`):
sub-networks scored side by side (the same values as one process, each recorded as it
arrives, a worker that dies costing only the sub-network it held), and exported side by
side before they are timed one by one."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from linas_lib.cache import EvaluationCache
from linas_lib.config import MeasurementPolicy, TargetConfig
from linas_lib.objectives import measure_latency, measure_quality
from linas_lib.objectives.workers import WorkerDied, in_parallel
from linas_lib.supernets import build_supernet

# On a GPU host scoring stays in one process (a CUDA context does not survive a fork)
cpu_scoring = pytest.mark.skipif(sys.modules.get("torch") is not None and sys.modules["torch"].cuda.is_available(),
                                 reason="a GPU scores in one process")


class _NotesScorers:
    """A super-network that notes which process scores each sub-network."""

    def __init__(self, inner, log):
        self.inner, self.log = inner, log
        self.space, self.quality_metric = inner.space, inner.quality_metric

    def evaluate(self, encodings):
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return self.inner.evaluate(encodings)


@cpu_scoring
def test_forked_workers_score_the_real_cnn_exactly_as_one_process(tmp_path, smoke_supernet):
    X = smoke_supernet.space.sample(5, np.random.default_rng(3))
    one = measure_quality(smoke_supernet, X, policy=MeasurementPolicy(retries=0, workers=1))
    log = tmp_path / "pids"
    two = measure_quality(_NotesScorers(smoke_supernet, log), X, policy=MeasurementPolicy(retries=0, workers=2))
    assert [r["subnet_id"] for r in two] == [r["subnet_id"] for r in one]  # the input order
    assert [r["values"] for r in two] == [r["values"] for r in one]
    assert all(r["error"] == "" and 0 < r["values"]["accuracy"] <= 1 for r in two)
    pids = [int(line) for line in log.read_text().split()]
    assert len(pids) == 5 and len(set(pids)) == 2 and os.getpid() not in pids


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


@cpu_scoring
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


class _Unrebuildable(Exception):
    """Pickles, but cannot be rebuilt from what it pickles (as some library errors)."""

    def __init__(self, name, version):
        super().__init__(f"{name} is not supported at version {version}")


def test_in_parallel_yields_every_item_once_whatever_happens_to_it():
    def job(i):
        if i == 3:
            raise ValueError("bad item")
        if i == 4:
            raise _Unrebuildable("op", 17)
        if i == 5:
            os._exit(1)
        if i == 6:
            os.kill(os.getpid(), signal.SIGKILL)
        return i * i

    yielded = list(in_parallel(job, 9, workers=2))
    assert sorted(i for i, _ in yielded) == list(range(9))  # each once
    results = dict(yielded)
    assert isinstance(results[3], ValueError)
    assert isinstance(results[4], RuntimeError) and "_Unrebuildable: op is not supported at version 17" in str(results[4])
    assert isinstance(results[5], WorkerDied) and "exited with code 1" in str(results[5])
    assert isinstance(results[6], WorkerDied) and "killed by signal 9 (SIGKILL" in str(results[6])
    assert all(results[i] == i * i for i in range(9) if i not in (3, 4, 5, 6))
    assert list(in_parallel(lambda i: i + 1, 3, workers=1)) == [(0, 1), (1, 2), (2, 3)]


def test_no_more_workers_than_the_cpus_this_process_may_use():
    script = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from linas_lib.objectives.workers import usable_workers; "
              "print(usable_workers(8, 20), usable_workers(8, 20, on_gpu=True))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


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


class _ExportFails(_RecordsExports):
    """Building sub-network `bad` for timing raises an error that cannot cross a pipe."""

    def __init__(self, inner, log, bad):
        super().__init__(inner, log)
        self.bad = bad

    def timing_module(self, encoding, batch_size):
        if self.space.keys(self.space.canonicalize(encoding))[0] == self.bad:
            raise _Unrebuildable("aten::odd", 17)
        return super().timing_module(encoding, batch_size)

    export_module = timing_module


def test_an_export_that_fails_in_a_worker_fails_its_subnet_only(tmp_path, smoke_supernet):
    X = smoke_supernet.space.canonicalize(smoke_supernet.space.sample(4, np.random.default_rng(11)))
    keys = smoke_supernet.space.keys(X)
    plugin = _ExportFails(smoke_supernet, tmp_path / "pids", bad=keys[1])
    target = TargetConfig(name="cpu-ort", backend="onnxruntime", batch_size=4, warmup=1, min_repeats=3,
                          min_time_s=0.01)
    rows = measure_latency(plugin, X, target, policy=MeasurementPolicy(retries=0, workers=2, max_latency_cv=None))
    assert [r["subnet_id"] for r in rows] == keys
    assert "aten::odd is not supported at version 17" in rows[1]["error"]
    assert all(r["error"] == "" and r["values"]["latency@cpu-ort"] > 0 for i, r in enumerate(rows) if i != 1)


class _NoCalibrationData:
    """A plugin without calibration_inputs(), which an INT8 target needs."""

    def __init__(self, inner):
        self.space, self.quality_metric = inner.space, inner.quality_metric
        self.export_module = inner.export_module


def test_a_target_that_cannot_be_set_up_says_why_on_every_row(smoke_supernet):
    target = TargetConfig(name="int8", backend="openvino", precision="int8", batch_size=4)
    X = smoke_supernet.space.sample(3, np.random.default_rng(5))
    rows = measure_latency(_NoCalibrationData(smoke_supernet), X, target,
                           policy=MeasurementPolicy(retries=0, workers=2))
    assert all("_NoCalibrationData plugin has no calibration_inputs()" in r["error"] for r in rows)


needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed")


@pytest.mark.parametrize("backend_name", ["onnxruntime", pytest.param("openvino", marks=needs_openvino)])
def test_a_model_prepared_from_exported_bytes_computes_what_the_module_does(smoke_supernet, backend_name):
    from linas_lib.backends import build_backend

    backend = build_backend(backend_name, warmup=1, min_repeats=3, min_time_s=0.01)
    module, inputs = smoke_supernet.export_module(smoke_supernet.space.sample(1, 2), 4)
    direct = backend.prepare(module, inputs).runner(inputs[0].numpy())
    from_bytes = backend.prepare(None, inputs, exported=backend.export(module, inputs)).runner(inputs[0].numpy())
    np.testing.assert_allclose(from_bytes, direct, rtol=1e-5, atol=1e-6)
