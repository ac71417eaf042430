"""NAS-Bench-201 with injected faults and a ledger of every real measurement.

A plugin file (`supernet.plugin_file`) for the reliability tests and `bench/faults.py`.
Values come from the NAS-Bench-201 table, so every measurement is deterministic and a
resumed run can be compared with an uninterrupted one exactly. Faults are drawn at
random per call from `LINAS_FAULTS` (JSON):

    {"seed": 1, "exception": 0.05, "nan": 0.05, "kill": 0.01, "sleep_s": 0.005}

- exception: the measurement raises (a backend crash);
- nan: it returns NaN;
- kill: the process SIGKILLs itself in the middle of the measurement;
- sleep_s: each measurement takes this long (so outside kills land mid-iteration).

Each measurement that completes appends "<kind> <subnet key> <pid>" to
`LINAS_FAULT_LEDGER`, so the bench can count measurements taken twice; each injected
fault appends "fault:<what> <subnet key> <pid>".
"""
from __future__ import annotations

import json
import os
import random
import signal
import time

from linas_lib.supernets import supernet_registry
from linas_lib.supernets.nasbench201 import NASBench201Supernet, TableEntry


def _faults() -> dict:
    return json.loads(os.environ.get("LINAS_FAULTS", "{}"))


_rng = random.Random(f"{_faults().get('seed', 0)}-{os.getpid()}-{time.time_ns()}")


def _log(line: str) -> None:
    ledger = os.environ.get("LINAS_FAULT_LEDGER")
    if ledger:
        with open(ledger, "a") as fh:  # O_APPEND: whole lines, even from several processes
            fh.write(f"{line} {os.getpid()}\n")


def _measure(kind: str, key: str, value):
    faults = _faults()
    if faults.get("sleep_s"):
        time.sleep(faults["sleep_s"])
    if _rng.random() < faults.get("kill", 0.0):
        _log(f"fault:kill {key}")
        os.kill(os.getpid(), signal.SIGKILL)
    if _rng.random() < faults.get("exception", 0.0):
        _log(f"fault:exception {key}")
        raise RuntimeError(f"injected backend failure measuring {kind} of {key}")
    if _rng.random() < faults.get("nan", 0.0):
        _log(f"fault:nan {key}")
        return float("nan")
    _log(f"{kind} {key}")
    return value


@supernet_registry.register("faulty_nasbench201")
class FaultyNASBench201(NASBench201Supernet):
    def evaluate(self, encodings):
        (row,) = super().evaluate(encodings)
        key = self.space.keys(encodings)[0]
        return [{**row, "accuracy": _measure("quality", key, row["accuracy"])}]

    def export_module(self, encoding, batch_size):
        entry, inputs = super().export_module(encoding, batch_size)
        return _FaultyEntry(self, entry.encoding), inputs


class _FaultyEntry(TableEntry):
    def table_latency(self) -> float:
        key = self.plugin.space.keys([list(self.encoding)])[0]
        return _measure("latency", key, super().table_latency())

