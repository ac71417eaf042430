"""Reproducible data-parallel training on one machine: R single-threaded processes.

Two single-threaded processes train the built-in CNN on a 2-core machine in 0.76 s a
step where one process takes 1.2-1.3 s (each rank computes half the batch; small
convolutions gain little from a second thread inside one operator). Unlike a thread count, the
number of ranks is part of the training recipe: each rank's batch norm sees its share
of the batch, so the weights depend on it, and on nothing else in the environment
(every rank runs one torch thread whatever OMP_NUM_THREADS says).

Rank 0 runs in the calling process and returns the result; ranks 1.. are fresh
interpreters (not multiprocessing's spawn, which re-runs the caller's main script and
so fails in a script without a `__main__` guard), joined by a gloo group over a file in
a temporary directory (no port to pick).
"""
from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

# A rank that dies leaves its peers waiting in a collective: gloo gives up after this
# (longer than a training step takes on a heavily loaded machine).
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=120)
# A peer reads sys.path first, so it imports the worker from where the caller did.
_PEER = ("import pickle, sys; path, job = pickle.load(sys.stdin.buffer); sys.path[:0] = path; "
         "from linas_lib.supernets.data_parallel import _peer_main; _peer_main(job)")


class TrainingRankFailed(RuntimeError):
    """A spawned training rank exited with an error."""


def run_data_parallel(worker: Callable[..., Any], ranks: int, *args: Any) -> Any:
    """`worker(rank, ranks, *args)` on `ranks` processes; rank 0's return value.

    `worker` and `args` must be picklable (a module-level function and plain data). Inside
    it, `average_gradients(module)` after the backward passes keeps the ranks in step."""
    if ranks < 1:
        raise ValueError(f"ranks must be at least 1, got {ranks}")
    if ranks == 1:
        return _single_thread(worker, 0, 1, *args)
    with tempfile.TemporaryDirectory(prefix="linas-ranks-") as rendezvous:
        init = "file://" + os.path.join(rendezvous, "group")
        peers = [_start_peer(init, worker, rank, ranks, args) for rank in range(1, ranks)]
        try:
            result = _rank_main(init, worker, 0, ranks, args, on_error=lambda: _stop(peers))
        except BaseException as exc:
            _stop(peers)  # again, for a failure before the group formed
            failed = _failed(peers)
            if failed and not isinstance(exc, KeyboardInterrupt):
                raise TrainingRankFailed(f"training rank(s) failed (rank, exit code): {failed}") from exc
            raise
        for peer in peers:
            try:
                peer.wait(timeout=COLLECTIVE_TIMEOUT.total_seconds())
            except subprocess.TimeoutExpired:
                peer.kill()
                peer.wait()
        failed = _failed(peers)
        if failed:
            raise TrainingRankFailed(f"training rank(s) failed (rank, exit code): {failed}")
    return result


def _stop(peers: list[subprocess.Popen], grace_s: float = 2.0) -> None:
    """After rank 0 failed: a peer that crashed (and so broke rank 0's collective) has
    exited or is exiting; the others wait in a collective for rank 0 and are killed.
    Called before rank 0 leaves the group, which would make them fail in turn."""
    deadline = time.monotonic() + grace_s
    for peer in peers:
        try:
            peer.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait()


def _start_peer(init: str, worker, rank: int, ranks: int, args: tuple) -> subprocess.Popen:
    peer = subprocess.Popen([sys.executable, "-c", _PEER], stdin=subprocess.PIPE)
    # the job pickled apart: unpickling the worker needs the path in place
    peer.stdin.write(pickle.dumps((list(sys.path), pickle.dumps((init, worker, rank, ranks, args)))))
    peer.stdin.close()
    return peer


def _peer_main(job: bytes) -> None:
    init, worker, rank, ranks, args = pickle.loads(job)
    try:
        _rank_main(init, worker, rank, ranks, args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    else:
        return
    # Exit now, with the error's code: rank 0 learns of it from its broken collective and
    # reads this code within _stop's grace. An interpreter's teardown (torch: seconds on a
    # busy host) could outlast the grace, and the peer would read as killed by us.
    sys.stderr.flush()
    os._exit(code)


def _failed(peers: list[subprocess.Popen]) -> list[tuple[int, int]]:
    # killed by us after rank 0 failed: -SIGKILL, not the cause
    return [(rank, p.returncode) for rank, p in enumerate(peers, start=1) if p.returncode not in (0, -9)]


def average_gradients(module) -> None:
    """Every rank's gradients replaced by their mean over the ranks (one collective)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    # A parameter no sub-network of this step used has no gradient on any rank (the
    # ranks train the same architectures): it stays None.
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _single_thread(worker, rank: int, ranks: int, *args):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return worker(rank, ranks, *args)
    finally:
        torch.set_num_threads(before)


def _rank_main(init: str, worker, rank: int, ranks: int, args: tuple, on_error=None):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=ranks, timeout=COLLECTIVE_TIMEOUT)
    try:
        return _single_thread(worker, rank, ranks, *args)
    except BaseException:
        if on_error is not None:
            on_error()
        raise
    finally:
        dist.destroy_process_group()
