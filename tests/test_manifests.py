"""The Kubernetes manifests: schema-valid (kubernetes-validate, strict, offline), every
overlay rendered by `kubectl kustomize`, Pod Security `restricted` for every pod, no
committed credentials, secrets and RBAC in the namespace where runs execute, and MinIO
reachable only by pipeline pods, with the pipeline's scoped user rather than root."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kustomize import OVERLAYS, render
from pod_security import pod_templates, restricted_violations

ROOT = Path(__file__).resolve().parents[1] / "manifests"
RESOURCE_FILES = sorted(p for p in ROOT.rglob("*.yaml") if p.name != "kustomization.yaml")
K8S_VERSION = "1.33"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_resource_passes_strict_validation(path):
    for doc in documents(path):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_can_fail():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


# ---- kustomize -------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def rendered(overlay: str, tmp_root: str) -> tuple[dict, ...]:
    """`kubectl kustomize` of an overlay, in a copy whose credential files are the examples."""
    return tuple(d for d in yaml.safe_load_all(render(overlay, Path(tmp_root))) if d)


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("kustomize"))


def _by_kind(docs, kind):
    return {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_and_validate_strictly(overlay, tmp_root):
    docs = rendered(overlay, tmp_root)
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "PersistentVolumeClaim", "Job", "ServiceAccount", "Role",
            "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Secret", "ConfigMap", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("overlay,runs_in", OVERLAYS.items())
def test_secret_service_account_and_rbac_live_where_runs_execute(overlay, runs_in, tmp_root):
    docs = rendered(overlay, tmp_root)
    secrets = _by_kind(docs, "Secret")
    # the store Secret the compiled pipeline names (cluster.store_secret) is in the runs'
    # namespace: use_secret_as_env looks it up there
    assert (runs_in, "linas-minio") in secrets
    assert set(secrets[(runs_in, "linas-minio")]["data"]) == {"accesskey", "secretkey"}
    # root credentials exist only beside MinIO
    assert [k for k in secrets if k[1] == "linas-minio-root"] == [("linas", "linas-minio-root")]
    assert (runs_in, "linas-pipeline-runner") in _by_kind(docs, "ServiceAccount")
    binding = _by_kind(docs, "RoleBinding")[(runs_in, "linas-pipeline-runner")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "linas-pipeline-runner", "namespace": runs_in}]
    assert (runs_in, "linas-pipeline-runner") in _by_kind(docs, "Role")
    crb = _by_kind(docs, "ClusterRoleBinding")[(None, "linas-submitter-node-reader")]
    assert crb["subjects"][0]["namespace"] == runs_in
    policy = _by_kind(docs, "NetworkPolicy")[("linas", "linas-minio-api")]
    sources = policy["spec"]["ingress"][0]["from"]
    assert sources[0]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [runs_in]}]
    assert sources[0]["podSelector"]["matchLabels"] == {"linas.io/store-client": "true"}


def test_the_compiled_pipeline_matches_the_manifests():
    """Names the manifests and the compiled pipeline must agree on."""
    from pipelines.placement import ClusterConfig
    from pipelines.linas_pipeline import STORE_CLIENT_LABEL

    cluster = ClusterConfig()
    assert cluster.store_secret == "linas-minio" and cluster.service_account == "linas-pipeline-runner"
    policy = documents(ROOT / "base" / "networkpolicy.yaml")[0]
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == dict([STORE_CLIENT_LABEL])
    rbac = {d["metadata"]["name"] for d in documents(ROOT / "runner" / "rbac.yaml") if d["kind"] == "ServiceAccount"}
    assert cluster.service_account in rbac
    minio = documents(ROOT / "base" / "minio.yaml")[1]["spec"]["template"]["spec"]
    assert {m["name"] for m in minio["volumes"]} >= {"data", "certs", "tmp"}
    deployment_uid = minio["securityContext"]["runAsUser"]
    assert deployment_uid == cluster.run_as_user  # one non-root UID everywhere, the images' too


# ---- pods: Pod Security restricted, writable directories, resources -------------------------------------
def _pods():
    for path in RESOURCE_FILES:
        for doc in documents(path):
            for pod in pod_templates(doc):
                yield f"{path.relative_to(ROOT)}:{doc['metadata']['name']}", doc, pod


def test_every_pod_template_meets_the_restricted_profile():
    pods = list(_pods())
    assert {name.split(":")[1] for name, _, _ in pods} >= {"linas-minio", "linas-create-bucket"}
    for name, _, pod in pods:
        assert restricted_violations(pod) == [], name


def test_the_restricted_check_finds_violations():
    pod = {"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
           "volumes": [{"name": "h", "hostPath": {"path": "/"}}], "hostNetwork": True}
    found = "\n".join(restricted_violations(pod))
    for rule in ("hostNetwork", "hostPath", "allowPrivilegeEscalation", "drop must include ALL", "SYS_ADMIN",
                 "runAsNonRoot", "seccompProfile"):
        assert rule in found, rule


def test_programs_write_only_to_writable_volumes_and_pods_have_limits():
    for name, _, pod in _pods():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts and "emptyDir" in mounts["/tmp"], f"{name}: no writable /tmp"
            home = {e["name"]: e.get("value") for e in c.get("env", [])}.get("HOME")
            assert home == "/tmp", f"{name}: HOME must be on the writable /tmp (mc: ~/.mc, minio: ~/.minio)"
            assert c["resources"]["limits"] and c["resources"]["requests"], name
            for env in c.get("env", []):
                assert "value" not in env or "KEY" not in env["name"], f"{name}: literal credential"


def test_minio_has_no_console_and_a_writable_certs_dir():
    deployment, service = [d for d in documents(ROOT / "base" / "minio.yaml") if d["kind"] in ("Deployment", "Service")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--console-address" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MINIO_BROWSER"]["value"] == "off"
    assert [p["containerPort"] for p in container["ports"]] == [9000]
    assert [p["port"] for p in service["spec"]["ports"]] == [9000]
    certs = container["args"][container["args"].index("--certs-dir") + 1]
    assert certs in {m["mountPath"] for m in container["volumeMounts"]}
    # MinIO's root credentials come from the root Secret, never the pipeline's, as files
    spec = deployment["spec"]["template"]["spec"]
    assert _secret_files(spec, container) == {env["MINIO_ROOT_USER_FILE"]["value"]: ("linas-minio-root", "rootuser"),
                                              env["MINIO_ROOT_PASSWORD_FILE"]["value"]: ("linas-minio-root",
                                                                                         "rootpassword")}


def _secret_files(spec: dict, container: dict) -> dict[str, tuple[str, str]]:
    """Each file a container sees from a Secret volume -> (Secret, key). Every key is listed
    and none is optional: a missing Secret or key keeps the pod from starting (MinIO would
    ignore a missing *_FILE and fall back to its default credentials)."""
    volumes = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
    files = {}
    for mount in container["volumeMounts"]:
        if mount["name"] in volumes:
            secret = volumes[mount["name"]]
            assert mount.get("readOnly") is True and not secret.get("optional"), mount
            assert secret["defaultMode"] == 0o440, secret  # group-readable through fsGroup only
            for item in secret["items"]:
                files[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return files


def test_no_pod_gets_a_secret_as_env():
    """Secrets reach the manifests' pods as read-only files (checkov CKV_K8S_35): not in
    /proc/*/environ, not inherited by every child process."""
    for name, _, pod in _pods():
        for c in pod["containers"] + pod.get("initContainers", []):
            assert not [e for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})], name
            assert not [e for e in c.get("envFrom", []) if "secretRef" in e], name


# ---- data: least privilege -----------------------------------------------------------------------------
def test_the_pipeline_user_gets_only_its_bucket_prefixes():
    policy = json.loads((ROOT / "base" / "pipeline-policy.json").read_text())
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::linas", "arn:aws:s3:::linas/runs/*", "arn:aws:s3:::linas/supernets/*"}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all(a.startswith("s3:") and "*" not in a for a in statement["Action"]), statement
        if any(r.endswith("/supernets/*") for r in statement["Resource"]):
            assert statement["Action"] == ["s3:GetObject"]  # checkpoints are read, never written by runs
    assert not any(a.startswith("admin:") for s in policy["Statement"] for a in s["Action"])


def test_the_bucket_job_creates_the_scoped_user_with_root_credentials_kept_to_itself():
    (job,) = documents(ROOT / "base" / "create-bucket-job.yaml")
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    script = container["args"][0]
    for step in ("mc mb --ignore-existing linas/linas", "mc admin policy create linas linas-pipeline",
                 "mc admin user add linas", "mc admin policy attach linas linas-pipeline --user"):
        assert step in script, step
    files = _secret_files(spec, container)
    read = dict(re.findall(r"^(\w+)=\$\(cat (\S+)\)$", script, re.M))
    assert {var: files[path] for var, path in read.items()} == {
        "ROOT_USER": ("linas-minio-root", "rootuser"), "ROOT_PASSWORD": ("linas-minio-root", "rootpassword"),
        "PIPELINE_ACCESS_KEY": ("linas-minio", "accesskey"), "PIPELINE_SECRET_KEY": ("linas-minio", "secretkey")}
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]  # may read them
    policy = re.search(r"mc admin policy create linas linas-pipeline (\S+)", script)[1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    (policy_volume,) = [v for v in spec["volumes"] if v["name"] == mounts[str(Path(policy).parent)]]
    assert policy_volume["configMap"]["name"] == "linas-minio-policy" and Path(policy).name == "pipeline-policy.json"
    assert job["spec"]["template"]["metadata"]["labels"] == {"app.kubernetes.io/name": "linas-create-bucket"}


def test_only_pipeline_pods_and_the_bucket_job_reach_minio():
    docs = {d["metadata"]["name"]: d for d in documents(ROOT / "base" / "networkpolicy.yaml")}
    deny = docs["linas-default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    api = docs["linas-minio-api"]["spec"]
    assert api["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "linas-minio"}
    (rule,) = api["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert len(rule["from"]) == 2


# ---- credentials and RBAC ---------------------------------------------------------------------------------
def test_no_committed_credentials_only_examples():
    for path in RESOURCE_FILES:
        for doc in documents(path):
            assert doc["kind"] != "Secret", f"{path}: Secrets come from a generator, never from a file"
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((ROOT / "overlays" / overlay / "kustomization.yaml").read_text())
        for generator in kustomization["secretGenerator"]:
            for env in generator["envs"]:
                assert not (ROOT / "overlays" / overlay / env).exists(), f"{overlay}/{env}: real credentials"
                assert "CHANGE-ME" in (ROOT / "overlays" / overlay / f"{env}.example").read_text()


def test_rbac_is_least_privilege():
    for doc in documents(ROOT / "runner" / "rbac.yaml"):
        for rule in doc.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            if "secrets" in rule["resources"] or "configmaps" in rule["resources"]:
                # KFP's own launcher objects, by name, read-only; never the store Secret
                assert rule.get("resourceNames") and rule["verbs"] == ["get"], rule
                assert "linas-minio" not in rule["resourceNames"]
            if "nodes" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list"}
