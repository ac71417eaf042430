"""checkov over what the project deploys and builds: the manifests as committed, every
overlay as `kubectl kustomize` renders it, and the Dockerfiles, in one checkov run. No
failed check may be left unexplained: each is fixed, or listed in checkov-skips.yaml with
its reason, and a listed skip that checkov no longer needs fails too.

checkov lives in its own venv (`make tools`, .venv-tools): it needs tabulate<0.10, which
the main venv's pins exclude. `make test` sets LINAS_TOOLS_VENV, and then a missing
checkov fails; elsewhere the test skips."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kustomize import OVERLAYS, render

ROOT = Path(__file__).resolve().parents[1]
SKIPS = ROOT / "checkov-skips.yaml"
FRAMEWORKS = ("kubernetes", "dockerfile")

# A pod with what checkov must find: proof that it scanned the directory and that its
# report is read right (a checkov that scanned nothing would otherwise pass the test).
CANARY = """\
apiVersion: v1
kind: Pod
metadata: {name: checkov-canary, namespace: canary}
spec:
  containers:
    - name: c
      image: registry.example.com/canary:1.0
      env:
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: canary, key: token}}
"""
CANARY_MUST_FAIL = {"CKV_K8S_43", "CKV_K8S_35", "CKV_K8S_15", "CKV_K8S_22", "CKV_K8S_20", "CKV_K8S_28"}


def _checkov() -> Path:
    configured = os.environ.get("LINAS_TOOLS_VENV")
    exe = Path(configured or ROOT / ".venv-tools") / "bin" / "checkov"
    if exe.is_file():
        return exe
    if configured:
        pytest.fail(f"{exe} is missing: `make tools` installs it (make test runs it first)")
    pytest.skip("checkov's venv .venv-tools is absent: `make tools` installs it (make test does)")


def _finding(check_type: str, result: dict) -> str:
    """What a skip names: a Kubernetes resource (KIND.NAMESPACE.NAME, the same in a manifest
    and in a rendered overlay), or a Dockerfile's path."""
    return result["resource"] if check_type == "kubernetes" else result["file_path"].lstrip("/")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, dict]:
    """One checkov run over a scan directory: manifests/ (committed files), rendered/
    (each overlay), images/ (the Dockerfiles) and the canary. By check type."""
    exe = _checkov()
    work = tmp_path_factory.mktemp("checkov")
    scan = work / "scan"
    shutil.copytree(ROOT / "manifests", scan / "manifests")
    for overlay in OVERLAYS:
        (scan / "rendered").mkdir(exist_ok=True)
        (scan / "rendered" / f"{overlay}.yaml").write_text(render(overlay, work))
    for dockerfile in (ROOT / "images").glob("*/Dockerfile"):
        target = scan / "images" / dockerfile.parent.name / "Dockerfile"
        target.parent.mkdir(parents=True)
        shutil.copy(dockerfile, target)
    (scan / "canary").mkdir()
    (scan / "canary" / "pod.yaml").write_text(CANARY)
    # offline and quiet: no Prisma Cloud guidelines download, no PyPI update check
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    out = subprocess.run([str(exe), "--directory", str(scan), "--framework", *FRAMEWORKS, "--skip-download",
                          "--output", "json"], capture_output=True, text=True, timeout=300, cwd=work, env=env)
    assert out.returncode in (0, 1), out.stderr[-4000:]  # 1: some check failed
    data = json.loads(out.stdout)
    runs = {r["check_type"]: r for r in (data if isinstance(data, list) else [data])}
    assert set(runs) == set(FRAMEWORKS), sorted(runs)
    for check_type, run in runs.items():
        assert run["summary"]["parsing_errors"] == 0, (check_type, run["results"].get("parsing_errors"))
    return runs


def _results(report, kind: str):
    for check_type, run in report.items():
        for result in run["results"][kind]:
            yield check_type, result


def test_checkov_reads_every_file_and_finds_the_canary(report):
    scanned = {r["file_path"].lstrip("/") for _, r in _results(report, "passed_checks")}
    scanned |= {r["file_path"].lstrip("/") for _, r in _results(report, "failed_checks")}
    expected = {f"rendered/{o}.yaml" for o in OVERLAYS} | {"canary/pod.yaml"}
    expected |= {f"images/{p.parent.name}/Dockerfile" for p in (ROOT / "images").glob("*/Dockerfile")}
    expected |= {"manifests/base/minio.yaml", "manifests/base/create-bucket-job.yaml", "manifests/runner/rbac.yaml"}
    assert expected <= scanned, sorted(expected - scanned)
    canary = {r["check_id"] for _, r in _results(report, "failed_checks") if r["file_path"] == "/canary/pod.yaml"}
    assert CANARY_MUST_FAIL <= canary, sorted(CANARY_MUST_FAIL - canary)


def test_no_failed_check_is_left_unexplained_and_no_skip_is_stale(report):
    skips = yaml.safe_load(SKIPS.read_text()) or {}
    for check_id, skip in skips.items():
        assert len(str(skip.get("reason", "")).split()) >= 8, f"{check_id}: say why it does not apply"
        assert skip.get("resources"), f"{check_id}: name the resources it fails for"
    failed = {(r["check_id"], _finding(t, r)): r["check_name"] for t, r in _results(report, "failed_checks")
              if r["file_path"] != "/canary/pod.yaml"}
    allowed = {(check_id, resource) for check_id, skip in skips.items() for resource in skip["resources"]}
    unexplained = sorted(set(failed) - allowed)
    assert not unexplained, "checkov failures to fix (or list in checkov-skips.yaml with a reason):\n" + "\n".join(
        f"  {check_id} {where}: {failed[check_id, where]}" for check_id, where in unexplained)
    stale = sorted(allowed - set(failed))
    assert not stale, f"skips checkov no longer needs: remove them from checkov-skips.yaml: {stale}"
