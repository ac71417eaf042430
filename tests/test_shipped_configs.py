"""Every config in pipelines/configs/ validates as shipped, and each built-in super-network's
config runs a real `linas search` at a tiny budget (training, timing and search shrunk)."""
from __future__ import annotations

import copy

import pytest
import yaml

from linas_lib.cli import main
from linas_lib.config import load_config
from linas_lib.runs import RunStore

from conftest import CONFIGS

FAST_TARGET = {"warmup": 1, "min_repeats": 3, "min_time_s": 0.01}
TINY_SEARCH = {"population": 3, "evaluations": 6, "inner": {"algorithm": "nsga2", "evaluations": 60, "population": 10}}
# seconds-scale training for the networks that train on first use
TINY_PARAMS = {
    "ncf.yaml": {"epochs": 1, "batch_size": 1024, "train_limit": 4000, "eval_users": 60, "threads": 1},
    "transformer.yaml": {"steps": 8, "batch_size": 16, "random_subnets": 1, "train_sentences": 200,
                         "test_sentences": 12, "max_digits": 4, "threads": 1},
    "ofa_mbv3.yaml": {"resolution": 64, "synthetic_batches": 1, "synthetic_batch_size": 2},
    "nasbench201.yaml": {},
}
BUILTIN = {"ncf.yaml": "ncf", "transformer.yaml": "transformer", "ofa_mbv3.yaml": "ofa_mbv3",
           "nasbench201.yaml": "nasbench201"}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    config = load_config(path)
    assert config.search.evaluations >= config.search.fixed_population


def test_every_builtin_supernet_has_a_config():
    from linas_lib.supernets import supernet_names

    shipped = {load_config(p).supernet.name for p in CONFIGS.glob("*.yaml")}
    wanted = {"elastic_cnn", *BUILTIN.values()}
    assert wanted <= shipped and wanted <= set(supernet_names())


@pytest.mark.parametrize("name", sorted(TINY_PARAMS))
def test_builtin_config_runs_a_tiny_search(name, tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks on a shared machine: one thread is fastest
    try:
        data = copy.deepcopy(yaml.safe_load((CONFIGS / name).read_text()))
        assert data["supernet"]["name"] == BUILTIN[name]
        data["supernet"]["params"] = {**data["supernet"].get("params", {}), **TINY_PARAMS[name]}
        data["targets"] = [{**t, **(FAST_TARGET if t.get("backend") != "tabular" else {})} for t in data["targets"]]
        data["search"] = {**data["search"], **TINY_SEARCH}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        out = tmp_path / "run"
        assert main(["search", str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
    summary = RunStore(str(out)).load_summary()
    assert summary["evaluations"] == 6 and summary["failed"] == 0
    assert summary["pareto"] and len(summary["hypervolume"]) == 2
    objectives = [o["name"] for o in summary["objectives"]]
    assert objectives == [o.name for o in load_config(CONFIGS / name).resolved_objectives()]
    assert "Measured Pareto front" in capsys.readouterr().out
