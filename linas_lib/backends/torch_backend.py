"""Eager PyTorch latency on CPU (threads pinned, then restored) or CUDA (synchronised calls)."""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from linas_lib.backends import backend_registry
from linas_lib.backends.base import Backend, Prepared
from linas_lib.backends.timing import fingerprint


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@backend_registry.register("torch")
class TorchBackend(Backend):
    name = "torch"
    runtime_package = "torch"
    devices = ("cpu", "cuda")
    precisions = ("fp32",)
    precision_hint = "INT8 is measured with the openvino backend"

    def __init__(self, device: str = "cpu", **params):
        super().__init__(device=device, **params)
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                built = torch.version.cuda or "none (CPU-only build)"
                raise RuntimeError(
                    f"torch backend: device 'cuda' requested but CUDA is unavailable (torch {torch.__version__}, "
                    f"CUDA runtime: {built}, visible GPUs: {torch.cuda.device_count()}); "
                    "measure on device 'cpu' or run on a GPU node with a CUDA build of torch"
                )

    @contextmanager
    def pinned(self) -> Iterator[None]:
        with torch_threads(self.threads):
            yield

    def _prepare(self, module, example_inputs, calibration) -> Prepared:
        import torch

        t0 = time.perf_counter()
        if self.device == "cuda":
            module = copy.deepcopy(module).to("cuda")
            example_inputs = tuple(x.to("cuda") for x in example_inputs)
            sync = torch.cuda.synchronize
        else:
            sync = lambda: None  # noqa: E731
        module = module.eval()
        dtype = next((p.dtype for p in module.parameters()), torch.float32)

        def call():
            with torch.inference_mode():
                module(*example_inputs)
            sync()  # every timed call ends synchronised, so the next one starts synchronised

        sync()

        def runner(*arrays) -> np.ndarray:
            tensors = [
                torch.as_tensor(np.asarray(a)).to(device=self.device, dtype=ref.dtype)
                for a, ref in zip(arrays, example_inputs)
            ]
            with torch_threads(self.threads), torch.inference_mode():
                out = module(*tensors)
            out = out[0] if isinstance(out, (tuple, list)) else out
            return out.float().cpu().numpy()

        fp = fingerprint(
            "torch", torch.__version__, self.device, self.precision, int(example_inputs[0].shape[0]), self.threads,
            dtype=str(dtype).removeprefix("torch."),
        )
        return Prepared(call, runner, fp, {"export_s": 0.0, "compile_s": time.perf_counter() - t0},
                        artifact=module)
