"""End to end on the smoke config: the real pipeline under kfp.local, and `linas search`.

Both paths must leave the same run-directory layout with the same kind of results.
These are the slow tests of the suite (about a minute each on two cores).
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from linas_lib.cli import main
from linas_lib.runs import RunStore
from pipelines.local import run_local

from conftest import SMOKE_YAML

pytestmark = [
    # kfp.local says, per task, that Kubernetes-only settings are ignored: expected here
    pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner:UserWarning"),
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]

LAYOUT = {
    "config.json", "measurements.parquet", "pareto.json", "summary.json", "report.html", "report.md",
    "populations/iter-000.json", "populations/iter-001.json",
    "predictors/iter-000.json", "predictors/iter-001.json",
}


def _check_run_dir(out: Path, config) -> dict:
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert LAYOUT <= files, LAYOUT - files

    summary = RunStore(str(out)).load_summary()  # also verifies the digests
    assert summary["evaluations"] == 12
    assert summary["failed"] == 0
    assert isinstance(summary["hypervolume"], list) and len(summary["hypervolume"]) == 2
    assert summary["hypervolume"][1] >= summary["hypervolume"][0]
    assert summary["pareto"], "a non-empty measured Pareto front"
    assert json.loads((out / "pareto.json").read_text())["pareto"] == summary["pareto"]

    frame = pd.read_parquet(out / "measurements.parquet")
    assert len(frame) == 12 and frame["subnet_id"].nunique() == 12
    assert sorted(frame["iteration"].unique()) == [0, 1]
    assert (frame["status"] == "ok").all()
    for objective in config.resolved_objectives():
        assert frame[objective.name].notna().all()
    assert set(r["subnet_id"] for r in summary["pareto"]) <= set(frame["subnet_id"])

    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert images, "report.html embeds its plots"
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# LINAS report: smoke")
    assert "Pareto" in markdown
    return summary


def test_pipeline_runs_locally_with_kfp_local(smoke_config, smoke_checkpoint, tmp_path, monkeypatch):
    """Every task of the compiled graph runs as a subprocess, each forked from the warm
    starter; results land in the run dir."""
    import pipelines.local

    starters = []

    class Recorded(pipelines.local.WarmStarter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            starters.append(self)

    monkeypatch.setattr(pipelines.local, "WarmStarter", Recorded)
    out = run_local(smoke_config, str(tmp_path / "run"), checkpoint=smoke_checkpoint)
    (starter,) = starters
    # resolve and sample; accuracy, latency and predictors in both iterations; one MOEA; the report
    assert starter.started == {"warm": 2 + 2 * 3 + 1 + 1, "cold": 0}, starter.cold_reasons
    assert not starter.skipped, starter.skipped  # every module of PRELOAD imports in this environment
    assert Path(out) == (tmp_path / "run").resolve()
    _check_run_dir(Path(out), smoke_config)
    stored = json.loads((Path(out) / "config.json").read_text())
    assert stored["name"] == "smoke"


def test_cli_search_in_process_gives_the_same_layout(smoke_config, smoke_checkpoint, tmp_path, capsys):
    """`linas search` finds the session checkpoint through LINAS_CACHE and writes the same files."""
    out = tmp_path / "search"
    assert main(["search", str(SMOKE_YAML), "--out", str(out)]) == 0
    summary = _check_run_dir(out, smoke_config)
    printed = capsys.readouterr().out
    assert "hypervolume per iteration" in printed
    assert f"of {summary['evaluations']} measured" in printed
