"""The pipeline's side of reuse: a recurring pipeline run starts from the previous run's
front and the cache, and a stage that KFP retries measures nothing twice."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from linas_lib import stages
from linas_lib.config import config_from_dict

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = str(ROOT / "bench" / "plugins" / "faulty_nasbench201.py")

pytestmark = [
    pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner:UserWarning"),
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]


def _config(**overrides):
    return config_from_dict({
        "name": "nb201-pipeline", "seed": 2,
        "supernet": {"name": "faulty_nasbench201", "plugin_file": PLUGIN, "params": {"dataset": "cifar100"}},
        "objectives": ["accuracy", "latency"],
        "targets": [{"name": "nb201", "backend": "tabular"}],
        "search": {"population": 6, "evaluations": 12, "inner": {"evaluations": 600}},
        "measurement": {"retries": 1, "backoff_s": 0},
        **overrides,
    })


def test_a_retried_measuring_stage_measures_nothing_twice(tmp_path, monkeypatch):
    ledger = tmp_path / "ledger"
    monkeypatch.setenv("LINAS_FAULT_LEDGER", str(ledger))
    config = _config()
    store = str(tmp_path / "runs" / "r")
    population = tmp_path / "population.json"
    stages.sample(config.to_json(), store, str(population))
    for attempt in range(2):  # KFP runs the pod again after a failure further on
        stages.evaluate_accuracy(config.to_json(), "", str(population), str(tmp_path / f"acc{attempt}.json"),
                                 store_uri=store)
        stages.measure_latency(config.to_json(), "", "nb201", str(population), str(tmp_path / f"lat{attempt}.json"),
                               store_uri=store)
    counts = Counter(" ".join(line.split()[:2]) for line in ledger.read_text().splitlines())
    assert len(counts) == 12 and set(counts.values()) == {1}
    first, second = (json.loads((tmp_path / f"lat{a}.json").read_text())["rows"] for a in range(2))
    assert [r["values"] for r in first] == [r["values"] for r in second]
    assert {list(r["cache"].values())[0] for r in second} == {"hit"}


def test_a_recurring_pipeline_run_reuses_the_previous_run(tmp_path, monkeypatch):
    from pipelines.local import run_local

    monkeypatch.setenv("LINAS_FAULT_LEDGER", str(tmp_path / "ledger"))
    out = tmp_path / "runs" / "nightly"
    config = _config()
    run_local(config, str(out), warm=False)  # tasks started as kfp.local does; the rerun starts them warm
    first = json.loads((out / "summary.json").read_text())
    run_local(config, str(out))
    second = json.loads((out / "summary.json").read_text())
    assert first["cache"] == {"hits": 0, "misses": 24}
    assert second["cache"]["hits"] > 0
    assert second["drift"]["nb201"]["drifted"] is False
    assert second["drift"]["nb201"]["remeasured"] == len(first["targets"]["nb201"]["pareto"])
    assert second["previous"]["nb201"]["previous_size"] == len(first["targets"]["nb201"]["pareto"])
    assert len(list((out / "history").iterdir())) == 1
    frame = pd.read_parquet(out / "measurements.parquet")
    assert len(frame) == 12 and (frame["status"] == "ok").all()
    assert "Compared with the previous run" in (out / "report.md").read_text()
