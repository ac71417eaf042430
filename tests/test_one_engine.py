"""One engine for both paths: `SearchRun`'s ask/tell, and the in-process search and the
KFP pipeline (kfp.local) measuring exactly the same sub-networks for a config and seed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from linas_lib.api.documents import Population
from linas_lib.config import config_from_dict
from linas_lib.objectives import supernet_measure
from linas_lib.runs import RunStateError, RunStore
from linas_lib.search.loop import run_linas
from linas_lib.search.run import SearchRun
from linas_lib.supernets import load_supernet


def nb_config(**search) -> dict:
    return config_from_dict({
        "name": "one-engine", "seed": 3,
        "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
        "objectives": ["accuracy", "latency"], "targets": [{"name": "nb201", "backend": "tabular"}],
        "search": {"population": 8, "evaluations": 24, "inner": {"algorithm": "nsga2", "evaluations": 400,
                                                                 "population": 20}, **search}})


@pytest.fixture(scope="module")
def net():
    return load_supernet(nb_config().supernet, progress=False)


def _by_iteration(frame: pd.DataFrame) -> list[list[str]]:
    return [list(frame[frame["iteration"] == i]["subnet_id"]) for i in sorted(frame["iteration"].unique())]


def test_ask_is_stable_until_told_and_tell_checks_the_iteration(net):
    config = nb_config()
    run = SearchRun.start(config, net.space)
    with pytest.raises(RunStateError, match="before ask"):
        run.tell(pd.DataFrame())
    first = run.ask()
    assert first.iteration == 0 and len(first) == 8 and run.ask() is first
    measure = supernet_measure(config, net)
    stale = Population.of(net.space, 1, first.encodings)
    with pytest.raises(RunStateError, match="iteration 1 told to a run at iteration 0"):
        run.tell(measure(1, first.encodings), stale)
    assert run.tell(measure(0, first.encodings)) is True
    second = run.ask()
    assert second.iteration == 1 and second.predicted and not set(second.subnet_ids) & set(first.subnet_ids)


def test_a_run_restored_from_its_table_asks_what_the_live_run_asks(net):
    """The pipeline's invariant: a stage rebuilds the run from the table it is handed."""
    config = nb_config()
    measure = supernet_measure(config, net)
    live = SearchRun.start(config, net.space)
    for _ in range(2):
        population = live.ask()
        live.tell(measure(population.iteration, population.encodings, population.predictions()))
        restored = SearchRun.restore(config, net.space, live.frame.copy())
        assert restored.iteration == live.iteration and not restored.finished
        nxt = live.ask()
        again = restored.ask()
        np.testing.assert_array_equal(again.encodings, nxt.encodings)
        assert again.predicted == nxt.predicted
    population = live.ask()
    assert live.tell(measure(2, population.encodings)) is False and live.finished
    assert live.stop_reason == "evaluation budget spent"
    with pytest.raises(RunStateError, match="has finished"):
        live.ask()
    assert SearchRun.restore(config, net.space, live.frame).finished


def test_a_validation_run_restored_from_its_table_replays_its_algorithm(net):
    config = nb_config(mode="validation", algorithm="nsga2", population=8, evaluations=32)
    measure = supernet_measure(config, net)
    live = SearchRun.start(config, net.space)
    for _ in range(2):
        population = live.ask()
        live.tell(measure(population.iteration, population.encodings))
    restored = SearchRun.restore(config, net.space, live.frame.copy())
    assert restored.iteration == 2
    np.testing.assert_array_equal(restored.ask().encodings, live.ask().encodings)


def test_the_in_process_search_and_the_kfp_pipeline_are_one(net, tmp_path):
    """Same config and seed: the same sub-networks in the same iterations, the same front
    and hypervolume, whether `linas search` or the pipeline under kfp.local ran it."""
    from pipelines.local import run_local

    config = nb_config()
    store = tmp_path / "in-process"
    summary = run_linas(config, net.space, supernet_measure(config, net), run=RunStore(str(store)), progress=False)
    out = Path(run_local(config, str(tmp_path / "pipeline")))
    in_process = pd.read_parquet(store / "measurements.parquet")
    pipeline = pd.read_parquet(out / "measurements.parquet")
    assert _by_iteration(pipeline) == _by_iteration(in_process)
    assert len(_by_iteration(pipeline)) == 3
    piped = json.loads((out / "summary.json").read_text())
    assert [p["subnet_id"] for p in piped["pareto"]] == [p["subnet_id"] for p in summary["pareto"]]
    np.testing.assert_allclose(piped["hypervolume"], summary["hypervolume"], rtol=0, atol=1e-12)
    for i in (1, 2):  # the same predictions were recorded for each population
        a, b = (json.loads((d / f"populations/iter-{i:03d}.json").read_text()) for d in (store, out))
        assert a["subnet_ids"] == b["subnet_ids"]
        np.testing.assert_allclose(a["predicted"]["accuracy"], b["predicted"]["accuracy"])


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    """The README's ask/tell example, executed verbatim (in a scratch folder for its run directory)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "pipelines").symlink_to(root / "pipelines")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert scope["run"].finished and scope["summary"]["evaluations"] == 200
    assert (tmp_path / "runs" / "nb201" / "summary.json").is_file()
