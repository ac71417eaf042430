"""What every measuring backend shares: settings, calibration data, timing and runners.

A backend turns (module, example inputs) into a `Prepared` model: a zero-argument
call bound to the example inputs (what is timed) and a numpy-in/numpy-out runner of
the very same compiled artifact that accepts any batch size (what accuracy checks
call). `measure()` prepares and times; `compiled_runner()` prepares and hands out
the runner; `prepare()` + `time()` give both from one export/quantization.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from linas_lib.backends.timing import (
    LatencyResult,
    as_tuple,
    calibration_arrays,
    check_choice,
    check_timing,
    time_calls,
)


class CalibrationRequiredError(ValueError):
    """An INT8 target was asked to measure without calibration data."""


@dataclass
class Prepared:
    call: Callable[[], object]  # one inference on the bound example inputs (timed)
    runner: Callable[..., np.ndarray]  # any-batch numpy runner of the same artifact
    fingerprint: dict
    timings_s: dict = field(default_factory=dict)  # export_s, quantize_s, compile_s
    artifact: Any = None  # the compiled model/session, for inspection


def chunked_runner(
    static_call: Callable[[tuple[np.ndarray, ...]], np.ndarray], example_shapes: Sequence[tuple[int, ...]],
    dtypes: Sequence[np.dtype],
) -> Callable[..., np.ndarray]:
    """Run a fixed-batch model on any batch: split into chunks, zero-pad the last one.

    Padding is safe for eval-mode networks, whose samples do not interact.
    """
    batch = int(example_shapes[0][0])

    def run(*inputs: Any) -> np.ndarray:
        arrays = [np.ascontiguousarray(np.asarray(x), dtype=dt) for x, dt in zip(inputs, dtypes)]
        if len(arrays) != len(example_shapes):
            raise ValueError(f"runner expects {len(example_shapes)} input(s), got {len(arrays)}")
        n = arrays[0].shape[0]
        for a, shape in zip(arrays, example_shapes):
            if tuple(a.shape[1:]) != tuple(shape[1:]) or a.shape[0] != n:
                raise ValueError(f"runner: input of shape {a.shape} does not match (N, {', '.join(map(str, shape[1:]))})")
        outs = []
        for start in range(0, n, batch):
            chunk = [a[start : start + batch] for a in arrays]
            got = chunk[0].shape[0]
            if got < batch:
                chunk = [np.concatenate([c, np.zeros((batch - got, *c.shape[1:]), c.dtype)]) for c in chunk]
            outs.append(np.asarray(static_call(tuple(chunk)))[:got])
        return np.concatenate(outs) if outs else np.zeros((0,))

    return run


class Backend:
    """Base class: validated settings, optional calibration data, the timing discipline."""

    name = "?"
    runtime_package = ""  # the distribution whose version is part of the hardware fingerprint
    devices: Sequence[str] = ("cpu",)
    precisions: Sequence[str] = ("fp32",)
    # the container image a target's latency pod runs in, per device: a role of
    # components.images (base: CPU torch + ONNX Runtime, cuda: CUDA builds, openvino)
    image_roles: Mapping[str, str] = MappingProxyType({"cpu": "base", "cuda": "cuda"})
    device_hint = ""
    precision_hint = ""
    timed = True  # False: the latency is looked up, not timed (re-timing a noisy one is pointless)

    @classmethod
    def cache_key_extra(cls, params: dict[str, Any]) -> dict[str, Any]:
        """What else determines this backend's latencies, beyond the target's settings (a LUT's table)."""
        return {}

    def __init__(
        self,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int = 1,
        warmup: int = 10,
        min_repeats: int = 30,
        min_time_s: float = 0.3,
        calibration: Iterable[Any] | None = None,
        **_: object,
    ):
        self.device = check_choice(self.name, "device", device, self.devices, self.device_hint)
        self.precision = check_choice(self.name, "precision", precision, self.precisions, self.precision_hint)
        check_timing(self.name, threads, warmup, min_repeats, min_time_s)
        self.threads, self.warmup = int(threads), int(warmup)
        self.min_repeats, self.min_time_s = int(min_repeats), float(min_time_s)
        self._calibration: list | None = None
        self.set_calibration(calibration)
        self.last_timings_s: dict = {}

    @classmethod
    def runtime_version(cls) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(cls.runtime_package) if cls.runtime_package else ""
        except PackageNotFoundError:
            return ""

    # ---- calibration (INT8) ---------------------------------------------------
    @property
    def needs_calibration(self) -> bool:
        return self.precision == "int8"

    def set_calibration(self, batches: Iterable[Any] | None) -> None:
        """Calibration input batches (tuples of tensors/arrays), e.g. plugin.calibration_inputs(...)."""
        self._calibration = calibration_arrays(batches, self.name) or None

    def _calibration_for(self, calibration: Iterable[Any] | None) -> list[tuple[np.ndarray, ...]]:
        batches = calibration_arrays(calibration, self.name) if calibration is not None else self._calibration
        if self.needs_calibration and not batches:
            raise CalibrationRequiredError(
                f"{self.name} backend: precision 'int8' needs calibration data for post-training quantization; "
                "pass measure(module, inputs, calibration=supernet.calibration_inputs(batch_size, n_batches)) "
                "or call backend.set_calibration(...) first"
            )
        return batches or []

    # ---- the API ---------------------------------------------------------------
    def export(self, module, example_inputs) -> bytes | None:
        """The part of `prepare` that needs only torch, as portable bytes (an ONNX model),
        so that another process can do it; None where there is no such part."""
        return None

    @property
    def exports(self) -> bool:
        """Whether `export` gives bytes that `prepare(None, inputs, exported=...)` takes."""
        return type(self).export is not Backend.export

    def prepare(self, module, example_inputs, calibration: Iterable[Any] | None = None,
                exported: bytes | None = None) -> Prepared:
        """With `exported` (what `export` gave for this module and these inputs), `module`
        is not needed."""
        batches = self._calibration_for(calibration)
        if exported is not None:
            return self._prepare(module, as_tuple(example_inputs), batches, exported=exported)
        return self._prepare(module, as_tuple(example_inputs), batches)

    def _prepare(self, module, example_inputs: tuple, calibration: list[tuple[np.ndarray, ...]]) -> Prepared:
        raise NotImplementedError

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Thread pinning around the timed loop (backends that pin at compile time need nothing)."""
        yield

    def time(self, prepared: Prepared) -> LatencyResult:
        t0 = time.perf_counter()
        with self.pinned():
            result = time_calls(prepared.call, self.warmup, self.min_repeats, self.min_time_s)
        self.last_timings_s = {**prepared.timings_s, "measure_s": time.perf_counter() - t0}
        return replace(result, fingerprint=dict(prepared.fingerprint))

    def measure(self, module, example_inputs, calibration: Iterable[Any] | None = None) -> LatencyResult:
        return self.time(self.prepare(module, example_inputs, calibration))

    def compiled_runner(self, module, example_inputs, calibration: Iterable[Any] | None = None):
        """`run(*arrays) -> np.ndarray` (first output) of the compiled model, for any batch size."""
        return self.prepare(module, example_inputs, calibration).runner
