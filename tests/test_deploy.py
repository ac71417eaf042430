"""`linas measure` on several targets and `linas export` of a measured sub-network."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from linas_lib.cli import main
from linas_lib.measurements import make_row, to_frame
from linas_lib.runs import RunStore

from conftest import SMOKE_YAML


def _table_rows(out: str) -> list[list[str]]:
    """The per-target rows of `linas measure`'s table (below its header and rule)."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("target "))
    return [line.split() for line in lines[header + 2:]]


def _config_with_targets(tmp_path) -> str:
    data = yaml.safe_load(SMOKE_YAML.read_text())
    fast = {"batch_size": 8, "threads": 1, "warmup": 2, "min_repeats": 5, "min_time_s": 0.02}
    data["targets"] = [
        {"name": "cpu-ort", "backend": "onnxruntime", **fast},
        {"name": "cpu-torch", "backend": "torch", **fast},
        {"name": "cpu-ov-int8", "backend": "openvino", "precision": "int8", "calibration_samples": 16, **fast},
    ]
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_measure_prints_one_row_per_target(tmp_path, smoke_checkpoint, capsys):
    code = main(["measure", _config_with_targets(tmp_path), "--subnet", "random", "--targets", "cpu-ort", "cpu-ov-int8"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("sub-network ")
    # what it is and its size, once: the genes in the space's order (a stage's depth first), MACs, parameters
    assert lines[1].startswith("architecture: s0.depth=") and lines[2].startswith("size: ")
    macs, params = (int(part.split()[0].replace(",", "")) for part in lines[2].removeprefix("size: ").split(", "))
    assert lines[2].endswith(" MACs per sample, " + f"{params:,} parameters") and macs > params > 0
    rows = _table_rows(out)
    assert [r[0] for r in rows] == ["cpu-ort", "cpu-ov-int8"]
    for row in rows:
        assert float(row[5]) > 0  # latency_ms
        assert float(row[8]) > 0  # cpu_ms: process CPU time per call, stored beside the wall time
        assert 0.0 <= float(row[10]) <= 1.0  # accuracy (the INT8 model's own on the INT8 target)


def test_measure_rejects_unknown_target_and_bad_encoding(tmp_path, smoke_checkpoint, capsys):
    config = _config_with_targets(tmp_path)
    assert main(["measure", config, "--targets", "gpu-x"]) == 1
    assert "unknown target(s) ['gpu-x']" in capsys.readouterr().err
    assert main(["measure", config, "--subnet", "[1, 2]"]) == 1
    assert "genes" in capsys.readouterr().err


def _run_dir(tmp_path, smoke_config, space) -> tuple[str, str]:
    run = RunStore(str(tmp_path / "run"))
    run.save_config(smoke_config)
    encoding = space.sample(1, 3)[0]
    key = space.key(encoding)
    row = make_row(subnet_id=key, encoding=encoding, iteration=0, values={"accuracy": 0.5, "latency@cpu-ort": 1.0})
    # what the predictors expected: NaN in the first population, which nothing predicted
    run.save_measurements(to_frame([{**row, "pred:accuracy": float("nan"), "pred:latency@cpu-ort": float("nan")}]))
    return run.uri, key


def test_export_onnx_runs_in_onnxruntime_with_any_batch(tmp_path, smoke_config, smoke_supernet, capsys):
    import onnxruntime as ort

    run_dir, key = _run_dir(tmp_path, smoke_config, smoke_supernet.space)
    assert main(["export", run_dir, "--subnet", key, "--format", "onnx"]) == 0
    path = tmp_path / "run" / "exports" / f"{key}.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: np.zeros((3, 1, 28, 28), np.float32)})[0]
    assert logits.shape == (3, 10)
    meta = json.loads((tmp_path / "run" / "exports" / f"{key}.json").read_text())
    assert meta["subnet_id"] == key and meta["format"] == "onnx"
    # the genes as pareto.json writes them: in the space's order, each with its own JSON type
    decoded = smoke_supernet.space.decode(meta["encoding"])
    assert list(meta["architecture"].items()) == list(decoded.items())
    assert all(type(value) is int for value in meta["architecture"].values()), meta["architecture"]
    # strict JSON with what was measured, as pareto.json has it: no predictions, no NaN, an ISO time
    strict = json.loads((tmp_path / "run" / "exports" / f"{key}.json").read_text(),
                        parse_constant=lambda name: pytest.fail(f"{name} in the export's JSON"))
    measured = strict["measured"]
    assert measured["accuracy"] == 0.5 and measured["latency@cpu-ort"] == 1.0 and measured["iteration"] == 0
    assert measured["measured_at"].endswith("Z") and not any(k.startswith("pred:") for k in measured), measured


def test_export_openvino_int8_and_unknown_subnet(tmp_path, smoke_config, smoke_supernet, capsys):
    import openvino as ov

    run_dir, key = _run_dir(tmp_path, smoke_config, smoke_supernet.space)
    assert main(["export", run_dir, "--subnet", key, "--format", "openvino", "--int8"]) == 0
    model = ov.Core().read_model(str(tmp_path / "run" / "exports" / f"{key}-int8.xml"))
    assert any("FakeQuantize" in op.get_type_name() or "Convert" in op.get_type_name() for op in model.get_ops())
    assert main(["export", run_dir, "--subnet", "nope", "--format", "onnx"]) == 1
    assert "'nope' was not measured" in capsys.readouterr().err
    assert main(["export", run_dir, "--subnet", key, "--format", "onnx", "--int8"]) == 1


def test_export_openvino_fp32_keeps_fp32_weights(tmp_path, smoke_config, smoke_supernet):
    import openvino as ov
    import torch

    run_dir, key = _run_dir(tmp_path, smoke_config, smoke_supernet.space)
    assert main(["export", run_dir, "--subnet", key, "--format", "openvino"]) == 0
    model = ov.Core().read_model(str(tmp_path / "run" / "exports" / f"{key}.xml"))
    weights = [op for op in model.get_ops() if op.get_type_name() == "Constant" and op.get_output_size()
               and op.get_output_element_type(0).is_real()]
    assert weights and all(op.get_output_element_type(0) == ov.Type.f32 for op in weights)
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    encoding = json.loads((tmp_path / "run" / "exports" / f"{key}.json").read_text())["encoding"]
    module, (x,) = smoke_supernet.export_module(np.asarray(encoding), 8)
    with torch.no_grad():
        expected = module(x).numpy()
    got = compiled(x.numpy())[compiled.output(0)]
    assert np.abs(got - expected).max() < 1e-4  # FP16 weights were off by ~1e-3


def _nb201_config(tmp_path) -> str:
    path = tmp_path / "nb201.yaml"
    path.write_text(yaml.safe_dump({"supernet": {"name": "nasbench201"}, "objectives": ["accuracy", "latency"],
                                    "targets": [{"name": "nb201", "backend": "tabular"}]}))
    return str(path)


def _measured_key(capsys) -> str:
    return capsys.readouterr().out.splitlines()[0].split()[1]


def test_measure_random_draws_afresh_and_seed_repeats(tmp_path, capsys):
    config = _nb201_config(tmp_path)
    keys = []
    for _ in range(3):
        assert main(["measure", config]) == 0
        keys.append(_measured_key(capsys))
    assert len(set(keys)) > 1, keys  # 15,625 cells: three equal draws would be a 1 in 2e8 chance
    assert main(["measure", config, "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "(random, --seed 5)" in out.splitlines()[0]
    assert main(["measure", config, "--seed", "5"]) == 0
    assert _measured_key(capsys) == out.splitlines()[0].split()[1]


def test_measure_latency_only_setup_needs_no_quality(tmp_path, capsys):
    """OFA without weights refuses accuracy; a config whose objectives do not include it measures
    latency (and MACs) only, and succeeds."""
    from conftest import CONFIGS

    data = yaml.safe_load((CONFIGS / "ofa_mbv3.yaml").read_text())
    data["supernet"]["params"] = {"resolution": 64, "synthetic_batches": 1, "synthetic_batch_size": 2}
    data["targets"] = [{**t, "warmup": 1, "min_repeats": 3, "min_time_s": 0.01} for t in data["targets"]]
    path = tmp_path / "ofa.yaml"
    path.write_text(yaml.safe_dump(data))
    code = main(["measure", str(path)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    (row,) = _table_rows(captured.out)
    assert row[0] == "cpu-ort" and float(row[5]) > 0 and len(row) == 10  # no accuracy, no error


def test_int8_calibration_samples_reach_openvino_and_the_cache_key(smoke_config, smoke_supernet):
    from linas_lib.config import TargetConfig
    from linas_lib.objectives import measure_latency, target_fingerprint

    fast = {"batch_size": 8, "warmup": 1, "min_repeats": 3, "min_time_s": 0.01}
    # 24 samples: three batches of 8, more than the backend's own default of 16
    target = TargetConfig(name="ov-int8", backend="openvino", precision="int8", calibration_samples=24, **fast)
    encoding = smoke_supernet.space.sample(1, 2)
    (row,) = measure_latency(smoke_supernet, encoding, target)
    assert not row["error"], row["error"]
    assert row["fingerprint"]["calibration_samples"] == 24  # what NNCF was given
    assert target_fingerprint(target)["calibration_samples"] == 24  # what the cache key records
    # a backend setting in params wins, and the key follows it
    other = TargetConfig(name="ov-int8", backend="openvino", precision="int8", params={"calibration_samples": 8}, **fast)
    assert target_fingerprint(other)["calibration_samples"] == 8
    (row,) = measure_latency(smoke_supernet, encoding, other)
    assert row["fingerprint"]["calibration_samples"] == 8
