"""Every command the README lists works as written: each line of its shell code blocks (and
each `make X` it names in the text) is checked, its placeholders filled in and its optional
parts given. Cheap `linas` commands run here for real, through the installed entry point's
own `main`; the cluster ones against a local Kubernetes API serving the README's example
node pools (manifests/examples/node-pools.yaml) and a local Kubeflow Pipelines API. The few
that take minutes here are run as written by the test named for them, which this one
checks; `make` targets are dry-run (`make -n`) on a fresh copy of the Makefile. A command
this file does not know how to check fails it, so a command added to the README gets a check."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CONFIGS, ROOT
from linas_lib.cli import build_parser, main

README = ROOT / "README.md"

# Commands that take minutes on a 2-core machine (kfp.local task processes, a trained
# network, 100 predictor trials): the named test runs the same command through `main`.
ELSEWHERE = {
    ("pipeline", "run"): "tests/test_pipeline_progress.py",
    ("export",): "tests/test_deploy.py",
    ("lut", "build"): "tests/test_lut_cli.py",
    ("predictors", "evaluate"): "tests/test_predictor_quality.py",
}
RUN_HERE = {("search",), ("prepare",), ("measure",), ("pipeline", "compile"), ("pipeline", "submit"), ("pipeline", "schedule"),
            ("cluster", "check")}
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)]


def readme_commands(text: str) -> list[str]:
    """The command lines of the shell blocks (comments dropped); the layout tree is no shell."""
    commands = []
    for lang, body in code_blocks(text):
        lines = [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if lang not in SHELL_BLOCKS or (lines and lines[0].split()[0].endswith("/")):
            continue
        commands += [line.split("  #")[0].strip() for line in lines]
    return commands


def filled(command: str, values: dict[str, str]) -> list[str]:
    """The command's words, optional parts given and placeholders (CONFIG, DIR...) filled in."""
    command = re.sub(r"\[([^\]]*)\]", r"\1", command)
    words = [values.get(w, w) for w in shlex.split(command)]
    unknown = [w for w in words if re.fullmatch(r"[A-Z][A-Z_.=a-z]*|.*\.\.\..*", w) and w not in values.values()]
    assert not unknown, f"README command {command!r}: no value for the placeholder(s) {unknown}"
    return words


def _route(words: list[str]) -> tuple[str, ...]:
    return next((k for k in sorted({*ELSEWHERE, *RUN_HERE}, key=len, reverse=True) if tuple(words[1:1 + len(k)]) == k),
                ())


def test_every_readme_command_is_one_this_file_checks():
    text = README.read_text()
    commands = readme_commands(text)
    assert any(c.startswith("make run") for c in commands) and any(c.startswith("linas search") for c in commands)
    unknown = [c for c in commands if not (c.split()[0] == "make" or (c.split()[0] == "linas" and _route(c.split())))]
    assert not unknown, f"README commands this test does not know how to check: {unknown}"
    other = [lang for lang, _ in code_blocks(text) if lang not in SHELL_BLOCKS | {"python", "yaml"}]
    assert not other, f"README code blocks of a kind this test does not check: {other}"


def test_the_readme_yaml_is_a_valid_config():
    from linas_lib.config import config_from_dict

    blocks = [body for lang, body in code_blocks(README.read_text()) if lang == "yaml"]
    assert blocks
    for body in blocks:
        config_from_dict(yaml.safe_load(body))  # ConfigError names the field


def test_the_readme_python_is_run_by_test_one_engine():
    assert any(lang == "python" for lang, _ in code_blocks(README.read_text()))
    assert 'README.md' in (ROOT / "tests" / "test_one_engine.py").read_text()


def make_targets(text: str) -> list[str]:
    """Every `make X` of the shell blocks and of the text."""
    inline = re.findall(r"`make ([a-z][a-z-]*)`", text)
    return sorted({*inline, *(c.split()[1] for c in readme_commands(text) if c.split()[0] == "make")})


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_every_make_target_the_readme_names_dry_runs_on_a_fresh_clone(tmp_path):
    for name in ("Makefile", "pyproject.toml", "constraints.txt", "constraints-tools.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    targets = make_targets(README.read_text())
    assert {"run", "test", "setup", "clean", "bench"} <= set(targets), targets
    env = {**os.environ, "MAKEFLAGS": "", "MAKELEVEL": ""}
    printed = {}
    for target in targets:
        result = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert result.returncode == 0, f"make {target}: {result.stderr}"
        printed[target] = result.stdout
    # a fresh clone: the venv is set up first, then the real work
    assert "pip install" in printed["run"] and "linas pipeline run pipelines/configs/animal_mnist.yaml" in printed["run"]
    assert "pip install" in printed["test"] and "pytest" in printed["test"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "constraints-tools.txt", "constraints.txt",
                                                          "pyproject.toml"], "a dry run changes nothing"


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A Kubernetes API serving the README's example node pools (with room to schedule on)
    as ~/.kube/config's cluster, and a Kubeflow Pipelines API: (kfp fake, its URL, kubeconfig)."""
    from kfp_server import kfp_server
    from test_kubeflow import kube_api, kubeconfig

    room = {"cpu": "8", "memory": "32Gi"}
    nodes = []
    for doc in yaml.safe_load_all((ROOT / "manifests" / "examples" / "node-pools.yaml").read_text()):
        gpu = {"nvidia.com/gpu": "1"} if "nvidia.com/gpu.product" in doc["metadata"]["labels"] else {}
        nodes.append({**doc, "status": {"allocatable": {**room, **gpu},
                                        "conditions": [{"type": "Ready", "status": "True"}]}})
    with kube_api(nodes) as server, kfp_server() as (fake, host):
        config_file = kubeconfig(tmp_path, server)
        (tmp_path / "home" / ".kube").mkdir(parents=True)
        shutil.copy(config_file, tmp_path / "home" / ".kube" / "config")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the kubernetes client's default kubeconfig
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "home" / ".kube" / "config"))
        yield fake, host, config_file


def test_every_linas_command_the_readme_lists_works_as_written(tmp_path, monkeypatch, cluster, capsys):
    fake, host, kube_config = cluster
    monkeypatch.chdir(tmp_path)
    data = yaml.safe_load((CONFIGS / "nasbench201.yaml").read_text())  # a table: no training, seconds
    data["search"] = {"population": 4, "evaluations": 8, "inner": {"evaluations": 60, "population": 10}}
    (tmp_path / "nb201.yaml").write_text(yaml.safe_dump(data))
    values = {"CONFIG": "nb201.yaml", "DIR": "runs/nb201", "FILE.yaml": "build/linas.yaml", "URL": host,
              "NAME": "readme", "s3://...": "s3://linas/runs/readme", "KEY=VALUE": "seed=3", "F": kube_config,
              "T": "nb201", "RUN_DIR": "runs/nb201", "ID": "abc", "TABLE": "lut.json",
              "MEASUREMENTS": "runs/nb201/measurements.parquet"}
    # the README's cluster example as it is, and for submit and schedule (which compile it:
    # kfp takes ~0.1 s per task) cut to one target and one iteration
    example = CONFIGS / "cluster_multi_target.yaml"
    small = yaml.safe_load(example.read_text())
    small["targets"], small["search"] = small["targets"][:1], {**data["search"], "evaluations": 4}
    small["cluster"]["accuracy"]["shards"] = 1
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(small))
    config_of = {("cluster", "check"): str(example), ("pipeline", "submit"): "cluster.yaml",
                 ("pipeline", "schedule"): "cluster.yaml"}

    ran = []
    for command in [c for c in readme_commands(README.read_text()) if c.startswith("linas ")]:
        route = _route(command.split())
        words = filled(command, {**values, "CONFIG": config_of.get(route, values["CONFIG"])})
        build_parser(words[1:]).parse_args(words[1:])  # as `linas` parses it (SystemExit if not)
        if route in ELSEWHERE:
            source = (ROOT / ELSEWHERE[route]).read_text()
            assert "[" + ", ".join(f'"{w}"' for w in route) in source, \
                f"{ELSEWHERE[route]} no longer runs `{command}`: run it there or here"
            continue
        capsys.readouterr()
        assert main(words[1:]) == 0, f"`{command}` as `{shlex.join(words)}`: {capsys.readouterr().err}"
        ran.append((route, capsys.readouterr().out))

    out = {" ".join(route): printed for route, printed in ran}  # search: the --resume, which comes second
    assert [route for route, _ in ran].count(("search",)) == 2, "--out, then --resume"
    assert (tmp_path / "runs" / "nb201" / "report.html").is_file() and "hypervolume per iteration" in out["search"]
    assert "nb201" in out["measure"] and "(random, --seed 7)" in out["measure"]
    assert out["prepare"].startswith("checkpoint: ")
    assert (tmp_path / "build" / "linas.yaml").is_file(), "compile creates the folder"
    assert "target cpu-ov-int8: ok" in out["cluster check"]
    (run,) = fake.runs
    assert run["runtime_config"]["parameters"]["store_uri"] == "s3://linas/runs/readme"
    assert run["runtime_config"]["parameters"]["overrides"]["seed"] == 3
    (job,) = fake.recurring_runs
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 1" and int(job["max_concurrency"]) == 1
    assert {route for route, _ in ran} == RUN_HERE, "every command this file runs is in the README"


def test_the_linas_entry_point_is_installed_beside_python():
    linas = Path(sys.executable).parent / "linas"
    assert linas.is_file(), f"no {linas}: `make setup` installs the package and its `linas` command"
    result = subprocess.run([str(linas), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "search" in result.stdout and "pipeline" in result.stdout
