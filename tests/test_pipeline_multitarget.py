"""One kfp.local run of a multi-target search on this CPU: ONNX Runtime FP32,
OpenVINO FP32 and OpenVINO INT8, with accuracy sharded over two parallel tasks.
It must give a measured front and a hypervolume curve per target."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from linas_lib.config import config_from_dict
from linas_lib.runs import RunStore
from pipelines.local import run_local

from conftest import SMOKE_YAML

pytestmark = [
    pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner:UserWarning"),
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]

FAST = {"batch_size": 8, "threads": 1, "warmup": 2, "min_repeats": 5, "min_time_s": 0.02}


def test_multi_target_pipeline_gives_a_front_per_target(tmp_path, smoke_checkpoint):
    data = yaml.safe_load(SMOKE_YAML.read_text())
    data["name"] = "multi"
    data["targets"] = [
        {"name": "cpu-ort", "backend": "onnxruntime", **FAST},
        {"name": "cpu-ov-fp32", "backend": "openvino", "precision": "fp32", **FAST},
        {"name": "cpu-ov-int8", "backend": "openvino", "precision": "int8", "calibration_samples": 16, **FAST},
    ]
    data["search"] = {"population": 4, "evaluations": 8, "inner": {"evaluations": 400, "population": 20}}
    data["cluster"] = {"accuracy": {"shards": 2}}
    config = config_from_dict(data)
    out = run_local(config, str(tmp_path / "run"), checkpoint=smoke_checkpoint)

    summary = RunStore(str(out)).load_summary()
    assert summary["evaluations"] == 8 and summary["failed"] == 0
    assert set(summary["targets"]) == {"cpu-ort", "cpu-ov-fp32", "cpu-ov-int8"}
    for name, view in summary["targets"].items():
        assert view["objectives"] == ["accuracy", f"latency@{name}"]
        assert len(view["hypervolume"]) == 2 and view["pareto"], name
    assert set(summary["transferability"]) == set(summary["targets"])

    frame = pd.read_parquet(out / "measurements.parquet")
    assert frame["subnet_id"].nunique() == 8
    for name in summary["targets"]:
        assert (frame[f"latency@{name}"] > 0).all()
    # the INT8 target also scored the quantized models themselves
    assert frame["accuracy@cpu-ov-int8"].between(0, 1).all()
    html = (out / "report.html").read_text()
    assert "Transferability between targets" in html
    assert html.count("data:image/png;base64,") >= 2
