"""ONNX Runtime latency on CPU or CUDA: export once, pin threads, time the session."""
from __future__ import annotations

import time

from linas_lib.backends import backend_registry
from linas_lib.backends.base import Backend, Prepared, chunked_runner
from linas_lib.backends.export import export_onnx, input_names
from linas_lib.backends.timing import fingerprint, to_numpy

__all__ = ["OnnxRuntimeBackend", "export_onnx"]


@backend_registry.register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    runtime_package = "onnxruntime"
    devices = ("cpu", "cuda")
    precisions = ("fp32",)
    precision_hint = "INT8 is measured with the openvino backend"

    def __init__(self, device: str = "cpu", **params):
        super().__init__(device=device, **params)
        import onnxruntime as ort

        if self.device == "cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise RuntimeError(
                    "onnxruntime backend: device 'cuda' needs the CUDAExecutionProvider, which this onnxruntime "
                    f"build ({ort.__version__}) lacks (available: {', '.join(available)}); install onnxruntime-gpu "
                    "built for the machine's CUDA, or measure on device 'cpu'"
                )

    def _session(self, onnx_bytes: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.device == "cuda":
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        if self.device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError(
                "onnxruntime backend: the CUDAExecutionProvider could not be initialised (no usable GPU or "
                f"CUDA/cuDNN libraries); the session fell back to {session.get_providers()}"
            )
        return session

    def export(self, module, example_inputs) -> bytes:
        return export_onnx(module, example_inputs)

    def _prepare(self, module, example_inputs, calibration, exported: bytes | None = None) -> Prepared:
        import onnxruntime as ort

        t0 = time.perf_counter()
        onnx_bytes = self.export(module, example_inputs) if exported is None else exported
        t1 = time.perf_counter()
        session = self._session(onnx_bytes)
        t2 = time.perf_counter()
        arrays = [to_numpy(x) for x in example_inputs]
        # the exporter drops inputs the graph does not use: feed the session's inputs by name
        position = {name: i for i, name in enumerate(input_names(example_inputs))}
        used = [(i.name, position[i.name]) for i in session.get_inputs()]
        feed = {name: arrays[k] for name, k in used}
        output = session.get_outputs()[0].name

        def static_call(chunk):
            return session.run([output], {name: chunk[k] for name, k in used})[0]

        runner = chunked_runner(static_call, [a.shape for a in arrays], [a.dtype for a in arrays])
        fp = fingerprint(
            "onnxruntime", ort.__version__, self.device, self.precision, arrays[0].shape[0], self.threads,
            providers=session.get_providers(),
        )
        return Prepared(lambda: session.run(None, feed), runner, fp, {"export_s": t1 - t0, "compile_s": t2 - t1},
                        artifact=session)
