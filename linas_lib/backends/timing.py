"""Shared timing discipline: warm up, then repeat until both a count and a time are met.

Also the pieces every backend shares: the hardware fingerprint recorded with each
measurement, validation of the target's settings, and torch-to-numpy input handling.
"""
from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import numpy as np

#: keys every measurement's fingerprint carries (the LUT estimator's describe the table's source)
FINGERPRINT_KEYS = (
    "cpu_model", "cpu_count", "machine", "accelerator", "backend", "backend_version",
    "device", "precision", "batch_size", "threads",
)


@dataclass(frozen=True)
class LatencyResult:
    median_ms: float  # wall clock per call
    cv: float
    p90_ms: float
    repeats: int
    fingerprint: dict = field(default_factory=dict)
    # Process CPU time per call (all threads). With one compute thread it is immune to the
    # preemption that inflates wall time on a shared machine; meaningless for CUDA.
    cpu_median_ms: float = float("nan")
    cpu_cv: float = float("nan")
    load_1m: float = float("nan")  # host 1-minute load average after timing: flags a busy machine


def time_calls(
    run: Callable[[], object], warmup: int, min_repeats: int, min_time_s: float, max_repeats: int = 10_000
) -> LatencyResult:
    for _ in range(warmup):
        run()
    samples: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_repeats and (len(samples) < min_repeats or time.perf_counter() - start < min_time_s):
        c0 = time.process_time()
        t0 = time.perf_counter()
        run()
        t1 = time.perf_counter()
        cpu.append((time.process_time() - c0) * 1e3)
        samples.append((t1 - t0) * 1e3)
    arr, carr = np.asarray(samples), np.asarray(cpu)
    return LatencyResult(
        median_ms=float(np.median(arr)),
        cv=_cv(arr),
        p90_ms=float(np.percentile(arr, 90)),
        repeats=len(arr),
        cpu_median_ms=float(np.median(carr)),
        cpu_cv=_cv(carr),
        load_1m=load_average_1m(),
    )


def _cv(arr: np.ndarray) -> float:
    return float(arr.std() / arr.mean()) if arr.size and arr.mean() > 0 else float("nan")


def load_average_1m() -> float:
    """The host's 1-minute load average (NaN where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return float("nan")


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


def _physical_cores() -> int:
    """Distinct (socket, core) pairs in /proc/cpuinfo; 0 where it does not say."""
    cores, socket = set(), "0"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    socket = value.strip()
                elif key.strip() == "core id":
                    cores.add((socket, value.strip()))
    except OSError:
        pass
    return len(cores)


def _cpu_quota() -> str:
    """The cgroup CPU limit ('2' CPUs, or 'none'): what a pod with resources really gets."""
    for path, split in (("/sys/fs/cgroup/cpu.max", None),  # cgroup v2: "max 100000" or "200000 100000"
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):  # v1
        try:
            with open(path) as fh:
                fields = fh.read().split()
            if split:
                with open(split) as fh:
                    fields += fh.read().split()
            quota, period = fields[:2]
        except (OSError, ValueError):
            continue
        return "none" if quota in ("max", "-1") else f"{int(quota) / int(period):g}"
    return "unknown"


def _affinity() -> int:
    """The CPUs this process may be scheduled on (0 where nothing says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 0


def usable_cpus() -> int:
    """The CPUs this process can keep busy: its affinity, capped by a cgroup quota (a pod's
    CPU limit, which the affinity does not show)."""
    usable, quota = max(1, _affinity()), _cpu_quota()
    if quota not in ("none", "unknown"):
        usable = min(usable, max(1, math.ceil(float(quota))))
    return usable


BUSY_LOAD_PER_CPU = 1.5  # a load average above this many runnable processes per usable CPU: a busy host


def busy_host_note(load_1m: float | None = None) -> str | None:
    """A warning for the start of a long job on a host already busier than its CPUs (None
    on a quieter one), so a slow run is understood: what share of a CPU each of its
    processes will get beside the others, and that latencies timed now will be noisy."""
    load = load_average_1m() if load_1m is None else load_1m
    cpus = usable_cpus()
    if not load > BUSY_LOAD_PER_CPU * cpus:  # NaN (no load average) is not busy either
        return None
    share = cpus / (load + 1)  # beside `load` runnable processes, one of ours (below 1 here)
    return (f"the host is busy (load average {load:.1f} on {cpus} usable CPUs): each process of this run gets "
            f"about {share:.0%} of a CPU, so it runs about {1 / share:.0f}x slower than on a quiet host, and "
            f"latencies timed now will be noisy")


@lru_cache(maxsize=1)
def host_details() -> dict:
    """Recorded with each measurement, never part of the cache key: the OS, Python and how
    many CPUs this process may really use (physical cores, affinity, cgroup quota), so a
    report can say where a latency came from without invalidating earlier measurements."""
    return {"os": platform.platform(), "python": platform.python_version(), "cpu_cores": _physical_cores(),
            "cpu_usable": _affinity(), "cpu_quota": _cpu_quota()}


@lru_cache(maxsize=4)
def gpu_name(index: int = 0) -> str:
    """The CUDA device's name, from torch when it sees one, else from nvidia-smi; "" when none."""
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(index))
    except Exception:  # torch missing or broken CUDA install: fall through to nvidia-smi
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
        names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
        return names[index] if out.returncode == 0 and len(names) > index else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def fingerprint(
    backend: str, backend_version: str, device: str, precision: str, batch_size: int, threads: int, **extra: Any
) -> dict:
    """Where and how a latency was measured: host, accelerator, backend and its settings."""
    return {
        **host_fingerprint(),
        **host_details(),
        "accelerator": (gpu_name() or "cuda (unknown)") if device == "cuda" else "none",
        "backend": backend,
        "backend_version": backend_version,
        "device": device,
        "precision": precision,
        "batch_size": int(batch_size),
        "threads": int(threads),
        **extra,
    }


def check_choice(backend: str, field_name: str, value: str, allowed: Sequence[str], hint: str = "") -> str:
    if value not in allowed:
        raise ValueError(
            f"{backend} backend: {field_name} {value!r} is not supported; allowed: {', '.join(allowed)}"
            + (f" ({hint})" if hint else "")
        )
    return value


def check_timing(backend: str, threads: int, warmup: int, min_repeats: int, min_time_s: float) -> None:
    if int(threads) < 1:
        raise ValueError(f"{backend} backend: threads must be >= 1, got {threads}")
    if int(warmup) < 0 or int(min_repeats) < 1 or float(min_time_s) < 0:
        raise ValueError(
            f"{backend} backend: need warmup >= 0, min_repeats >= 1, min_time_s >= 0; "
            f"got {warmup}, {min_repeats}, {min_time_s}"
        )


def as_tuple(example_inputs: Any) -> tuple:
    return tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)


def to_numpy(value: Any, dtype: Any = None) -> np.ndarray:
    """A contiguous numpy array from a torch tensor or array-like (optionally cast)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return np.ascontiguousarray(arr)


def batch_size_of(example_inputs: Any) -> int:
    return int(as_tuple(example_inputs)[0].shape[0])


def calibration_arrays(calibration: Iterable[Any] | None, backend: str) -> list[tuple[np.ndarray, ...]]:
    """Calibration batches (tuples of tensors/arrays, or bare tensors) as tuples of numpy arrays."""
    if calibration is None:
        return []
    batches = [tuple(to_numpy(v) for v in as_tuple(item)) for item in calibration]
    if any(len(b) == 0 for b in batches):
        raise ValueError(f"{backend} backend: calibration batches must hold at least one input each")
    return batches
