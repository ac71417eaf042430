"""Measurements that may run side by side, in forked single-threaded processes.

Scoring a sub-network (batch-norm recalibration, a pass over the test split) is CPU work
that does not disturb a neighbour's result, unlike a latency, which is always timed
alone. A forked worker inherits the loaded super-network, so it starts in milliseconds
instead of re-importing torch and re-reading the checkpoint; it runs one torch thread,
as every measuring process here does. The parent keeps every result: a worker only
computes and hands it back, so a worker that dies costs the one item it had in hand.

The workers are plain forked processes on pipes, with no thread in the parent (a pool
executor's manager thread would make the fork unsafe).
"""
from __future__ import annotations

import multiprocessing
import pickle
import signal
import sys
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator

from linas_lib.backends.timing import usable_cpus
from linas_lib.messages import exit_description

_STOP = None


class WorkerDied(RuntimeError):
    """The process measuring an item exited without a result (killed, out of memory, crash)."""


def usable_workers(requested: int, items: int, *, on_gpu: bool = False) -> int:
    """How many workers are worth forking: at most `items` and the CPUs this process may
    use; one for work that runs on a GPU (`on_gpu`) or once torch holds a CUDA context
    (it does not survive a fork)."""
    torch = sys.modules.get("torch")
    if on_gpu or (torch is not None and torch.cuda.is_initialized()):
        return 1
    return max(1, min(requested, items, usable_cpus()))


def torch_sees_a_gpu() -> bool:
    """Whether torch, once imported by the super-network, would score on a GPU."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available()


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling, else a RuntimeError with its type and message (some
    exceptions pickle but cannot be rebuilt from their arguments)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _serve(job: Callable[[int], Any], conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    while (i := conn.recv()) is not _STOP:
        try:
            result = job(i)
        except Exception as exc:  # handed back as the item's result: the parent decides
            result = _portable(exc)
        try:
            conn.send((i, result))
        except Exception as exc:  # a result that cannot be pickled
            conn.send((i, RuntimeError(f"the result could not be handed back: {type(exc).__name__}: {exc}")))


def in_parallel(job: Callable[[int], Any], count: int, workers: int) -> Iterator[tuple[int, Any]]:
    """(i, job(i)) for i in range(count) as they finish, from `workers` forked processes;
    with one worker, in this process, in order.

    An exception from `job`, or a WorkerDied when its process exits without answering,
    is yielded as the item's result. Each worker holds one item at a time, and a dead
    worker is replaced while items are left."""
    if workers <= 1:
        for i in range(count):
            try:
                yield i, job(i)
            except Exception as exc:
                yield i, exc
        return
    fork = multiprocessing.get_context("fork")
    pending = list(range(count - 1, -1, -1))  # popped from the end: item 0 first
    busy: dict[Connection, tuple[Any, int]] = {}  # connection -> (process, item in hand)

    def start_worker() -> None:
        parent_end, child_end = fork.Pipe()
        process = fork.Process(target=_serve, args=(job, child_end), daemon=True)
        process.start()
        child_end.close()
        busy[parent_end] = (process, None)
        hand_out(parent_end)

    def hand_out(conn: Connection) -> None:
        """The next item to this worker; a worker gone meanwhile is noticed by `wait`."""
        busy[conn] = (busy[conn][0], pending.pop())
        try:
            conn.send(busy[conn][1])
        except OSError:  # it died after its last answer: the next recv() says so
            pass

    def died(process) -> WorkerDied:
        process.join()
        return WorkerDied(f"the worker process measuring it {exit_description(process.exitcode)}, with no result")

    try:
        while pending and len(busy) < workers:
            start_worker()
        while busy:
            for conn in wait(list(busy)):
                process, item = busy[conn]
                try:
                    index, result = conn.recv()
                except (EOFError, OSError):  # the worker died with the item in hand
                    del busy[conn]
                    conn.close()
                    yield item, died(process)
                    if pending:
                        start_worker()
                    continue
                except Exception as exc:  # an answer that cannot be read back: the worker is fine
                    index, result = item, RuntimeError(f"the result could not be read back: "
                                                       f"{type(exc).__name__}: {exc}")
                if pending:
                    hand_out(conn)
                else:
                    del busy[conn]
                    try:
                        conn.send(_STOP)
                    except OSError:
                        pass
                    conn.close()
                    process.join()
                yield index, result
    finally:  # also when the caller stops early: no worker outlives the call
        for conn, (process, _) in busy.items():
            process.kill()
            process.join()
            conn.close()
