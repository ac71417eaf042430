"""Data-parallel training on real processes: gradients averaged over a gloo group, failures
reported rather than hung on, and the same weights from the same recipe."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

torch = pytest.importorskip("torch")

from linas_lib.supernets import build_supernet  # noqa: E402
from linas_lib.supernets.data_parallel import TrainingRankFailed, average_gradients, run_data_parallel  # noqa: E402


def _rank_gradient(rank: int, ranks: int, scale: float):
    """Each rank's gradient is scale * (rank + 1); rank 0 returns what averaging left."""
    layer = torch.nn.Linear(3, 2)
    (layer.weight.sum() * scale * (rank + 1)).backward()
    average_gradients(layer)
    return layer.weight.grad.clone(), layer.bias.grad, torch.get_num_threads()


def _fails_on(rank: int, ranks: int, failing_rank: int):
    layer = torch.nn.Linear(3, 2)
    if rank == failing_rank:
        raise ValueError(f"rank {rank} gave up")
    layer.weight.sum().backward()
    average_gradients(layer)  # the other rank waits here for the one that failed
    return "done"


def _fails_with_a_slow_teardown_on(rank: int, ranks: int, failing_rank: int):
    if rank == failing_rank:  # an interpreter's teardown that outlasts rank 0's grace (torch on a busy host)
        import atexit

        atexit.register(time.sleep, 30)
    return _fails_on(rank, ranks, failing_rank)


def test_gradients_are_averaged_over_the_ranks_each_on_one_thread():
    grad, bias_grad, threads = run_data_parallel(_rank_gradient, 2, 2.0)
    assert torch.allclose(grad, torch.full((2, 3), 3.0))  # mean of 2.0 and 4.0
    assert bias_grad is None  # unused by every rank: left alone
    assert threads == 1


def test_one_rank_runs_in_process_without_a_group():
    grad, _, threads = run_data_parallel(_rank_gradient, 1, 2.0)
    assert torch.allclose(grad, torch.full((2, 3), 2.0)) and threads == 1


def test_a_failing_peer_is_reported_not_waited_for():
    start = time.monotonic()
    with pytest.raises(TrainingRankFailed, match=r"\(1, 1\)"):
        run_data_parallel(_fails_on, 2, 1)
    assert time.monotonic() - start < 60  # far below the collective's time-out


def test_a_failing_peer_is_reported_however_slow_its_teardown_would_be():
    start = time.monotonic()
    with pytest.raises(TrainingRankFailed, match=r"\(1, 1\)"):
        run_data_parallel(_fails_with_a_slow_teardown_on, 2, 1)
    assert time.monotonic() - start < 25


def test_a_failing_rank_zero_raises_its_own_error_and_stops_the_peer():
    start = time.monotonic()
    with pytest.raises(ValueError, match="rank 0 gave up"):
        run_data_parallel(_fails_on, 2, 0)
    assert time.monotonic() - start < 60


def test_ranks_must_be_positive():
    with pytest.raises(ValueError, match="ranks must be at least 1"):
        run_data_parallel(_rank_gradient, 0, 1.0)


def test_a_script_without_a_main_guard_can_train(tmp_path):
    """multiprocessing's spawn re-runs the caller's script in each child; the peers here do not."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = {sys.path!r}
        from test_data_parallel import _rank_gradient
        from linas_lib.supernets.data_parallel import run_data_parallel
        print("ran", float(run_data_parallel(_rank_gradient, 2, 1.0)[0][0, 0]))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("ran") == 1 and "ran 1.5" in done.stdout


def _weights(net) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def test_elastic_cnn_trains_the_same_weights_on_two_ranks_every_time():
    tiny = dict(epochs=1, batch_size=64, train_limit=128, progress=False, calibration_images=100)
    first, _ = build_supernet("elastic_cnn", ranks=2, **tiny).fit()
    again, _ = build_supernet("elastic_cnn", ranks=2, **tiny).fit()
    single, _ = build_supernet("elastic_cnn", ranks=1, **tiny).fit()
    assert torch.equal(_weights(first), _weights(again))
    # each rank's batch norm sees half the batch: a different recipe, so different weights
    assert not torch.equal(_weights(first), _weights(single))
    signatures = {build_supernet("elastic_cnn", ranks=r, **tiny).training_signature() for r in (1, 2)}
    assert len(signatures) == 2


def test_elastic_cnn_refuses_ranks_that_do_not_divide_the_batch():
    with pytest.raises(ValueError, match=r"supernet\.params\.ranks: 3 must .* divide batch_size 128"):
        build_supernet("elastic_cnn", ranks=3, batch_size=128)
