"""One real measurement, attempted under a policy: retries with backoff, a time-out,
out-of-memory handling and value checks. It returns values or the reason for giving up,
and never raises for a measurement failure, so a batch always completes."""
from __future__ import annotations

import gc
import math
import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from linas_lib.api.objective import ColumnKey

# Wrong input fails the same way every time: retrying it only wastes the budget.
NOT_RETRIED = (ValueError, TypeError, KeyError)


class MeasurementTimeout(TimeoutError):
    pass


class InvalidMeasurement(RuntimeError):
    """A measurement that ran but returned a value that cannot be true."""


# the latency columns that are times or ratios of times: never zero
_POSITIVE_STATISTICS = (None, "p90", "norm")


def _must_be_positive(name: str) -> bool:
    key = ColumnKey.parse(name)
    return key.kind == "latency" and key.statistic in _POSITIVE_STATISTICS


def check_values(values: dict[str, float]) -> dict[str, float]:
    """NaN and infinity are never valid; latencies must be > 0, everything else >= 0."""
    for name, value in values.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InvalidMeasurement(f"{name} = {value!r} is not a number") from None
        if not math.isfinite(v):
            raise InvalidMeasurement(f"{name} = {v}")
        if _must_be_positive(name) and v <= 0:
            raise InvalidMeasurement(f"{name} = {v} (must be > 0)")
        if v < 0:
            raise InvalidMeasurement(f"{name} = {v} (must be >= 0)")
    return values


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """SIGALRM-based, so it interrupts Python code and returns from C calls; only the main
    thread can take signals, elsewhere the measurement runs unlimited."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise MeasurementTimeout(f"{what} timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # no torch or no CUDA: nothing to free
        pass


def attempt(
    measure: Callable[[], dict[str, float]], policy, what: str, sleep: Callable[[float], None] = time.sleep
) -> tuple[dict[str, float], str, int]:
    """(values, error, attempts): values is {} and error says why after the last try."""
    tries = policy.retries + 1
    error = ""
    for k in range(tries):
        try:
            with time_limit(policy.timeout_s, what):
                return check_values(measure()), "", k + 1
        except NOT_RETRIED as exc:
            return {}, f"{what}: {type(exc).__name__}: {exc}", k + 1
        except Exception as exc:  # backend crash, time-out, invalid value, CUDA OOM: retried
            if _is_oom(exc):
                _free_memory()
                error = f"{what}: out of memory ({exc})"
            elif isinstance(exc, (InvalidMeasurement, MeasurementTimeout)):
                error = f"{what}: {exc}"
            else:
                error = f"{what}: {type(exc).__name__}: {exc}"
        if k + 1 < tries and policy.backoff_s:
            sleep(policy.backoff_s * 2**k)
    return {}, f"{error} (failed after {tries} attempts)" if tries > 1 else error, tries
