"""Torch module -> ONNX bytes, with the fast TorchScript exporter."""
from __future__ import annotations

import io
import warnings

from linas_lib.backends.timing import as_tuple


def input_names(example_inputs) -> list[str]:
    n = len(as_tuple(example_inputs))
    return ["input"] + [f"input_{i}" for i in range(1, n)]


def export_onnx(module, example_inputs, dynamic_batch: bool = False, opset: int = 17) -> bytes:
    """ONNX bytes of `module` in eval mode; with `dynamic_batch` axis 0 of every input is free."""
    import torch

    inputs = as_tuple(example_inputs)
    names = input_names(inputs)
    dynamic_axes = {name: {0: "batch"} for name in names} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but 20x faster to run
        torch.onnx.export(
            module.eval(), inputs, buf, dynamo=False, input_names=names,
            opset_version=opset, dynamic_axes=dynamic_axes,
        )
    return buf.getvalue()
