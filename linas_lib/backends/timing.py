"""Shared timing discipline: warm up, then repeat until both a count and a time are met."""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class LatencyResult:
    median_ms: float
    cv: float
    p90_ms: float
    repeats: int
    fingerprint: dict = field(default_factory=dict)


def time_calls(
    run: Callable[[], object], warmup: int, min_repeats: int, min_time_s: float, max_repeats: int = 10_000
) -> LatencyResult:
    for _ in range(warmup):
        run()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_repeats and (len(samples) < min_repeats or time.perf_counter() - start < min_time_s):
        t0 = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(samples)
    return LatencyResult(
        median_ms=float(np.median(arr)),
        cv=float(arr.std() / arr.mean()) if arr.mean() > 0 else float("nan"),
        p90_ms=float(np.percentile(arr, 90)),
        repeats=len(arr),
    )


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_fingerprint() -> dict:
    return {"cpu_model": cpu_model(), "cpu_count": os.cpu_count() or 0, "machine": platform.machine()}
