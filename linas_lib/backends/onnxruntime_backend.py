"""ONNX Runtime latency on CPU: export once, pin threads, time the session."""
from __future__ import annotations

import io
import warnings

import numpy as np

from linas_lib.backends import backend_registry
from linas_lib.backends.timing import LatencyResult, host_fingerprint, time_calls


def export_onnx(module, example_inputs) -> bytes:
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but 20x faster to run
        torch.onnx.export(module.eval(), example_inputs, buf, dynamo=False, input_names=["input"], opset_version=17)
    return buf.getvalue()


@backend_registry.register("onnxruntime")
class OnnxRuntimeBackend:
    def __init__(
        self,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int = 1,
        warmup: int = 10,
        min_repeats: int = 30,
        min_time_s: float = 0.3,
        **_: object,
    ):
        if device != "cpu":
            raise ValueError(f"onnxruntime backend: device {device!r} is not supported here; allowed: cpu")
        if precision != "fp32":
            raise ValueError(f"onnxruntime backend: precision {precision!r} is not supported; allowed: fp32")
        self.threads, self.warmup, self.min_repeats, self.min_time_s = threads, warmup, min_repeats, min_time_s

    def measure(self, module, example_inputs) -> LatencyResult:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(export_onnx(module, example_inputs), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(example_inputs[0].numpy())}
        result = time_calls(lambda: session.run(None, feed), self.warmup, self.min_repeats, self.min_time_s)
        fingerprint = {
            **host_fingerprint(),
            "backend": "onnxruntime",
            "backend_version": ort.__version__,
            "device": "cpu",
            "precision": "fp32",
            "batch_size": int(example_inputs[0].shape[0]),
            "threads": self.threads,
        }
        return LatencyResult(result.median_ms, result.cv, result.p90_ms, result.repeats, fingerprint)
