"""A plugin that lives outside the package (tests/plugins/toy_plugin.py): imported by
path, and named in a config as supernet.plugin_file."""
from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import plugins_restored
from linas_lib.api.supernet import SuperNetwork
from linas_lib.config import ConfigError, config_from_dict, config_from_json
from linas_lib.supernets import load_supernet, supernet_class, supernet_names, supernet_space

PLUGIN = Path(__file__).parent / "plugins" / "toy_plugin.py"
STEPS = 80  # a short training run is enough to beat chance


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    """Each test registers the plugin anew; tiny ops run fastest on one thread."""
    monkeypatch.setenv("LINAS_CACHE", str(tmp_path / "cache"))
    with plugins_restored():
        yield


def import_by_path(path: Path, name: str = "toy_plugin_under_test"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def onnx_runner(module, example):
    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, buf, dynamo=False, input_names=["input"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": np.asarray(x, dtype=np.float32)})[0]


def test_plugin_imported_by_path_registers_builds_a_space_evaluates_and_exports(tmp_path):
    assert "toy_mlp" not in supernet_names()
    module = import_by_path(PLUGIN)
    assert "toy_mlp" in supernet_names()
    assert supernet_class("toy_mlp") is module.ToyMLP

    space = supernet_space("toy_mlp")
    assert space.names == ["depth", "layer0.width", "layer1.width", "layer2.width"]
    shallow = space.canonicalize([0, 2, 2, 2])[0]  # depth 1: the widths of layers 2 and 3 do not exist
    assert shallow.tolist() == [0, 2, 0, 0]

    plugin = module.ToyMLP(steps=STEPS)
    assert isinstance(plugin, SuperNetwork)
    checkpoint = plugin.prepare(None, str(tmp_path))
    assert plugin.prepare(None, str(tmp_path)) == checkpoint  # trained once, then cached
    plugin.load(checkpoint)

    largest = space.canonicalize(space.upper)[0]
    (row,) = plugin.evaluate(largest[None, :])
    assert set(row) == {"accuracy", "macs", "params"}
    assert row["accuracy"] > 0.4  # 4 classes: chance is ~0.25
    assert row["macs"] == 16 * 64 + 64 * 64 * 2 + 64 * 4
    smaller = plugin.evaluate(shallow[None, :])[0]
    assert smaller["params"] < row["params"]

    exported, (example,) = plugin.export_module(largest, batch_size=8)
    assert tuple(example.shape) == (8, 16) and not exported.training
    run = onnx_runner(exported, (example,))
    with torch.no_grad():
        np.testing.assert_allclose(run(example.numpy()), exported(example).numpy(), rtol=1e-4, atol=1e-5)
    assert plugin.evaluate_exported(largest, run)["accuracy"] == pytest.approx(row["accuracy"], abs=1e-3)
    batches = plugin.calibration_inputs(batch_size=8, n_batches=3)
    assert len(batches) == 3 and all(tuple(b[0].shape) == (8, 16) for b in batches)

    with pytest.raises(ValueError, match="not a toy_mlp checkpoint"):
        bogus = tmp_path / "bogus.pt"
        torch.save({"weights": torch.zeros(1)}, bogus)
        plugin.load(str(bogus))


def test_plugin_file_named_in_the_config_is_loaded_and_used(tmp_path):
    assert "toy_mlp" not in supernet_names()
    config = config_from_dict({"supernet": {"name": "toy_mlp", "plugin_file": str(PLUGIN), "params": {"steps": STEPS}}})
    assert config.supernet.name == "toy_mlp" and "toy_mlp" in supernet_names()
    assert [o.name for o in config.resolved_objectives()][0] == "accuracy"
    # Pipeline stages get the config as JSON in a fresh process: it must validate again.
    assert config_from_json(config.to_json()).supernet.plugin_file == str(PLUGIN)

    supernet = load_supernet(config.supernet, progress=False)  # trains into $LINAS_CACHE, then loads
    X = supernet.space.sample(3, rng=0)
    rows = supernet.evaluate(X)
    assert len(rows) == 3 and all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    module, (example,) = supernet.export_module(X[0], batch_size=4)
    assert module(example).shape == (4, 4)


def test_missing_plugin_file_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="plugin_file"):
        config_from_dict({"supernet": {"name": "toy_mlp", "plugin_file": str(tmp_path / "nope.py")}})


def test_plugin_name_without_its_file_is_unknown():
    with pytest.raises(ConfigError, match="unknown super-network 'toy_mlp'"):
        config_from_dict({"supernet": {"name": "toy_mlp"}})


# ---- plugin files beside their config; a tabular plugin on the public base class -----------------
TABLE_PLUGIN = Path(__file__).parent / "plugins" / "toy_table.py"


def _project(tmp_path):
    """A user's project: configs/search.yaml naming plugins/toy_table.py relatively, and the
    plugin importing the module beside it (toy_table_data.py)."""
    import shutil

    project = tmp_path / "project"
    (project / "configs" / "plugins").mkdir(parents=True)
    for name in ("toy_table.py", "toy_table_data.py"):
        shutil.copy(TABLE_PLUGIN.parent / name, project / "configs" / "plugins" / name)
    config = project / "configs" / "search.yaml"
    config.write_text(
        "name: toy-table\n"
        "supernet: {name: toy_table, plugin_file: plugins/toy_table.py}\n"
        "objectives: [accuracy, latency]\n"
        "targets: [{name: table, backend: tabular}]\n"
        "search: {population: 4, evaluations: 8, inner: {evaluations: 60, population: 10}}\n"
    )
    return project, config


def test_relative_plugin_file_resolves_against_the_config_folder(tmp_path, monkeypatch):
    import sys

    from linas_lib.config import load_config

    project, path = _project(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the config's folder: the path must not depend on where we stand
    before = list(sys.path)
    config = load_config(path)
    assert config.supernet.plugin_file == str(project / "configs" / "plugins" / "toy_table.py")
    assert sys.path == before  # the plugin's folder was on it only while the file loaded
    # the recorded path is absolute, so a pipeline task (another process, another folder) finds it
    assert config_from_json(config.to_json()).supernet.plugin_file == config.supernet.plugin_file
    plugin = load_supernet(config.supernet, progress=False)
    (row,) = plugin.evaluate(plugin.space.upper[None, :])
    assert type(plugin._rows[(2, 2, 2)]).__name__ == "Row"  # a @dataclass of the plugin file
    assert 0.9 < row["accuracy"] <= 1.0


def test_relative_plugin_file_missing_names_the_config_folder(tmp_path):
    from linas_lib.config import load_config

    path = tmp_path / "search.yaml"
    path.write_text("supernet: {name: toy_table, plugin_file: plugins/none.py}\n")
    with pytest.raises(ConfigError, match=f"resolved against the config's folder {tmp_path}"):
        load_config(path)


def test_a_dataclass_in_a_plugin_file_loads(tmp_path):
    plugin_file = tmp_path / "with_dataclass.py"
    plugin_file.write_text(
        "from dataclasses import dataclass, field\n"
        "from linas_lib.supernets import supernet_registry\n"
        "from linas_lib.supernets.nasbench201 import NASBench201Supernet\n"
        "@dataclass\n"
        "class Settings:\n"
        "    dataset: str = 'cifar10'\n"
        "    tags: list = field(default_factory=list)\n"
        "@supernet_registry.register('nb201_dataclass')\n"
        "class Plugin(NASBench201Supernet):\n"
        "    pass\n"
    )
    config = config_from_dict({"supernet": {"name": "nb201_dataclass", "plugin_file": str(plugin_file)},
                               "targets": [{"name": "nb", "backend": "tabular"}]})
    assert config.supernet.name == "nb201_dataclass"


def test_a_tabular_plugin_on_the_base_class_searches(tmp_path, capsys):
    import json

    from linas_lib.api.tabular import TableEntry, TabularSupernet
    from linas_lib.cli import main
    from linas_lib.runs import RunStore

    _, path = _project(tmp_path)
    out = tmp_path / "run"
    assert main(["search", str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    summary = RunStore(str(out)).load_summary()
    assert summary["evaluations"] == 8 and summary["failed"] == 0 and summary["pareto"]
    plugin = supernet_class("toy_table")()
    assert isinstance(plugin, TabularSupernet)
    plugin.load(plugin.prepare(None, str(tmp_path)))
    assert plugin.checkpoint_digest == "table:toy_table:seed0"
    with pytest.raises(ValueError, match="a table has no weights"):
        plugin.prepare("weights.pt", str(tmp_path))
    entry, inputs = plugin.export_module(plugin.space.upper, batch_size=8)
    assert isinstance(entry, TableEntry) and inputs == () and entry.table_latency() > 1
    assert repr(entry) == "TableEntry(toy_table, [2, 2, 2])"
    # the latency's fingerprint names the table, never this host
    cached = [json.loads(p.read_text()) for p in (tmp_path / "evaluation-cache").rglob("latency-*/*.json")]
    assert cached and {c["fingerprint"]["table_source"]["benchmark"] for c in cached} == {"toy_table"}
