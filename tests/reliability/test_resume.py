"""`kill -9` at random points, then `linas search --resume`: nothing is measured twice and
the result equals an uninterrupted run's. Also the recurring re-search and drift."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "plugins"))
from ledger import read_ledger  # noqa: E402

PLUGIN = str(ROOT / "bench" / "plugins" / "faulty_nasbench201.py")
LINAS = [sys.executable, "-m", "linas_lib.cli"]


def _config(tmp_path: Path, **overrides) -> Path:
    config = {
        "name": "nb201-resume", "seed": 5,
        "supernet": {"name": "faulty_nasbench201", "plugin_file": PLUGIN, "params": {"dataset": "cifar10"}},
        "objectives": ["accuracy", "latency"],
        "targets": [{"name": "nb201", "backend": "tabular"}],
        "search": {"population": 8, "evaluations": 40, "inner": {"evaluations": 1500}},
        "measurement": {"retries": 6, "backoff_s": 0},
        **overrides,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _env(ledger: Path, faults: dict | None = None) -> dict:
    return {**os.environ, "LINAS_FAULT_LEDGER": str(ledger), "LINAS_FAULTS": json.dumps(faults or {}),
            "PYTHONPATH": str(ROOT)}


def _result(run: Path) -> tuple[pd.DataFrame, list]:
    frame = pd.read_parquet(run / "measurements.parquet")
    cols = ["iteration", "subnet_id", "status", "accuracy", "latency@nb201"]
    return frame[cols].reset_index(drop=True), json.loads((run / "pareto.json").read_text())["pareto"]


def test_killed_runs_resume_without_repeating_a_measurement(tmp_path):
    config = _config(tmp_path)
    reference = tmp_path / "reference" / "run"
    subprocess.run(LINAS + ["search", str(config), "--out", str(reference)], env=_env(tmp_path / "ref.ledger"),
                   check=True, capture_output=True, timeout=300)

    run, ledger = tmp_path / "killed" / "run", tmp_path / "killed.ledger"
    env = _env(ledger, {"sleep_s": 0.01})
    rng, kills, finished, killed = random.Random(7), 0, False, []
    for attempt in range(12):
        resume = (run / "config.json").exists()
        args = ["--resume", str(run)] if resume else ["--out", str(run)]
        proc = subprocess.Popen(LINAS + ["search", str(config), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if attempt < 4:  # the first four attempts die at a random moment
            try:
                proc.wait(timeout=rng.uniform(1.0, 4.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                killed.append(proc.pid)
        _, err = proc.communicate(timeout=300)
        if proc.returncode == 0:
            finished = True
            break
        assert proc.returncode == -signal.SIGKILL, err
    assert finished and kills >= 2
    counts = read_ledger(ledger, killed)
    # at most the measurement in flight when a kill landed is taken again, nothing stored ever is
    assert counts["measured"] and counts["repeated"] == []
    assert counts["interrupted_and_redone"] <= kills
    ref_measured = read_ledger(tmp_path / "ref.ledger")["measured"]
    assert set(counts["measured"]) == set(ref_measured)  # the same sub-networks
    frame, pareto = _result(run)
    ref_frame, ref_pareto = _result(reference)
    pd.testing.assert_frame_equal(frame, ref_frame)
    assert [p["subnet_id"] for p in pareto] == [p["subnet_id"] for p in ref_pareto]


def test_resume_refuses_a_changed_config_and_a_missing_run(tmp_path):
    config = _config(tmp_path)
    missing = subprocess.run(LINAS + ["search", str(config), "--resume", str(tmp_path / "nope")],
                             env=_env(tmp_path / "l"), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "holds no run" in missing.stderr and "Traceback" not in missing.stderr
    run = tmp_path / "r"
    subprocess.run(LINAS + ["search", str(config), "--out", str(run)], env=_env(tmp_path / "l"), check=True,
                   capture_output=True, timeout=300)
    changed = _config(tmp_path, seed=6)
    out = subprocess.run(LINAS + ["search", str(changed), "--resume", str(run)], env=_env(tmp_path / "l"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "seed: 5 -> 6" in out.stderr


def test_an_unfinished_run_is_not_silently_overwritten(tmp_path):
    from linas_lib.cli import main

    config = _config(tmp_path)
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["search", str(config), "--out", str(run)]) == 1


def _recurring(tmp_path, ledger_name: str, config: Path, run: Path) -> dict:
    subprocess.run(LINAS + ["search", str(config), "--out", str(run)], env=_env(tmp_path / ledger_name),
                   check=True, capture_output=True, timeout=300)
    return json.loads((run / "summary.json").read_text())


def test_a_recurring_run_starts_from_the_previous_front_and_the_cache(tmp_path):
    config, run = _config(tmp_path), tmp_path / "runs" / "nightly"
    first = _recurring(tmp_path, "first.ledger", config, run)
    second = _recurring(tmp_path, "second.ledger", config, run)
    assert first["cache"]["hits"] == 0 and second["cache"]["hits"] > 0
    drift = second["drift"]["nb201"]
    assert drift["drifted"] is False and drift["remeasured"] == len(first["targets"]["nb201"]["pareto"])
    # iteration 0 of the re-search is the previous front, topped up at random
    population = json.loads((run / "populations" / "iter-000.json").read_text())
    front = {p["subnet_id"] for p in first["targets"]["nb201"]["pareto"]}
    assert len(front & set(population["subnet_ids"])) == min(len(front), 8)  # thinned evenly when too many
    assert second["previous"]["nb201"]["hypervolume"] >= second["previous"]["nb201"]["previous_hypervolume"] - 1e-9
    assert len(list((run / "history").iterdir())) == 1
    second_ledger = read_ledger(tmp_path / "second.ledger")["measured"]
    # only the drift check re-measures what the first run knew
    assert second_ledger[("latency", first["pareto"][0]["subnet_id"])] == 1
    assert second_ledger[("quality", first["pareto"][0]["subnet_id"])] == 0


def test_latency_drift_marks_the_target_stale_and_is_reported(tmp_path):
    from linas_lib.report import write_reports  # noqa: F401  (the report renders drift)

    config, run = _config(tmp_path), tmp_path / "runs" / "nightly"
    _recurring(tmp_path, "first.ledger", config, run)
    # the "hardware" got 40 % slower: rewrite the previous run's latencies to look faster than now
    table = pd.read_parquet(run / "measurements.parquet")
    table["latency@nb201"] = table["latency@nb201"] / 1.4
    from linas_lib.api.store import put_table
    from linas_lib.stores import open_store

    put_table(open_store(str(run)), "measurements.parquet", table)
    second = _recurring(tmp_path, "second.ledger", config, run)
    drift = second["drift"]["nb201"]
    assert drift["drifted"] is True and drift["median_change"] == pytest.approx(0.4, rel=1e-6)
    # stale: every latency of the second run was measured afresh
    assert second["cache"]["hits"] <= second["evaluations"]  # quality may hit, latency may not
    frame = pd.read_parquet(run / "measurements.parquet")
    reused = set(frame[frame["cache"].str.contains(r"latency@nb201/[^=]*=hit")]["subnet_id"])
    assert reused and reused <= set(drift["changes"])  # only the drift check's fresh measurements are reused
    assert "DRIFT: cached latencies marked stale" in (run / "report.md").read_text()
    archived = pd.read_parquet(next((run / "history").iterdir()) / "measurements.parquet")
    assert len(archived) == len(table)  # the previous run is kept, not overwritten


def test_a_validation_search_resumes_by_replaying_its_table(tmp_path, monkeypatch):
    """Validation-only search keeps its algorithm in memory: resume replays it, and every
    measurement it had taken comes back from the cache."""
    from linas_lib.cache import EvaluationCache
    from linas_lib.config import load_config
    from linas_lib.objectives import SupernetMeasurer
    from linas_lib.runs import RunStore
    from linas_lib.search.loop import run_validation
    from linas_lib.supernets import load_supernet

    config = load_config(_config(tmp_path, search={"mode": "validation", "algorithm": "nsga2", "population": 8,
                                                   "evaluations": 40}))
    supernet = load_supernet(config.supernet)

    class Crash(Exception):
        pass

    def measurer(root, crash_after=None):
        inner = SupernetMeasurer(config, supernet, EvaluationCache(str(root / "cache"), "ns"))
        calls = []

        def measure(iteration, X, predictions=None):
            if crash_after is not None and len(calls) == crash_after:
                raise Crash
            calls.append(iteration)
            return inner(iteration, X, predictions)

        return measure

    monkeypatch.setenv("LINAS_FAULT_LEDGER", str(tmp_path / "ref.ledger"))
    reference = run_validation(config, supernet.space, measurer(tmp_path / "ref"), progress=False)
    monkeypatch.setenv("LINAS_FAULT_LEDGER", str(tmp_path / "run.ledger"))
    run = RunStore(str(tmp_path / "crashed" / "run"))
    with pytest.raises(Crash):
        run_validation(config, supernet.space, measurer(tmp_path / "crashed", crash_after=3), run=run,
                       progress=False)
    resumed = run_validation(config, supernet.space, measurer(tmp_path / "crashed"), run=run, progress=False,
                             resume=True)
    assert [p["subnet_id"] for p in resumed["pareto"]] == [p["subnet_id"] for p in reference["pareto"]]
    counts = read_ledger(tmp_path / "run.ledger")
    assert counts["repeated"] == [] and set(counts["measured"]) == set(read_ledger(tmp_path / "ref.ledger")["measured"])
    # the three populations measured before the crash are replayed from the table, not even read from the cache
    assert resumed["cache"]["hits"] == 0 and resumed["evaluations"] == 40
