"""Latency read from a benchmark table instead of timed (tabular benchmarks, e.g. NAS-Bench-201).

A tabular super-network's `export_module(encoding, batch_size)` returns a table entry
(anything with `table_latency() -> ms` and `table_source() -> dict`) instead of a
torch module; this backend hands back that value as the median, with CV 0 and one
"repeat". The fingerprint says where the number comes from (backend `tabular`,
`table_source`: package, version, benchmark, dataset), so a tabular latency can never
pass for one measured here.
"""
from __future__ import annotations

import time

from linas_lib.backends import backend_registry
from linas_lib.backends.base import Backend, Prepared
from linas_lib.backends.timing import LatencyResult

TABULAR_VERSION = "linas-tabular/1"


def _not_runnable(*_args, **_kwargs):
    raise NotImplementedError("tabular backend: a table entry has no runnable model")


@backend_registry.register("tabular")
class TabularBackend(Backend):
    """Latency from the super-network's own table (`module.table_latency()`)."""

    name = "tabular"
    devices = ("cpu", "cuda")
    precisions = ("fp32",)
    timed = False

    @property
    def needs_calibration(self) -> bool:
        return False

    def _entry(self, module):
        if not (callable(getattr(module, "table_latency", None)) and callable(getattr(module, "table_source", None))):
            raise TypeError(
                f"tabular backend: {type(module).__name__} is not a table entry; only tabular super-networks "
                "(e.g. nasbench201) give one from export_module(); use a measuring backend "
                "(onnxruntime, torch, openvino) or lut for real networks"
            )
        return module

    def _fingerprint(self, entry, example_inputs) -> dict:
        source = dict(entry.table_source())
        # the hardware is the table's, not this host's: say so instead of fingerprinting the host
        where = f"n/a (table: {source.get('benchmark', '?')} {source.get('dataset', '')})".replace(" )", ")")
        return {
            "cpu_model": where,
            "cpu_count": 0,
            "machine": where,
            "accelerator": where,
            "backend": "tabular",
            "backend_version": TABULAR_VERSION,
            "device": self.device,
            "precision": self.precision,
            "batch_size": 0,  # whatever the table was measured with
            "threads": self.threads,
            "table_source": source,
        }

    def prepare(self, module, example_inputs=(), calibration=None) -> Prepared:
        entry = self._entry(module)
        return Prepared(call=lambda: None, runner=_not_runnable, fingerprint=self._fingerprint(entry, example_inputs),
                        artifact=entry)

    def time(self, prepared: Prepared) -> LatencyResult:
        t0 = time.perf_counter()
        ms = float(prepared.artifact.table_latency())
        self.last_timings_s = {"export_s": 0.0, "compile_s": 0.0, "measure_s": time.perf_counter() - t0}
        return LatencyResult(ms, 0.0, ms, 1, dict(prepared.fingerprint))

    def measure(self, module, example_inputs=(), calibration=None) -> LatencyResult:
        return self.time(self.prepare(module, example_inputs, calibration))

    def compiled_runner(self, *args, **kwargs):
        raise NotImplementedError("tabular backend: a table entry has no runnable model")
