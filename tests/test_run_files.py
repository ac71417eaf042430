"""pareto.json and summary.json as a user reads them: lists as lists, cache state as fields,
ISO-8601 times, units; and older files (epoch times) still read back."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
import yaml

from linas_lib.api.store import put_json
from linas_lib.cli import main
from linas_lib.runs import RunStore

from conftest import CONFIGS


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    data = yaml.safe_load((CONFIGS / "nasbench201.yaml").read_text())
    data["search"] = {"population": 4, "evaluations": 8, "inner": {"evaluations": 60, "population": 10}}
    path = tmp / "nb201.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["search", str(path), "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def _iso(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_pareto_json_is_plain_data_with_units(run_dir):
    doc = json.loads((run_dir / "pareto.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert doc["format"] == "linas-pareto/2" and doc["pareto"] == summary["pareto"]
    assert doc["units"]["latency@nb201"] == "ms" and doc["units"]["accuracy"] == "fraction"
    for record in doc["pareto"]:
        assert isinstance(record["encoding"], list) and all(isinstance(g, int) for g in record["encoding"])
        assert len(record["encoding"]) == 6
        assert record["cache"] == {"quality-accuracy": "miss", "latency@nb201": "miss"}
        assert record["cache_scopes"]["latency@nb201"].startswith("latency-")
        assert _iso(record["measured_at"]).year >= 2024
        assert "timestamp" not in record and "status" not in record
        numbers = [k for k, v in record.items() if isinstance(v, float)]
        assert numbers and all(k in doc["units"] for k in numbers), set(numbers) - set(doc["units"])
    assert [o["unit"] for o in doc["objectives"]] == ["fraction", "ms"]


def test_summary_json_times_and_per_target_fronts(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["format"] == "linas-summary/2"
    assert _iso(summary["finished_at"]) >= _iso(summary["pareto"][0]["measured_at"])
    for record in summary["targets"]["nb201"]["pareto"]:
        assert isinstance(record["encoding"], list) and isinstance(record["cache"], dict)
    assert summary["noisy_targets"] == {}  # a table's latency is never noisy


@pytest.mark.parametrize("finished_at", ["2026-03-04T05:06:07.000Z", 1772600767.0], ids=["iso", "old-epoch"])
def test_a_finished_run_is_archived_whatever_its_time_format(tmp_path, finished_at):
    run = RunStore(str(tmp_path / "run"))
    put_json(run.store, "config.json", {"name": "x"})
    put_json(run.store, "summary.json", {"name": "x", "pareto": [], "finished_at": finished_at})
    prefix = run.archive_finished()
    assert prefix.startswith("history/20260304T050607Z-")
    assert json.loads((tmp_path / "run" / prefix / "summary.json").read_text())["finished_at"] == finished_at


def test_a_run_saved_before_a_setting_existed_still_resumes():
    """Resuming compares the saved config with this one: a field added since (measurement's
    max_latency_cv, noisy_retimes) at its default is no difference; set otherwise, it is."""
    from linas_lib.config import config_from_dict
    from linas_lib.search.run import config_differences as _config_differences

    current = json.loads(config_from_dict({}).to_json())
    saved = json.loads(config_from_dict({}).to_json())
    for key in ("max_latency_cv", "noisy_retimes"):
        del saved["measurement"][key]
    assert _config_differences(saved, current) == []
    current["measurement"]["max_latency_cv"] = 0.2
    assert _config_differences(saved, current) == ["measurement.max_latency_cv: None -> 0.2"]
    current["seed"] = 3
    assert "seed: 0 -> 3" in _config_differences(saved, current)


def test_stored_documents_keep_their_order_so_genes_read_in_the_spaces_order(tmp_path):
    """An architecture is written gene by gene in the space's order: depth before the blocks
    it governs, layer2 before layer10; sorted keys would put s0.depth last and layer10 first.
    The report rendered from the stored summary lists them the same way."""
    from linas_lib.report import architecture_text

    genes = {"s0.depth": 2, "s0.b0.kernel": 7, "s0.b0.expand": 6, "layer2.width": 8, "layer10.width": 16}
    summary = {"name": "x", "objectives": [], "units": {}, "pareto": [{"subnet_id": "a", "architecture": genes}]}
    run = RunStore(str(tmp_path / "run"))
    run.save_results(summary)
    for name in ("summary.json", "pareto.json"):
        stored = json.loads((tmp_path / "run" / name).read_text())["pareto"][0]["architecture"]
        assert list(stored) == list(genes), name
    assert architecture_text(run.load_summary()["pareto"][0]).startswith("s0.depth=2, s0.b0.kernel=7")
