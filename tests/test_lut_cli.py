"""`linas lut build`: a latency lookup table measured with a target's real backend, its
coverage reported, and a `lut` target predicting from it through the normal measurement
path (or naming the units it lacks); on the toy plugin with real ONNX Runtime."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import plugins_restored

from linas_lib.cli import main

torch = pytest.importorskip("torch")

PLUGIN = Path(__file__).parent / "plugins" / "toy_plugin.py"
FAST = {"batch_size": 8, "threads": 1, "warmup": 1, "min_repeats": 5, "min_time_s": 0.01}
# depth 2, widths 32 and 16: a Linear(16, 32) that the smallest and largest networks lack
MIDDLE = "[1, 1, 0, 0]"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LINAS_CACHE", str(tmp_path / "cache"))
    with plugins_restored():
        yield


def _config(tmp_path, table: Path | None = None) -> str:
    targets = [{"name": "cpu-ort", "backend": "onnxruntime", **FAST}]
    if table is not None:
        targets.append({"name": "cpu-lut", "backend": "lut", **FAST, "params": {"table": str(table)}})
    data = {"name": "toy", "supernet": {"name": "toy_mlp", "plugin_file": str(PLUGIN), "params": {"steps": 40}},
            "objectives": ["accuracy", "latency"], "targets": targets}
    path = tmp_path / ("lut.yaml" if table else "ort.yaml")
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_lut_build_reports_coverage_and_a_lut_target_measures_from_it(tmp_path, capsys):
    table = tmp_path / "tables" / "toy.json"
    code = main(["lut", "build", _config(tmp_path), "--target", "cpu-ort", "--out", str(table),
                 "--subnets", "8", "--check", "6"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "coverage of 6 fresh random sub-networks" in captured.out and "% of their" in captured.out
    data = json.loads(table.read_text())
    cover = data["meta"]["coverage"]
    assert 0 < cover["share"] <= 1 and cover["subnets"] == 6 and data["meta"]["target"] == "cpu-ort"
    assert data["source"]["backend"] == "onnxruntime" and data["source"]["batch_size"] == 8

    # the lut target predicts through the same path as any measurement (linas measure, search)
    code = main(["measure", _config(tmp_path, table), "--subnet", "[2, 2, 2, 2]", "--targets", "cpu-lut"])
    captured = capsys.readouterr()
    assert code == 0, captured.out
    lines = captured.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("target "))
    (row,) = [line.split() for line in lines[header + 2:]]
    assert row[:2] == ["cpu-lut", "lut"] and float(row[5]) > 0


def test_missing_units_are_named_and_an_extended_table_covers_them(tmp_path, capsys):
    from linas_lib.config import load_config
    from linas_lib.objectives import target_fingerprint

    table = tmp_path / "toy.json"
    ort = _config(tmp_path)
    # the smallest and largest networks only
    assert main(["lut", "build", ort, "--target", "cpu-ort", "--out", str(table), "--subnets", "0",
                 "--check", "10"]) == 0
    captured = capsys.readouterr()
    assert "missing units" in captured.err and "Linear(" in captured.err and f"--extend {table}" in captured.err
    assert json.loads(table.read_text())["meta"]["coverage"]["share"] < 1

    lut = _config(tmp_path, table)
    assert main(["measure", lut, "--subnet", MIDDLE, "--targets", "cpu-lut"]) == 1
    out = capsys.readouterr().out
    assert "MissingLayerError" in out and "Linear(in_features=16, out_features=32" in out
    assert "linas lut build CONFIG --target T --out TABLE --extend TABLE" in out
    before = target_fingerprint(load_config(lut).targets[1])

    assert main(["lut", "build", ort, "--target", "cpu-ort", "--out", str(table), "--extend", str(table),
                 "--subnets", "30", "--seed", "3", "--check", "0"]) == 0
    capsys.readouterr()
    # the cache key follows the table's contents: an extended table predicts anew
    assert target_fingerprint(load_config(lut).targets[1]) != before
    assert main(["measure", lut, "--subnet", MIDDLE, "--targets", "cpu-lut"]) == 0


def test_lut_build_needs_a_measuring_target(tmp_path, capsys):
    table = tmp_path / "toy.json"
    table.write_text(json.dumps({"format": "linas-lut/1", "source": {}, "overhead_ms": 0.0, "entries": {}}))
    assert main(["lut", "build", _config(tmp_path, table), "--target", "cpu-lut", "--out", str(tmp_path / "t.json")]) == 1
    assert "uses the lut backend, which looks latencies up" in capsys.readouterr().err
    assert main(["lut", "build", _config(tmp_path), "--target", "gpu", "--out", str(table)]) == 1
    assert "unknown target 'gpu'" in capsys.readouterr().err
