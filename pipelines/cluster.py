"""Preflight against the cluster: can every hardware target's pod be scheduled?

A target that no node can run would leave its pod Pending forever; this finds that
before anything is submitted, and reads the matched nodes' hardware labels into
the target's fingerprint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from linas_lib.config import LinasConfig
from pipelines.placement import Placement, deployment

HARDWARE_LABELS = {
    "instance_type": ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type"),
    "cpu_model": ("feature.node.kubernetes.io/cpu-model.id", "cpu-model", "linas.io/cpu-model"),
    "gpu_product": ("nvidia.com/gpu.product",),
    "accelerator": ("linas.io/accelerator", "cloud.google.com/gke-accelerator"),
}


class PreflightError(RuntimeError):
    pass


@dataclass
class PlacementCheck:
    name: str
    nodes: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # node -> why it cannot run the pod
    fingerprint: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.nodes)


def _quantity(value: Any) -> float:
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(str(value)))


def _tolerates(taint: dict, tolerations) -> bool:
    if taint.get("effect") == "PreferNoSchedule":
        return True
    for t in tolerations:
        if t.effect and t.effect != taint.get("effect"):
            continue
        if t.operator == "Exists" and (t.key is None or t.key == taint.get("key")):
            return True
        if t.operator == "Equal" and t.key == taint.get("key") and (t.value or "") == (taint.get("value") or ""):
            return True
    return False


def why_not(node: dict, placement: Placement) -> str | None:
    """None when the node can run a pod with this placement, else the reason."""
    meta, spec, status = node.get("metadata", {}), node.get("spec", {}), node.get("status", {})
    labels = meta.get("labels") or {}
    if spec.get("unschedulable"):
        return "cordoned (unschedulable)"
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if ready and ready[0].get("status") != "True":
        return "not Ready"
    for key, value in placement.node_selector.items():
        if labels.get(key) != value:
            return f"label {key}={value} missing (has {labels.get(key)!r})"
    for taint in spec.get("taints") or []:
        if not _tolerates(taint, placement.tolerations):
            return f"taint {taint.get('key')}={taint.get('value', '')}:{taint.get('effect')} not tolerated"
    allocatable = status.get("allocatable") or {}
    r = placement.resources
    for resource, wanted in (("cpu", r.cpu_request or r.cpu_limit), ("memory", r.memory_request or r.memory_limit)):
        if wanted and _quantity(allocatable.get(resource, 0)) < _quantity(wanted):
            return f"allocatable {resource} {allocatable.get(resource, 0)} < requested {wanted}"
    if r.gpu and _quantity(allocatable.get("nvidia.com/gpu", 0)) < r.gpu:
        return f"allocatable nvidia.com/gpu {allocatable.get('nvidia.com/gpu', 0)} < requested {r.gpu}"
    return None


def hardware_fingerprint(node: dict) -> dict[str, str]:
    labels = node.get("metadata", {}).get("labels") or {}
    found = {}
    for name, keys in HARDWARE_LABELS.items():
        for key in keys:
            if key in labels:
                found[name] = labels[key]
                break
    return found


def check_placements(config: LinasConfig, nodes: list[dict]) -> list[PlacementCheck]:
    placed = deployment(config)
    placements: list[tuple[str, Placement]] = [("accuracy", placed.cluster.accuracy)]
    placements += [(f"target {t.name}", placed.placement(t)) for t in config.latency_targets]
    checks = []
    for name, placement in placements:
        check = PlacementCheck(name)
        for node in nodes:
            node_name = node.get("metadata", {}).get("name", "?")
            reason = why_not(node, placement)
            if reason is None:
                check.nodes.append(node_name)
                check.fingerprint = check.fingerprint or hardware_fingerprint(node)
            else:
                check.reasons[node_name] = reason
        checks.append(check)
    return checks


def list_nodes(kubeconfig: str | None = None, context: str | None = None) -> list[dict]:
    from kubernetes import client, config as kube_config

    try:
        if kubeconfig:
            kube_config.load_kube_config(config_file=kubeconfig, context=context)
        else:
            try:
                kube_config.load_incluster_config()
            except kube_config.ConfigException:
                kube_config.load_kube_config(context=context)
        api = client.CoreV1Api()
        return api.api_client.sanitize_for_serialization(api.list_node(_request_timeout=15)).get("items", [])
    except Exception as exc:
        raise PreflightError(f"cannot list the cluster's nodes: {type(exc).__name__}: {exc}") from None


def preflight(config: LinasConfig, kubeconfig: str | None = None) -> list[PlacementCheck]:
    """Raise PreflightError naming every placement that no node can run."""
    checks = check_placements(config, list_nodes(kubeconfig))
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = []
        for c in failed:
            detail = "; ".join(f"{n}: {r}" for n, r in sorted(c.reasons.items())) or "the cluster has no nodes"
            lines.append(f"  {c.name}: no schedulable node ({detail})")
        raise PreflightError("these pods would stay Pending:\n" + "\n".join(lines))
    return checks
