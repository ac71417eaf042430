"""OpenVINO latency on CPU, FP32 or INT8 (NNCF post-training quantization).

FP32 is requested explicitly (INFERENCE_PRECISION_HINT=f32): on CPUs with bf16
support OpenVINO would otherwise silently run bf16. The model is converted with a
free batch axis; INT8 quantizes that model with single-sample calibration inputs,
then a copy is reshaped to the example batch and compiled for timing. Its runner
runs that same compiled model on any batch (chunks, zero-padded).
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
from types import MappingProxyType

import numpy as np

from linas_lib.backends import backend_registry
from linas_lib.backends.base import Backend, Prepared, chunked_runner
from linas_lib.backends.export import export_onnx, input_names
from linas_lib.backends.telemetry import disable_vendor_telemetry
from linas_lib.backends.timing import fingerprint, to_numpy


def _type_name(value) -> str:
    """'f32' for an OpenVINO element type (or its string form)."""
    name = getattr(value, "get_type_name", None)
    return str(name() if callable(name) else value)


_COMPUTE_LAYERS = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul"}


def runtime_layer_precisions(compiled) -> dict:
    """How many compute layers (conv, fully connected, matmul) the CPU plugin runs in int8, of how many."""
    counts = {"compute_layers": 0, "int8_layers": 0}
    try:
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if info["layerType"].astype(str) in _COMPUTE_LAYERS:
                counts["compute_layers"] += 1
                counts["int8_layers"] += info["runtimePrecision"].astype(str) in ("i8", "u8")
    except Exception:  # the runtime-model introspection API is best effort
        return {}
    return counts


@backend_registry.register("openvino")
class OpenVINOBackend(Backend):
    name = "openvino"
    runtime_package = "openvino"
    devices = ("cpu",)
    precisions = ("fp32", "int8")
    image_roles = MappingProxyType({"cpu": "openvino"})  # OpenVINO and NNCF are in that image only
    device_hint = "OpenVINO has no CUDA device; measure NVIDIA GPUs with the torch or onnxruntime backend"

    def __init__(
        self,
        device: str = "cpu",
        convert: str = "onnx",
        calibration_samples: int = 16,
        fast_bias_correction: bool = True,
        **params,
    ):
        super().__init__(device=device, **params)
        if convert not in ("onnx", "torch"):
            raise ValueError(f"openvino backend: convert {convert!r} is not supported; allowed: onnx, torch")
        if int(calibration_samples) < 1:
            raise ValueError(f"openvino backend: calibration_samples must be >= 1, got {calibration_samples}")
        self.convert, self.calibration_samples = convert, int(calibration_samples)
        self.fast_bias_correction = bool(fast_bias_correction)
        disable_vendor_telemetry()  # before openvino or nncf is imported
        try:
            import openvino as ov
        except ImportError as exc:
            raise RuntimeError(
                f"openvino backend: the openvino package is not installed ({exc}); "
                "install the openvino extra: pip install 'linas[openvino]'"
            ) from None
        if self.precision == "int8":
            try:
                import nncf  # noqa: F401
            except ImportError as exc:
                raise RuntimeError(
                    f"openvino backend: precision 'int8' needs nncf ({exc}); install the openvino extra: "
                    "pip install 'linas[openvino]'"
                ) from None
        self._core = ov.Core()

    @property
    def compile_config(self) -> dict:
        return {
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": self.threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        }

    # ---- model preparation ---------------------------------------------------
    def export(self, module, example_inputs) -> bytes | None:
        return export_onnx(module, example_inputs, dynamic_batch=True) if self.exports else None

    @property
    def exports(self) -> bool:  # convert "torch" hands the module itself to OpenVINO
        return self.convert == "onnx"

    def _to_openvino(self, module, example_inputs, exported: bytes | None = None):
        """An ov.Model with a free batch axis on every input, and which example input feeds each of its inputs."""
        import openvino as ov

        if self.convert == "onnx":
            model = self._core.read_model(self.export(module, example_inputs) if exported is None else exported)
            # the exporter drops unused inputs; the rest keep their names
            position = {name: i for i, name in enumerate(input_names(example_inputs))}
            used = [position[port.get_any_name()] for port in model.inputs]
        else:
            model = ov.convert_model(module.eval(), example_input=example_inputs[0] if len(example_inputs) == 1
                                     else tuple(example_inputs))
            used = list(range(len(model.inputs)))
        model.reshape({port: ov.PartialShape([-1, *example_inputs[k].shape[1:]])
                       for port, k in zip(model.inputs, used)})
        return model, used

    def _quantize(self, model, used: list[int], calibration: list[tuple[np.ndarray, ...]]):
        import nncf

        if any(len(batch) <= max(used) for batch in calibration):
            raise ValueError(f"openvino backend: calibration batches must hold every input of the model ({len(used)})")
        samples = [  # single samples: the model's batch axis is free
            [np.ascontiguousarray(batch[k][j : j + 1]) for k in used]
            for batch in calibration for j in range(batch[0].shape[0])
        ][: self.calibration_samples]
        dataset = nncf.Dataset(samples, lambda s: s[0] if len(s) == 1 else s)
        logger = logging.getLogger("nncf")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:  # NNCF draws progress bars on stdout; keep measurements' logs clean
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return nncf.quantize(
                    model, dataset, subset_size=len(samples), fast_bias_correction=self.fast_bias_correction,
                    target_device=nncf.TargetDevice.CPU,
                ), len(samples)
        finally:
            logger.setLevel(level)

    def to_model(self, module, example_inputs, calibration=None):
        """The deployable ov.Model (free batch axis; INT8-quantized for precision int8)."""
        model, used = self._to_openvino(module, tuple(example_inputs))
        if self.precision == "int8":
            model, _ = self._quantize(model, used, self._calibration_for(calibration))
        return model

    def _prepare(self, module, example_inputs, calibration, exported: bytes | None = None) -> Prepared:
        import openvino as ov

        arrays = [to_numpy(x) for x in example_inputs]
        t0 = time.perf_counter()
        model, used = self._to_openvino(module, example_inputs, exported)
        t1 = time.perf_counter()
        extra: dict = {"convert": self.convert}
        if self.precision == "int8":
            import nncf

            model, n_samples = self._quantize(model, used, calibration)
            extra.update(nncf_version=nncf.__version__, calibration_samples=n_samples)
        t2 = time.perf_counter()
        static = model.clone()
        static.reshape({port: ov.PartialShape(list(arrays[k].shape)) for port, k in zip(static.inputs, used)})
        compiled = self._core.compile_model(static, "CPU", self.compile_config)
        t3 = time.perf_counter()
        actual = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if actual != "f32":
            raise RuntimeError(f"openvino backend: asked for f32 inference precision but the CPU plugin chose {actual}")
        request = compiled.create_infer_request()
        for i, k in enumerate(used):
            request.set_input_tensor(i, ov.Tensor(arrays[k], shared_memory=False))
        runner_request = compiled.create_infer_request()

        def static_call(chunk):
            return runner_request.infer([chunk[k] for k in used])[compiled.output(0)].copy()

        runner = chunked_runner(static_call, [a.shape for a in arrays], [a.dtype for a in arrays])
        fp = fingerprint(
            "openvino", ov.__version__, self.device, self.precision, arrays[0].shape[0], self.threads,
            inference_precision=actual, **runtime_layer_precisions(compiled), **extra,
        )
        timings = {"export_s": t1 - t0, "quantize_s": t2 - t1, "compile_s": t3 - t2}
        return Prepared(request.infer, runner, fp, timings, artifact=compiled)
