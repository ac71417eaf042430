"""Config validation: the shipped configs load; bad ones fail with a ConfigError naming the field."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from linas_lib.cli import main
from linas_lib.config import ConfigError, LinasConfig, config_from_dict, config_from_json, load_config

from conftest import ANIMAL_YAML, SMOKE_YAML


def test_shipped_animal_mnist_config_loads():
    config = load_config(ANIMAL_YAML)
    assert isinstance(config, LinasConfig)
    assert config.name == "animal-mnist-linas"
    assert config.search.population == 25 and config.search.evaluations == 125
    assert config.search.iterations == 5
    assert [o.name for o in config.resolved_objectives()] == ["accuracy", "latency@cpu-ort"]
    assert [o.direction for o in config.resolved_objectives()] == ["max", "min"]
    assert config.predictor_for("accuracy").name == "svr_rbf"
    assert config.predictor_for("latency@cpu-ort").name == "ridge"


def test_shipped_smoke_config_loads():
    config = load_config(SMOKE_YAML)
    assert config.name == "smoke"
    assert config.supernet.params == {"epochs": 1, "train_limit": 512, "calibration_images": 250}
    assert config.search.iterations == 2
    assert [config.search.population_at(i) for i in range(2)] == [6, 6]
    assert config.targets[0].name == "cpu-ort" and config.targets[0].batch_size == 8


@pytest.mark.parametrize("path", [ANIMAL_YAML, SMOKE_YAML])
def test_config_round_trips_through_json(path):
    """Pipeline tasks receive the config as JSON; it must come back identical."""
    config = load_config(path)
    assert config_from_json(config.to_json()) == config


@pytest.mark.parametrize("data", [{}, {"name": "t", "search": {"population": 10, "evaluations": 20}}])
def test_defaults_validate_in_a_fresh_interpreter(data):
    """Validation must not depend on what happens to be imported already (registries load themselves)."""
    code = f"from linas_lib.config import config_from_dict; c = config_from_dict({data!r}); print(c.targets[0].backend)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "onnxruntime"


def test_population_at_spends_exactly_the_budget():
    config = config_from_dict({"search": {"population": 10, "evaluations": 45}})
    assert config.search.iterations == 5
    assert sum(config.search.population_at(i) for i in range(config.search.iterations)) == 45
    assert config.search.population_at(4) == 5


# ---- bad configs ------------------------------------------------------------------
BASE = {"name": "t", "search": {"population": 10, "evaluations": 20}}


def _with(**changes) -> dict:
    """BASE with dotted keys ('search.inner.algorithm') set."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return data


BAD = {
    "unknown top-level key": (_with(bogus=1), ["bogus"]),
    "unknown nested key": (_with(**{"search.popsize": 3}), ["search.popsize"]),
    "wrong type": (_with(**{"search.population": "many"}), ["search.population", "many"]),
    "wrong type for a list": (_with(objectives="accuracy"), ["objectives"]),
    "negative population": (_with(**{"search.population": -5}), ["search.population"]),
    "zero evaluations": (_with(**{"search.evaluations": 0}), ["search.evaluations"]),
    "evaluations below population": (
        _with(**{"search.population": 10, "search.evaluations": 5}),
        ["evaluations", "population", "5", "10"],
    ),
    "unknown inner algorithm": (_with(**{"search.inner.algorithm": "nsga9"}), ["search.inner.algorithm", "nsga9", "nsga2"]),
    "unknown validation algorithm": (_with(**{"search.algorithm": "bogo"}), ["search.algorithm", "bogo", "nsga2"]),
    "unknown predictor": (
        _with(**{"search.predictors": {"accuracy": {"name": "xgb"}}}),
        ["search.predictors.accuracy.name", "xgb", "ridge", "svr_rbf"],
    ),
    "unknown supernet": (_with(**{"supernet.name": "resnet9000"}), ["supernet.name", "resnet9000", "elastic_cnn"]),
    "unknown objective": (_with(objectives=["accuracy", "energy"]), ["objectives", "energy", "latency"]),
    "duplicate objective": (_with(objectives=["accuracy", "accuracy"]), ["objectives"]),
    "duplicate target names": (_with(targets=[{"name": "cpu-a"}, {"name": "cpu-a"}]), ["targets", "cpu-a", "unique"]),
    "unknown latency backend": (_with(targets=[{"name": "t1", "backend": "tvm"}]), ["targets.0.backend", "tvm", "onnxruntime"]),
    "target name not a DNS label": (_with(targets=[{"name": "CPU_ORT"}]), ["targets.0.name"]),
    "bad run name": (_with(name="has space"), ["name"]),
    "negative seed": (_with(seed=-1), ["seed"]),
    "more objectives than a search takes": (
        _with(targets=[{"name": f"cpu-{k}"} for k in range(5)]),  # accuracy + 5 latencies
        ["objectives", "6 objectives", "at most 5"],
    ),
}


def test_a_quality_and_four_latency_targets_is_the_most_a_config_holds():
    config = config_from_dict(_with(targets=[{"name": f"cpu-{k}"} for k in range(4)]))
    assert [o.name for o in config.resolved_objectives()] == ["accuracy"] + [f"latency@cpu-{k}" for k in range(4)]


@pytest.mark.parametrize("data, fragments", BAD.values(), ids=BAD.keys())
def test_bad_config_names_the_field(data, fragments):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        config_from_dict(_with(bogus=1, seed=-1, **{"search.population": "x"}))
    message = str(err.value)
    assert "bogus" in message and "seed" in message and "search.population" in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("data", [[1, 2], "name: x", None, 42])
def test_non_mapping_config_is_rejected(data):
    with pytest.raises(ConfigError, match="mapping"):
        config_from_dict(data)


def test_invalid_yaml_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsearch: {population: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "broken.yaml" in str(err.value) and "YAML" in str(err.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "nope.yaml" in str(err.value) and "does not exist" in str(err.value)


def test_yaml_file_with_a_bad_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(**{"search.inner.algorithm": "nsga9"})))
    with pytest.raises(ConfigError, match="nsga2"):
        load_config(path)


def test_with_overrides_revalidates():
    config = config_from_dict(BASE)
    assert config.with_overrides(**{"search.population": 5}).search.population == 5
    with pytest.raises(ConfigError, match="search.population"):
        config.with_overrides(**{"search.population": -1})


# ---- the CLI -----------------------------------------------------------------------
def test_cli_search_rejects_a_bad_config_with_exit_code_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(**{"search.population": -3})))
    out = tmp_path / "run"
    assert main(["search", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "search.population" in err
    assert err.startswith("linas:")
    assert not out.exists() or not any(out.iterdir()), "nothing may be written for a rejected config"


def test_cli_search_missing_config_exit_code_2(tmp_path, capsys):
    assert main(["search", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_pipeline_compile_rejects_a_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("supernet: {name: nope}\n")
    assert main(["pipeline", "compile", str(path), "-o", str(tmp_path / "p.yaml")]) == 2
    assert "supernet.name" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()
