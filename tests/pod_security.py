"""The Pod Security Standards' `restricted` profile (latest) as a check on a pod spec,
and the pod a compiled KFP task gets, derived from its package.

https://kubernetes.io/docs/concepts/security/pod-security-standards/ — baseline rules
first, then the restricted ones. Each violation is a readable line.
"""
from __future__ import annotations

RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def _containers(pod: dict):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod.get(field) or []:
            yield field, c


def restricted_violations(pod: dict) -> list[str]:
    out = []
    psc = pod.get("securityContext") or {}
    # ---- baseline
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            out.append(f"{field} is true")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            out.append(f"volume {volume['name']}: hostPath")
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            out.append(f"volume {volume['name']}: type {sorted(kinds - RESTRICTED_VOLUME_TYPES)} not allowed")
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctl {sysctl.get('name')} is not safe")
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        out.append("pod seccompProfile Unconfined")
    if psc.get("runAsUser") == 0:
        out.append("pod runAsUser 0")
    pod_non_root = psc.get("runAsNonRoot") is True
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
    for field, c in _containers(pod):
        name = f"{field} {c.get('name')}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{name}: hostPort {port['hostPort']}")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{name}: procMount {sc['procMount']}")
        # ---- restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities.drop must include ALL")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            out.append(f"{name}: capabilities.add {sorted(added)}")
        if sc.get("runAsNonRoot") is False or not (pod_non_root or sc.get("runAsNonRoot") is True):
            out.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined" or not (pod_seccomp or seccomp in ("RuntimeDefault", "Localhost")):
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost (pod or container)")
    return out


def pod_templates(doc: dict) -> list[dict]:
    """The pod specs a manifest creates (Pod, workload templates, CronJob)."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if "template" in spec and "spec" in spec["template"]:
        return [spec["template"]["spec"]]
    return []


# ---- the pod of a compiled task ----------------------------------------------------------------
# What the KFP backend's Argo compiler adds to every executor pod, whatever the pipeline
# says (kubeflow/pipelines backend/src/v2/compiler/argocompiler/security_context.go,
# "applySecurityContextToExecutorTemplate"): seccomp RuntimeDefault on the pod, and on
# the user container no privilege escalation, all capabilities dropped, seccomp
# RuntimeDefault. It does NOT set runAsNonRoot there: that is the pipeline's job.
BACKEND_POD_DEFAULTS = {"seccompProfile": {"type": "RuntimeDefault"}}
BACKEND_CONTAINER_DEFAULTS = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                              "seccompProfile": {"type": "RuntimeDefault"}}
_FIELDS = {"runAsUser": "runAsUser", "runAsGroup": "runAsGroup", "runAsNonRoot": "runAsNonRoot"}


def _quantity(value) -> str:
    return str(value)


def task_pod(container: dict, platform: dict | None) -> dict:
    """The pod spec an executor (deploymentSpec container + kubernetes platform config)
    runs as: the parts this project controls, plus the backend's documented defaults."""
    platform = platform or {}
    resources = container.get("resources") or {}
    k8s_resources = {"requests": {}, "limits": {}}
    for ours, (section, name) in {"resourceCpuRequest": ("requests", "cpu"), "resourceCpuLimit": ("limits", "cpu"),
                                  "resourceMemoryRequest": ("requests", "memory"),
                                  "resourceMemoryLimit": ("limits", "memory")}.items():
        if ours in resources:
            k8s_resources[section][name] = _quantity(resources[ours])
    accelerator = resources.get("accelerator") or {}
    if accelerator.get("resourceType"):
        k8s_resources["limits"][accelerator["resourceType"]] = str(accelerator.get("resourceCount", "1"))
    security = {**BACKEND_CONTAINER_DEFAULTS}
    for ours, theirs in _FIELDS.items():
        if ours in (platform.get("securityContext") or {}):
            value = platform["securityContext"][ours]
            security[theirs] = value if isinstance(value, bool) else int(value)  # int64 is a JSON string
    mounts = [{"name": m["volumeName"], "mountPath": m["mountPath"]} for m in platform.get("emptyDirMounts") or []]
    volumes = [{"name": m["volumeName"], "emptyDir": {k: m[k] for k in ("medium", "sizeLimit") if m.get(k)}}
               for m in platform.get("emptyDirMounts") or []]
    env = [{"name": e["name"], "value": e["value"]} for e in container.get("env") or []]
    for secret in platform.get("secretAsEnv") or []:
        for item in secret["keyToEnv"]:
            env.append({"name": item["envVar"],
                        "valueFrom": {"secretKeyRef": {"name": secret["secretName"], "key": item["secretKey"]}}})
    pod = {
        "securityContext": dict(BACKEND_POD_DEFAULTS),
        "containers": [{
            "name": "main", "image": container["image"], "command": container.get("command", []),
            "args": container.get("args", []), "env": env, "resources": k8s_resources,
            "securityContext": security, "volumeMounts": mounts,
        }],
        "volumes": volumes,
        "restartPolicy": "Never",
    }
    if platform.get("nodeSelector", {}).get("labels"):
        pod["nodeSelector"] = platform["nodeSelector"]["labels"]
    if platform.get("tolerations"):
        pod["tolerations"] = platform["tolerations"]
    if platform.get("activeDeadlineSeconds"):
        pod["activeDeadlineSeconds"] = int(platform["activeDeadlineSeconds"])
    return pod
