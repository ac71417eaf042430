"""What each latency measurement keeps (CPU time, load, timings), and noisy latencies re-timed
and flagged; on the toy plugin with real ONNX Runtime."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from conftest import plugins_restored

from linas_lib.config import ConfigError, MeasurementPolicy, TargetConfig, config_from_dict
from linas_lib.objectives import measure_latency

torch = pytest.importorskip("torch")

PLUGIN = Path(__file__).parent / "plugins" / "toy_plugin.py"
FAST = {"batch_size": 8, "threads": 1, "warmup": 1, "min_repeats": 5, "min_time_s": 0.01}
SUPERNET = {"name": "toy_mlp", "plugin_file": str(PLUGIN), "params": {"steps": 40}}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy plugin, trained briefly; the registry is restored afterwards (other files
    check that toy_mlp is unknown without its plugin file)."""
    from linas_lib.supernets import load_supernet

    patch = pytest.MonkeyPatch()
    patch.setenv("LINAS_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        with plugins_restored():
            config = config_from_dict({"supernet": SUPERNET})
            yield load_supernet(config.supernet, progress=False)
    finally:
        patch.undo()


def test_each_latency_keeps_cpu_time_load_and_timings(toy):
    target = TargetConfig(name="cpu-ort", backend="onnxruntime", **FAST)
    rows = measure_latency(toy, toy.space.sample(2, rng=0), target, policy=MeasurementPolicy(max_latency_cv=None))
    for row in rows:
        values = row["values"]
        assert not row["error"]
        assert values["latency_cpu@cpu-ort"] > 0 and math.isfinite(values["latency_cpu@cpu-ort"])
        assert values["load_1m@cpu-ort"] >= 0
        assert values["latency_timings@cpu-ort"] == 1  # no threshold: timed once


def test_a_noisy_latency_is_timed_again_and_the_steadiest_kept(toy):
    target = TargetConfig(name="cpu-ort", backend="onnxruntime", **FAST)
    # every real timing has some spread: with a threshold of 1e-9 each one is "noisy"
    policy = MeasurementPolicy(max_latency_cv=1e-9, noisy_retimes=2)
    (row,) = measure_latency(toy, toy.space.sample(1, rng=1), target, policy=policy)
    assert row["values"]["latency_timings@cpu-ort"] == 3
    (row,) = measure_latency(toy, toy.space.sample(1, rng=1), target,
                             policy=MeasurementPolicy(max_latency_cv=None, noisy_retimes=2))
    assert row["values"]["latency_timings@cpu-ort"] == 1  # null: never re-timed


def test_max_latency_cv_is_validated_by_name():
    with pytest.raises(ConfigError, match=r"measurement\.max_latency_cv: Input should be greater than 0"):
        config_from_dict({"measurement": {"max_latency_cv": 0}})
    with pytest.raises(ConfigError, match=r"measurement\.noisy_retimes: Input should be greater than or equal to 0"):
        config_from_dict({"measurement": {"noisy_retimes": -1}})
    assert config_from_dict({}).measurement.max_latency_cv == 0.05


def _search_config(tmp_path, max_cv) -> str:
    data = {"name": "toy", "supernet": SUPERNET, "objectives": ["accuracy", "latency"],
            "targets": [{"name": "cpu-ort", "backend": "onnxruntime", **FAST}],
            "measurement": {"max_latency_cv": max_cv, "noisy_retimes": 1},
            "search": {"population": 3, "evaluations": 6, "inner": {"evaluations": 60, "population": 10}}}
    path = tmp_path / f"toy-{max_cv}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_noisy_targets_are_flagged_in_the_summary_and_warned_about(toy, tmp_path, capsys):
    from linas_lib.cli import main
    from linas_lib.runs import RunStore

    out = tmp_path / "noisy"
    assert main(["search", _search_config(tmp_path, 1e-9), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    summary = RunStore(str(out)).load_summary()
    noisy = summary["noisy_targets"]["cpu-ort"]
    assert noisy["noisy"] == noisy["measured"] == 6 and noisy["max_latency_cv"] == 1e-9
    assert noisy["max_cv"] >= noisy["median_cv"] > 0 and "median_load_1m" in noisy
    assert "warning: target cpu-ort: 6 of 6 latencies stayed noisy" in err
    frame = RunStore(str(out)).load_measurements()
    assert (frame["latency_timings@cpu-ort"] == 2).all()  # timed, then once more
    assert (frame["latency_cpu@cpu-ort"] > 0).all() and frame["load_1m@cpu-ort"].notna().all()

    # no threshold (a sub-millisecond call on a busy host can reach any CV): nothing flagged
    quiet = tmp_path / "quiet"
    assert main(["search", _search_config(tmp_path, None), "--out", str(quiet)]) == 0
    # (on a busy test host the run may warn about the load first; that is not a flagged target)
    assert "latencies stayed noisy" not in capsys.readouterr().err
    assert RunStore(str(quiet)).load_summary()["noisy_targets"] == {}


def test_re_timing_that_keeps_failing_is_cut_to_one_per_noisy_latency(toy):
    from linas_lib.objectives.latency import FUTILE_IN_A_ROW

    target = TargetConfig(name="cpu-ort", backend="onnxruntime", **FAST)
    policy = MeasurementPolicy(max_latency_cv=1e-9, noisy_retimes=2)  # no real timing gets under it
    rows = measure_latency(toy, toy.space.sample(FUTILE_IN_A_ROW + 2, rng=4), target, policy=policy)
    timings = [row["values"]["latency_timings@cpu-ort"] for row in rows]
    assert timings == [3] * FUTILE_IN_A_ROW + [2, 2]  # every noisy latency still re-timed at least once


class _ScriptedCVs:
    """A backend whose timings have the given CVs, in order: the Retimer's decisions alone."""

    timed = True

    def __init__(self, cvs):
        self.cvs = list(cvs)

    def time(self, prepared):
        from linas_lib.backends.timing import LatencyResult

        return LatencyResult(median_ms=1.0, cv=self.cvs.pop(0), p90_ms=1.1, repeats=30)


def test_a_re_timing_that_helps_restores_the_full_budget():
    from linas_lib.objectives.latency import Retimer

    noisy, quiet = 0.2, 0.01
    # three sub-networks noisy throughout (3 timings each), then one re-timed once that gets
    # under the limit: the next noisy one has both re-timings again
    backend = _ScriptedCVs([noisy] * 9 + [noisy, quiet] + [noisy, noisy, noisy])
    retime = Retimer(backend, MeasurementPolicy(max_latency_cv=0.05, noisy_retimes=2))
    counts = [retime(None)[1] for _ in range(5)]
    assert counts == [3, 3, 3, 2, 3] and backend.cvs == []
