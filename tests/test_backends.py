"""Latency backends on a briefly trained elastic_cnn: torch, ONNX Runtime, OpenVINO FP32/INT8, LUT.

No timing thresholds: results must be positive and finite, fingerprints complete,
FP32 really f32, INT8 close to FP32, and the lookup table must rank sub-networks
like the backend it was measured with.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linas_lib.backends import backend_names, build_backend  # noqa: E402
from linas_lib.backends.base import CalibrationRequiredError  # noqa: E402
from linas_lib.backends.lut import LatencyTable, MissingLayerError, build_table, trace_units  # noqa: E402
from linas_lib.backends.timing import FINGERPRINT_KEYS  # noqa: E402
from linas_lib.config import TargetConfig  # noqa: E402
from linas_lib.supernets import build_supernet, cache_dir  # noqa: E402

BATCH = 4
FAST = dict(warmup=2, min_repeats=5, min_time_s=0.02)  # no timing thresholds here: keep measurements short
HAS_OPENVINO = all(__import__("importlib").util.find_spec(m) for m in ("openvino", "nncf"))
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino/nncf not installed")


class ExportCache:
    """The plugin's export_module, memoized: each sub-network is extracted and recalibrated once."""

    def __init__(self, plugin):
        self.plugin, self.space, self._cache = plugin, plugin.space, {}

    def export_module(self, encoding, batch_size):
        key = (np.asarray(encoding, dtype=np.int64).tobytes(), batch_size)
        if key not in self._cache:
            self._cache[key] = self.plugin.export_module(encoding, batch_size)
        return self._cache[key]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("LINAS_CACHE", str(tmp_path_factory.mktemp("linas-cache")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # eager conv on a shared 2-core box: one thread is several times faster
    try:
        supernet = build_supernet("elastic_cnn", epochs=1, train_limit=512, progress=False, calibration_images=200)
        supernet.load(supernet.prepare(None, cache_dir()))
        yield ExportCache(supernet)
    finally:
        torch.set_num_threads(threads)
        patch.undo()


@pytest.fixture(scope="module")
def smallest(plugin):
    encoding = np.zeros(plugin.space.n_var, dtype=np.int64)
    module, inputs = plugin.export_module(encoding, BATCH)
    return encoding, module, inputs


def chain(space):
    """Seven nested elastic_cnn sub-networks, smallest to largest: each grows expand, kernel or depth.

    Each one does clearly more work than the one before, so the true ranking is known
    and a shared, noisy CI machine cannot blur it.
    """
    x = np.zeros(space.n_var, dtype=np.int64)
    steps = [("expand", 1), ("kernel", 1), ("depth", 1), ("expand", 2), ("kernel", 2), ("depth", 2)]
    out = [x.copy()]
    for kind, level in steps:
        for i, name in enumerate(space.names):
            if name.endswith(kind):
                x[i] = level
        out.append(x.copy())
    return space.canonicalize(np.array(out))


def check_result(result, backend, precision="fp32"):
    assert math.isfinite(result.median_ms) and result.median_ms > 0
    assert math.isfinite(result.p90_ms) and result.p90_ms >= result.median_ms * 0.999
    assert math.isfinite(result.cv) and result.cv >= 0
    fp = result.fingerprint
    missing = [k for k in FINGERPRINT_KEYS if k not in fp]
    assert not missing, f"fingerprint lacks {missing}"
    assert fp["backend"] == backend and fp["backend_version"]
    assert fp["cpu_model"] and fp["cpu_count"] > 0
    assert fp["precision"] == precision and fp["batch_size"] == BATCH and fp["threads"] == 1
    assert fp["device"] == "cpu" and fp["accelerator"] == "none"


# ---- registry and settings ------------------------------------------------------------
def test_registry_and_target_config_build_every_backend():
    assert {"torch", "onnxruntime", "openvino", "lut"} <= set(backend_names())
    for backend, precision in [("torch", "fp32"), ("onnxruntime", "fp32"), ("lut", "fp32")] + (
        [("openvino", "fp32"), ("openvino", "int8")] if HAS_OPENVINO else []
    ):
        target = TargetConfig(name="t", backend=backend, precision=precision)
        built = build_backend(target.backend, **target.backend_params())
        assert built.precision == precision and built.threads == 1
    with pytest.raises(ValueError, match="precision 'int8' is not supported; allowed: fp32"):
        build_backend("onnxruntime", precision="int8")


# ---- measuring backends ---------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", "onnxruntime", pytest.param("openvino", marks=needs_openvino)])
def test_fp32_backend_measures_a_subnetwork(backend, smallest):
    _, module, inputs = smallest
    threads = torch.get_num_threads()
    result = build_backend(backend, **FAST).measure(module, inputs)
    check_result(result, backend)
    assert result.repeats >= FAST["min_repeats"]
    assert torch.get_num_threads() == threads  # the torch backend pins its threads and restores them


def test_torch_backend_restores_the_thread_count(smallest):
    _, module, inputs = smallest
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        build_backend("torch", threads=1, **FAST).measure(module, inputs)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@needs_openvino
def test_openvino_fp32_really_runs_f32(smallest):
    _, module, inputs = smallest
    backend = build_backend("openvino", precision="fp32", **FAST)
    prepared = backend.prepare(module, inputs)
    hint = prepared.artifact.get_property("INFERENCE_PRECISION_HINT")
    assert getattr(hint, "get_type_name", lambda: str(hint))() == "f32"
    assert prepared.artifact.get_property("INFERENCE_NUM_THREADS") == 1
    result = backend.time(prepared)
    assert result.fingerprint["inference_precision"] == "f32"
    assert result.fingerprint["int8_layers"] == 0 and result.fingerprint["compute_layers"] > 0


@needs_openvino
def test_int8_needs_calibration_data(smallest):
    _, module, inputs = smallest
    backend = build_backend("openvino", precision="int8", **FAST)
    assert backend.needs_calibration
    with pytest.raises(CalibrationRequiredError, match="int8.*calibration data.*calibration_inputs"):
        backend.measure(module, inputs)
    with pytest.raises(CalibrationRequiredError):
        backend.compiled_runner(module, inputs)


@needs_openvino
def test_int8_measures_and_agrees_with_fp32(plugin, smallest):
    encoding, module, inputs = smallest
    supernet = plugin.plugin
    calibration = supernet.calibration_inputs(BATCH, 4)

    int8 = build_backend("openvino", precision="int8", **FAST)
    int8.set_calibration(calibration)  # the setter route; measure(..., calibration=...) works too
    prepared = int8.prepare(module, inputs)
    result = int8.time(prepared)
    check_result(result, "openvino", "int8")
    assert result.fingerprint["int8_layers"] > 0  # the CPU plugin really runs int8 kernels
    assert result.fingerprint["calibration_samples"] == 4 * BATCH

    fp32_run = build_backend("openvino", precision="fp32", **FAST).compiled_runner(module, inputs)
    images = supernet._splits()[1].x
    a, b = fp32_run(images), prepared.runner(images)  # any batch size: 2000 images through a batch-4 model
    assert a.shape == b.shape == (len(images), 10)
    assert not np.array_equal(a, b)  # quantized, not a copy of FP32
    agreement = float((a.argmax(1) == b.argmax(1)).mean())
    corr = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert agreement >= 0.9 and corr > 0.95, (agreement, corr)
    # accuracy of the INT8 model through the plugin's own scoring of an exported forward pass
    acc8 = supernet.evaluate_exported(encoding, prepared.runner)["accuracy"]
    acc32 = supernet.evaluate_exported(encoding, fp32_run)["accuracy"]
    assert abs(acc8 - acc32) <= 0.05


def test_onnxruntime_and_torch_runners_agree(smallest):
    _, module, inputs = smallest
    x = np.random.default_rng(0).standard_normal((7, *inputs[0].shape[1:])).astype(np.float32)
    ort = build_backend("onnxruntime", **FAST).compiled_runner(module, inputs)(x)
    eager = build_backend("torch", **FAST).compiled_runner(module, inputs)(x)
    assert ort.shape == (7, 10)
    np.testing.assert_allclose(ort, eager, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: CUDA must work, not fail")
def test_cuda_without_a_gpu_fails_clearly():
    with pytest.raises(RuntimeError, match="device 'cuda' requested but CUDA is unavailable"):
        build_backend("torch", device="cuda")
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
        build_backend("onnxruntime", device="cuda")
    if HAS_OPENVINO:
        with pytest.raises(ValueError, match="OpenVINO has no CUDA device"):
            build_backend("openvino", device="cuda")


# ---- lookup tables -----------------------------------------------------------------
@pytest.fixture(scope="module")
def lut_setup(plugin, tmp_path_factory):
    encodings = chain(plugin.space)
    ort = build_backend("onnxruntime", warmup=3, min_repeats=10, min_time_s=0.1)
    table = build_table(plugin, encodings, ort, batch_size=BATCH, fit_samples=3)
    path = table.save(tmp_path_factory.mktemp("lut") / "table.json")
    return encodings, ort, table, path


def test_lut_ranks_subnetworks_like_onnxruntime(plugin, lut_setup):
    from scipy.stats import kendalltau

    encodings, ort, _, path = lut_setup
    lut = build_backend("lut", table=path, **FAST)
    direct, predicted = [], []
    for encoding in encodings:
        module, inputs = plugin.export_module(encoding, BATCH)
        direct.append(ort.measure(module, inputs).median_ms)
        result = lut.measure(module, inputs)
        check_result(result, "lut")
        predicted.append(result.median_ms)
    tau = kendalltau(direct, predicted).statistic
    assert tau > 0.6, (tau, direct, predicted)
    fp = result.fingerprint
    assert fp["table_source"]["backend"] == "onnxruntime" and fp["table"] == path


def test_lut_table_round_trip_and_unknown_layers(plugin, lut_setup, monkeypatch):
    encodings, _, table, path = lut_setup
    loaded = LatencyTable.load(path)
    assert loaded.entries == table.entries and loaded.overhead_ms == table.overhead_ms
    assert loaded.digest() == table.digest()
    module, inputs = plugin.export_module(encodings[0], BATCH)
    assert loaded.predict(module, inputs) == pytest.approx(table.predict(module, inputs))

    # the table came from the environment, as a target's pod would get it
    monkeypatch.setenv("LINAS_LUT_TABLE", path)
    lut = build_backend("lut")
    other = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 3), torch.nn.ReLU())
    with pytest.raises(MissingLayerError, match=r"(?s)no entry for 1 unit signature.*Conv2d\(1, 5, kernel_size=\(3, 3\)"):
        lut.measure(other, (torch.randn(BATCH, 1, 28, 28),))
    with pytest.raises(MissingLayerError, match="in=2x1x28x28"):  # a batch size the table never saw
        lut.measure(module, (torch.randn(2, 1, 28, 28),))
    with pytest.raises(ValueError, match="(?s)measured under other settings.*threads"):
        build_backend("lut", table=path, threads=4).measure(module, inputs)
    monkeypatch.delenv("LINAS_LUT_TABLE")
    with pytest.raises(ValueError, match="no latency table"):
        build_backend("lut").measure(module, inputs)


def test_units_fuse_conv_bn_activation(smallest):
    _, module, inputs = smallest
    units = trace_units(module, inputs)
    assert units[0].signature.startswith("Conv2d(1, 16") and "BatchNorm2d" in units[0].signature
    assert "ReLU" in units[0].signature and units[0].signature.endswith(f"@ in={BATCH}x1x28x28")
    assert sum(u.signature.startswith("StaticMBConv") for u in units) == 6  # smallest: depth 2 in 3 stages
