"""Every registry fills itself alike: built-ins, installed packages (entry points, imported
only when their name is looked up) and plugin files; and a backend names its own image."""
from __future__ import annotations

import sys
import textwrap
import uuid

import pytest

from linas_lib import registry
from linas_lib.algos import algorithm_registry, build_searcher
from linas_lib.backends import backend_class, backend_image_role, backend_names, backend_registry
from linas_lib.config import ConfigError, config_from_dict
from linas_lib.predictors import build_predictor, predictor_registry
from linas_lib.registry import PluginLoadError, Registry, UnknownNameError
from linas_lib.search.selection import selection_registry
from linas_lib.stores import open_store, store_registry
from linas_lib.supernets import supernet_class, supernet_names, supernet_registry

REGISTRIES = {
    "linas.supernets": supernet_registry,
    "linas.backends": backend_registry,
    "linas.predictors": predictor_registry,
    "linas.algorithms": algorithm_registry,
    "linas.selections": selection_registry,
    "linas.stores": store_registry,
}


@pytest.fixture(autouse=True)
def _restored():
    """What a test's plugin files register is gone afterwards: other files list every
    predictor or backend and would meet a test's stub."""
    from conftest import plugins_restored

    with plugins_restored():
        yield


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """install(module_source, {group: {name: value}}): a distribution on sys.path, as pip
    would leave it, with its entry points; every registry forgets what it discovered
    before and after."""
    for r in REGISTRIES.values():
        r.names()  # built-ins first, as in a process that looked them up before
    saved = {g: (dict(r._entries), dict(r._pending)) for g, r in REGISTRIES.items()}
    for r in REGISTRIES.values():
        r._discovered = False
    registry._all_entry_points.cache_clear()
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(source: str, groups: dict[str, dict[str, str]]) -> str:
        module = f"linas_test_plugin_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        dist = tmp_path / f"{module}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
        lines = []
        for group, entries in groups.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {value.format(module=module)}" for name, value in entries.items()]
        (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
        registry._all_entry_points.cache_clear()
        return module

    yield install
    registry._all_entry_points.cache_clear()
    for group, (entries, pending) in saved.items():
        r = REGISTRIES[group]
        r._entries.clear()
        r._entries.update(entries)
        r._pending.clear()
        r._pending.update(pending)
        r._discovered = True


PLUGIN = """
    import numpy as np

    from linas_lib.backends.tabular import TabularBackend
    from linas_lib.stores.local import LocalStore
    from linas_lib.supernets.nasbench201 import NASBench201Supernet


    class TinyBench(NASBench201Supernet):
        pass


    class MemoryStore(LocalStore):
        @classmethod
        def from_uri(cls, uri):
            return cls("/tmp/never-written")


    class EchoBackend(TabularBackend):
        name = "echo"
        devices = ("cpu",)
        image_roles = {"cpu": "base"}


    def constant_predictor(space, **params):
        from sklearn.dummy import DummyRegressor

        return DummyRegressor()


    def random_algorithm(space, n_obj, budget, seed, population=10):
        from linas_lib.algos.random_search import RandomSearcher

        return RandomSearcher(space, n_obj=n_obj, budget=budget, seed=seed, population=population)


    def first_selection(mean, std, measured, n, seed):
        return np.arange(n)
"""


def test_every_registry_has_its_own_entry_point_group():
    assert {r.group for r in REGISTRIES.values()} == set(REGISTRIES)
    assert all(g == r.group for g, r in REGISTRIES.items())


def test_entry_points_are_listed_at_once_and_imported_on_first_lookup(installed):
    module = installed(PLUGIN, {
        "linas.supernets": {"tiny_bench": "{module}:TinyBench"},
        "linas.stores": {"mem": "{module}:MemoryStore"},
        "linas.backends": {"echo": "{module}:EchoBackend"},
        "linas.predictors": {"constant": "{module}:constant_predictor"},
        "linas.algorithms": {"random10": "{module}:random_algorithm"},
        "linas.selections": {"first": "{module}:first_selection"},
    })
    assert "echo" in backend_names() and "constant" in predictor_registry.names()
    assert "random10" in algorithm_registry and "first" in selection_registry
    assert "tiny_bench" in supernet_names() and "mem" in store_registry
    assert module not in sys.modules  # listed by name, not imported
    assert supernet_class("tiny_bench").__name__ == "TinyBench"
    assert type(open_store("mem://bucket")).__name__ == "MemoryStore"
    assert backend_class("echo").__module__ == module
    assert module in sys.modules
    from linas_lib.api.search_space import SearchSpace, Variable

    space = SearchSpace([Variable("a", (1, 2, 3))])
    assert type(build_predictor("constant", space)).__name__ == "DummyRegressor"
    assert build_searcher("random10", space, n_obj=1, budget=4, seed=0) is not None
    assert selection_registry.get("first")(None, None, None, 2, 0).tolist() == [0, 1]


def test_an_unknown_name_lists_the_installed_plugins_too(installed):
    installed(PLUGIN, {"linas.backends": {"echo": "{module}:EchoBackend"}})
    with pytest.raises(UnknownNameError, match=r"unknown latency backend 'nope'; available: .*echo.*onnxruntime"):
        backend_class("nope")


def test_installed_plugins_validate_in_a_config(installed):
    installed(PLUGIN, {"linas.backends": {"echo": "{module}:EchoBackend"},
                       "linas.predictors": {"constant": "{module}:constant_predictor"}})
    config = config_from_dict({"targets": [{"name": "t", "backend": "echo"}],
                               "search": {"predictors": {"latency": {"name": "constant"}}}})
    assert backend_image_role(config.targets[0].backend, config.targets[0].device) == "base"


def test_a_broken_installed_plugin_fails_when_used_with_a_clear_error(installed):
    module = installed("raise ImportError('needs libfoo')\n", {"linas.backends": {"broken": "{module}:Backend"}})
    assert "broken" in backend_names()  # listing it costs nothing and cannot fail
    with pytest.raises(PluginLoadError, match=rf"latency backend 'broken' \(entry point '{module}:Backend' in group "
                                              r"linas.backends\) failed to load: ImportError: needs libfoo"):
        backend_class("broken")
    with pytest.raises(ConfigError, match="targets.0: .*'broken'.*needs libfoo"):
        config_from_dict({"targets": [{"name": "t", "backend": "broken"}]})
    assert "broken" in backend_names()  # still there, still failing: never half-registered


def test_a_module_entry_point_registers_with_the_decorator(installed):
    installed("""
        from linas_lib.predictors import predictor_registry


        @predictor_registry.register("decorated")
        def decorated(space, **params):
            return "decorated"
    """, {"linas.predictors": {"anything": "{module}"}})
    assert predictor_registry.get("decorated")(None) == "decorated"
    assert "anything" not in predictor_registry  # a module's entry-point name is only a label


def test_an_entry_point_never_replaces_a_built_in(installed):
    installed(PLUGIN, {"linas.backends": {"onnxruntime": "{module}:EchoBackend"}})
    assert backend_class("onnxruntime").__module__ == "linas_lib.backends.onnxruntime_backend"


def test_a_plugin_cannot_take_a_built_in_name():
    with pytest.raises(ValueError, match="algorithm 'nsga2' is already registered"):
        algorithm_registry.register("nsga2")(lambda *a, **k: None)


def test_built_ins_are_imported_on_first_lookup_only(monkeypatch):
    imported = []
    monkeypatch.setattr(registry.importlib, "import_module", lambda name: imported.append(name))
    r = Registry("thing", builtins=("pkg.a", "pkg.b"))
    assert imported == []
    assert r.names() == [] and imported == ["pkg.a", "pkg.b"]
    r.names()
    assert imported == ["pkg.a", "pkg.b"]


def test_a_plugin_file_registers_into_any_registry(tmp_path):
    """supernet.plugin_file is validated before targets and search: what it registers is
    known to their validators, and the pipeline steps load it again from the config."""
    name = f"x{uuid.uuid4().hex[:8]}"
    path = tmp_path / "plugin.py"
    path.write_text(textwrap.dedent(f"""
        from linas_lib.algos import algorithm_registry
        from linas_lib.backends import backend_registry
        from linas_lib.backends.tabular import TabularBackend
        from linas_lib.predictors import predictor_registry
        from linas_lib.supernets import supernet_registry
        from linas_lib.supernets.nasbench201 import NASBench201Supernet


        @supernet_registry.register("{name}_net")
        class Net(NASBench201Supernet):
            pass


        @backend_registry.register("{name}_backend")
        class Table(TabularBackend):
            name = "{name}_backend"


        @predictor_registry.register("{name}_predictor")
        def predictor(space, **params):
            raise NotImplementedError


        @algorithm_registry.register("{name}_algorithm")
        def algorithm(space, n_obj, budget, seed):
            raise NotImplementedError
    """))
    data = {"supernet": {"name": f"{name}_net", "plugin_file": str(path)},
            "targets": [{"name": "t", "backend": f"{name}_backend"}],
            "search": {"algorithm": f"{name}_algorithm", "predictors": {"accuracy": {"name": f"{name}_predictor"}},
                       "inner": {"algorithm": f"{name}_algorithm"}}}
    config = config_from_dict(data)
    assert config.targets[0].backend == f"{name}_backend" and config.search.inner.algorithm == f"{name}_algorithm"
    config_from_dict(data)  # once per process: the file does not register its names twice


# ---- the image a backend needs is the backend's -----------------------------------------
def test_every_backend_names_a_known_image_for_each_of_its_devices():
    from components.images import ROLES

    for name in backend_names():
        cls = backend_class(name)
        assert set(cls.devices) <= set(cls.image_roles), name
        assert set(cls.image_roles.values()) <= set(ROLES), name


@pytest.mark.parametrize("backend, device, role", [
    ("onnxruntime", "cpu", "base"), ("onnxruntime", "cuda", "cuda"), ("torch", "cuda", "cuda"),
    ("openvino", "cpu", "openvino"), ("lut", "cpu", "base"), ("tabular", "cuda", "cuda"),
])
def test_a_target_runs_in_its_backends_image(backend, device, role):
    from pipelines.placement import deployment

    target = {"name": "t", "backend": backend, "device": device, "placement": {"resources": {"gpu": int(device == "cuda")}}}
    config = config_from_dict({"targets": [target]})
    deployment(config)  # a cuda target has its GPU
    assert backend_image_role(config.targets[0].backend, config.targets[0].device) == role


def test_a_device_without_an_image_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend_class("torch"), "image_roles", {"cpu": "base"})
    with pytest.raises(ValueError, match="latency backend torch names no image for device 'cuda'; it has images for: cpu"):
        backend_image_role("torch", "cuda")
