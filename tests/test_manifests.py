"""The Kubernetes manifests: schema-valid (kubernetes-validate, strict, offline),
a complete kustomize base, no committed credentials, hardened pods."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1] / "manifests"
RESOURCE_FILES = sorted(p for p in ROOT.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_resource_passes_strict_validation(path):
    for doc in documents(path):
        kubernetes_validate.validate(doc, "1.33", strict=True)


def test_strict_validation_can_fail():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33", strict=True)


def test_kustomization_lists_existing_files_and_generates_the_secret():
    kustomization = yaml.safe_load((ROOT / "base" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (ROOT / "base" / resource).is_file(), resource
    (generator,) = kustomization["secretGenerator"]
    assert generator["name"] == "linas-minio"
    env_file = ROOT / "base" / generator["envs"][0]
    assert not env_file.exists(), "real credentials must not be committed"
    example = (ROOT / "base" / (generator["envs"][0] + ".example")).read_text()
    assert "CHANGE-ME" in example


def test_no_credentials_and_hardened_containers():
    kinds = set()
    for path in RESOURCE_FILES:
        for doc in documents(path):
            kinds.add(doc["kind"])
            assert doc["kind"] != "Secret", f"{path}: Secrets come from the generator, never from a file"
            pod = doc.get("spec", {}).get("template", {}).get("spec")
            if not pod:
                continue
            assert pod["securityContext"]["runAsNonRoot"] is True, path
            for container in pod["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert container["resources"]["limits"], container["name"]
                for env in container.get("env", []):
                    assert "value" not in env or "KEY" not in env["name"], f"{path}: literal credential"
    assert {"Namespace", "Deployment", "Service", "PersistentVolumeClaim", "Job", "ServiceAccount", "Role",
            "RoleBinding", "Node"} <= kinds


def test_rbac_is_least_privilege():
    rbac = documents(ROOT / "base" / "rbac.yaml")
    for doc in rbac:
        for rule in doc.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            assert "secrets" not in rule["resources"]
            if "nodes" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list"}
