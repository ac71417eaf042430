"""The core without Kubeflow: linas_lib imports nothing from pipelines/, components/ or the
Kubeflow packages; the pipeline commands come in as an installed command group; the
extras are declared once; and the fast paths (`linas --help`, a config check) stay free
of the heavy libraries. Import checks run in a fresh interpreter: this one has imported
everything already."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("pipelines", "components", "kfp", "kfp_kubernetes", "kubernetes")  # above the core, or Kubeflow's
HEAVY = ("torch", "kfp", "pandas", "sklearn", "scipy", "matplotlib", "optuna", "onnxruntime")


def _fresh(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints a JSON document."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _loaded(names: tuple[str, ...]) -> str:
    return f"sorted({{m.split('.')[0] for m in sys.modules}} & {set(names)!r})"


def test_importing_every_core_module_imports_nothing_of_kubeflow_or_the_pipeline():
    found = _fresh(f"""
import importlib, json, pkgutil, sys
import linas_lib
names = [m.name for m in pkgutil.walk_packages(linas_lib.__path__, "linas_lib.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({{"modules": len(names), "upper": {_loaded(UPPER)}}}))
""")
    assert found["modules"] > 50 and found["upper"] == []


def test_no_core_source_imports_from_above_it():
    """Inside functions too: the command line and the stages reach the pipeline only through
    entry points, never by name."""
    problems = []
    for path in sorted((ROOT / "linas_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            problems += [f"{path.relative_to(ROOT)}:{node.lineno}: {m}" for m in modules if m.split(".")[0] in UPPER]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("argv", [["--help"], ["search", "pipelines/configs/animal_mnist.yaml", "--help"],
                                  ["measure", "--help"]])
def test_help_imports_neither_torch_nor_kfp_nor_pandas(argv):
    found = _fresh(f"""
import json, sys
from linas_lib.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps({_loaded(HEAVY + ("pipelines", "pydantic"))}))
""")
    assert found == []


@pytest.mark.parametrize("config", sorted((ROOT / "pipelines" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_checking_a_config_imports_nothing_heavy(config):
    found = _fresh(f"""
import json, sys
from linas_lib.config import load_config
load_config({str(config)!r})
print(json.dumps({_loaded(HEAVY + UPPER)}))
""")
    assert found == []


def test_a_bad_config_is_reported_before_the_search_imports_anything_heavy(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: {population: 30, evaluations: 20}\n")
    found = _fresh(f"""
import contextlib, io, json, sys
from linas_lib.cli import main
with contextlib.redirect_stderr(io.StringIO()) as err:
    code = main(["search", {str(bad)!r}, "--out", {str(tmp_path / "run")!r}])
print(json.dumps({{"code": code, "err": err.getvalue(), "heavy": {_loaded(HEAVY)}}}))
""")
    assert found["code"] == 2 and "evaluations (20) must be at least population (30)" in found["err"]
    assert found["heavy"] == []


# ---- the pipeline commands: an installed command group ----------------------------------
def test_the_pipeline_commands_are_an_entry_point_of_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = project["entry-points"]["linas.commands"]
    assert groups == {"pipeline": "pipelines.cli:add_pipeline_commands", "cluster": "pipelines.cli:add_cluster_commands"}
    from linas_lib.cli import OPTIONAL_GROUPS
    from pipelines import cli

    assert set(OPTIONAL_GROUPS) == set(groups)
    for value in groups.values():
        assert callable(getattr(cli, value.partition(":")[2]))


def _without(modules: tuple[str, ...], code: str) -> dict:
    """`code` where `modules` cannot be imported, as without the extra that provides them."""
    return _fresh(f"import sys\nfor m in {modules!r}:\n    sys.modules[m] = None\n" + code)


def test_without_the_kubeflow_extra_the_pipeline_commands_name_it():
    found = _without(("kfp", "kubernetes"), """
import contextlib, io, json
from linas_lib.cli import _command_groups, main
from pipelines import cli
groups = _command_groups()
groups.update({"pipeline": ("", lambda: cli.add_pipeline_commands), "cluster": ("", lambda: cli.add_cluster_commands)})
import linas_lib.cli
linas_lib.cli._command_groups = lambda: groups  # as installed, whatever this environment's metadata says
out = {}
for argv in (["pipeline", "compile", "c.yaml", "-o", "p.yaml"], ["cluster", "check", "c.yaml"]):
    with contextlib.redirect_stderr(io.StringIO()) as err:
        out[argv[0]] = [main(argv), err.getvalue()]
print(json.dumps(out))
""")
    assert found["pipeline"] == [2, "linas: `linas pipeline compile` needs the kubeflow extra (kfp, kfp.kubernetes not "
                                    "installed): pip install 'linas[kubeflow]'\n"]
    assert found["cluster"] == [2, "linas: `linas cluster check` needs the kubeflow extra (kubernetes not installed): "
                                   "pip install 'linas[kubeflow]'\n"]


def test_without_the_pipeline_package_the_commands_say_what_to_install(monkeypatch, capsys):
    import linas_lib.cli as cli

    monkeypatch.setattr(cli, "_command_groups", lambda: {})
    assert cli.main(["pipeline", "compile", "c.yaml", "-o", "p.yaml"]) == 2
    assert capsys.readouterr().err == "linas: `linas pipeline` needs the kubeflow extra: pip install 'linas[kubeflow]'\n"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert re.search(r"pipeline\s+compile, run or submit the Kubeflow pipeline \(not\s+installed: pip install "
                     r"'linas\[kubeflow\]'\)", capsys.readouterr().out)


def test_without_the_s3_extra_an_s3_store_names_it():
    found = _without(("minio",), """
import json
from linas_lib.stores import open_store
try:
    open_store("s3://bucket/prefix?endpoint=localhost:9000")
except ImportError as exc:
    print(json.dumps([type(exc).__name__, str(exc)]))
""")
    assert found == ["MissingExtraError", "an s3:// store needs the s3 extra (minio not installed): pip install 'linas[s3]'"]


# ---- the extras, declared once --------------------------------------------------------------
def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!\[ ;]", r)[0].lower() for r in requirements}


def test_the_core_requires_no_optional_package_and_dev_installs_every_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert _names(extras["kubeflow"]) == {"kfp", "kfp-kubernetes", "kubernetes"}
    assert _names(extras["openvino"]) == {"openvino", "nncf"}
    assert _names(extras["s3"]) == {"minio"}
    assert not _names(project["dependencies"]) & set().union(*(_names(extras[e]) for e in ("kubeflow", "openvino", "s3")))
    (dev_extras,) = [r for r in extras["dev"] if r.startswith("linas[")]
    assert set(dev_extras.removeprefix("linas[").removesuffix("]").split(",")) == set(extras) - {"dev"}


def test_constraints_pin_every_package_of_every_extra():
    pinned = {line.split("==")[0].lower() for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra in ("kubeflow", "openvino", "s3"):
        assert _names(project["optional-dependencies"][extra]) <= pinned, extra


def test_the_extras_table_of_the_code_matches_pyproject():
    from linas_lib.extras import EXTRAS

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(EXTRAS) == set(project["optional-dependencies"]) - {"dev"}
    as_modules = {"kfp-kubernetes": "kfp.kubernetes"}
    for extra, modules in EXTRAS.items():
        expected = {as_modules.get(n, n) for n in _names(project["optional-dependencies"][extra])}
        assert set(modules) == expected, extra


# ---- the config: a pure schema, a resolver, placement in the deployment layer ----------------
def test_the_schema_is_pure_data_checking():
    """Validating against the schema runs no plugin file, looks up no registry and imports no
    plugin: unknown names pass the schema (the resolver names them), structure does not."""
    found = _fresh("""
import json, sys
from linas_lib.config.schema import LinasConfig
c = LinasConfig.model_validate({"supernet": {"name": "nope", "plugin_file": "/no/such/plugin.py"},
                                "targets": [{"name": "t", "backend": "nope"}],
                                "search": {"algorithm": "nope", "selection": "nope",
                                           "predictors": {"accuracy": {"name": "nope"}}}})
try:
    LinasConfig.model_validate({"seed": -1})
    bad = "accepted"
except Exception as exc:
    bad = type(exc).__name__
loaded = sorted(m for m in sys.modules if m.startswith(("linas_lib.supernets", "linas_lib.backends",
                "linas_lib.predictors", "linas_lib.algos", "linas_lib.registry", "linas_lib.search", "linas_plugin")))
print(json.dumps({"name": c.supernet.name, "bad": bad, "loaded": loaded}))
""")
    assert found == {"name": "nope", "bad": "ValidationError", "loaded": []}


def test_the_schema_imports_nothing_above_it():
    tree = ast.parse((ROOT / "linas_lib" / "config" / "schema.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in imported if m and m.startswith("linas_lib")}
    assert ours <= {"linas_lib.api.objective", "linas_lib.messages", "linas_lib.config.resolve"}, ours


def test_kubernetes_placement_lives_in_the_pipeline_layer():
    import linas_lib.config as config
    from pipelines import placement

    for name in ("Placement", "Resources", "Toleration", "ClusterConfig", "StageResources", "TaskTimeouts"):
        assert not hasattr(config, name) and hasattr(placement, name), name
    # a target has a placement; the core keeps it as data the deployment layer checks
    target = config.config_from_dict({"targets": [{"name": "t", "placement": {"node_selector": {"pool": "a"}}}]})
    assert placement.deployment(target).placement(target.targets[0]).node_selector == {"pool": "a"}


def test_the_measuring_stages_import_none_of_the_search():
    """Each pipeline task is a process: what `linas_lib.stages` imports is every task's
    start-up, and the accuracy and latency tasks need no predictors, MOEA or scipy."""
    found = _fresh(f"""
import json, sys
import linas_lib.stages
ours = [m for m in sys.modules if m.startswith(("linas_lib.search", "linas_lib.predictors", "linas_lib.algos"))]
print(json.dumps(sorted(ours) + {_loaded(("scipy", "sklearn", "pymoo", "optuna"))}))
""")
    assert found == []
