"""Kubernetes placement: where each task's pod runs, with what resources, as whom.

The core keeps these sections as plain data (`cluster`, and each target's
`placement`); this layer owns their schema and checks them wherever a pipeline is
compiled, run or submitted (`deployment(config)`), with errors that name the field
as the core's do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, ValidationError

from linas_lib.config import ConfigError, LinasConfig, TargetConfig
from linas_lib.config.schema import Location, _Strict, config_error, format_errors

ENV_LEASE_TTL = "LINAS_LEASE_TTL_S"  # read by linas_lib.lease in the task


class Toleration(_Strict):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"


class Resources(_Strict):
    """Kubernetes requests and limits of one task's pod."""

    cpu_request: str | None = Field(None, pattern=_QUANTITY)
    cpu_limit: str | None = Field(None, pattern=_QUANTITY)
    memory_request: str | None = Field(None, pattern=_QUANTITY)
    memory_limit: str | None = Field(None, pattern=_QUANTITY)
    gpu: int = Field(0, ge=0, le=16, description="nvidia.com/gpu count")


class Placement(_Strict):
    """Where a task's pod may run: node pool labels, taints it tolerates, resources."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)


class AccuracyPlacement(Placement):
    """Accuracy runs on GPU nodes, sharded over parallel pods."""

    shards: int = Field(1, ge=1, le=64)
    resources: Resources = Field(default_factory=lambda: Resources(gpu=1))


_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def _default(cpu_request: str, cpu_limit: str, memory_request: str, memory_limit: str) -> Any:
    return Field(default_factory=lambda: Resources(cpu_request=cpu_request, cpu_limit=cpu_limit,
                                                   memory_request=memory_request, memory_limit=memory_limit))


class StageResources(_Strict):
    """Requests and limits of the tasks that have no placement of their own: a namespace
    with a ResourceQuota (Kubeflow profiles often have one) rejects pods without them.
    `accuracy` fills what `cluster.accuracy.resources` leaves unset; latency pods take
    each target's `resources` (Guaranteed QoS, checked when compiling)."""

    accuracy: Resources = _default("2", "4", "4Gi", "8Gi")
    resolve: Resources = _default("100m", "1", "256Mi", "512Mi")
    sample: Resources = _default("500m", "2", "1Gi", "2Gi")
    gather: Resources = _default("100m", "1", "256Mi", "512Mi")
    train: Resources = _default("1", "2", "2Gi", "4Gi")
    moea: Resources = _default("1", "2", "2Gi", "4Gi")
    report: Resources = _default("500m", "2", "1Gi", "2Gi")


class TaskTimeouts(_Strict):
    """Seconds one pod of each task kind may run (activeDeadlineSeconds; a retry is a new pod)."""

    resolve: int = Field(300, ge=30, le=604_800)
    sample: int = Field(1800, ge=30, le=604_800)
    accuracy: int = Field(14_400, ge=30, le=604_800)
    gather: int = Field(300, ge=30, le=604_800)
    latency: int = Field(14_400, ge=30, le=604_800)
    train: int = Field(3600, ge=30, le=604_800)
    moea: int = Field(3600, ge=30, le=604_800)
    report: int = Field(1800, ge=30, le=604_800)


class ClusterConfig(_Strict):
    """Kubernetes-side settings of the compiled pipeline (ignored by kfp.local)."""

    namespace: str | None = Field(
        None, pattern=_DNS_LABEL,
        description="namespace where runs execute (a Kubeflow profile namespace multi-user); null: KFP's default",
    )
    service_account: str | None = Field(
        "linas-pipeline-runner", pattern=_DNS_LABEL,
        description="service account of every run's pods (manifests/runner); null: KFP's default runner",
    )
    run_as_user: int = Field(10001, ge=1, description="UID of every task's container (the images' user)")
    run_as_group: int = Field(10001, ge=1)
    tmp_size_limit: str = Field("4Gi", pattern=_QUANTITY, description="size of the writable emptyDir at /tmp")
    resources: StageResources = Field(default_factory=StageResources)
    timeouts: TaskTimeouts = Field(default_factory=TaskTimeouts)
    max_package_kib: int = Field(
        1024, ge=64, le=16_384, description="compile fails above this package size (Argo/etcd refuse ~1-1.5 MiB)"
    )

    accuracy: AccuracyPlacement = Field(default_factory=AccuracyPlacement)
    store_secret: str | None = Field(
        "linas-minio", description="Secret with keys accesskey/secretkey, injected as AWS_* env; null: none"
    )
    integrity_secret: str | None = Field(
        None, pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="Secret with key integritykey, injected as LINAS_INTEGRITY_KEY: every stored object is "
                    "HMAC-signed and verified on read (docs/security.md); null: plain sha256 digests",
    )
    s3_endpoint: str | None = Field(
        None, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$",
        description="host:port of MinIO/S3 (no scheme, no user:password@), set as LINAS_S3_ENDPOINT",
    )
    s3_secure: bool = False
    retries: int = Field(2, ge=0, le=10)
    retry_backoff: str = Field("30s", pattern=r"^[0-9]+(s|m|h)$")
    images: dict[Literal["base", "cuda", "openvino"], Location] = Field(default_factory=dict)

@dataclass(frozen=True)
class Deployment:
    """A config's Kubernetes side, checked: the cluster settings and each target's placement."""

    cluster: ClusterConfig
    placements: dict[str, Placement]  # target name -> placement

    def placement(self, target: TargetConfig) -> Placement:
        return self.placements[target.name]

    @property
    def lease_ttl_s(self) -> float:
        """Long enough for the longest gap between lease renewals: one iteration, every attempt."""
        t = self.cluster.timeouts
        return float((max(t.accuracy, t.latency) + t.train + t.moea + t.sample) * (self.cluster.retries + 1))


def deployment(config: LinasConfig) -> Deployment:
    """Check `config.cluster` and every target's placement; ConfigError lists every problem."""
    lines: list[str] = []
    cluster = None
    try:
        cluster = ClusterConfig.model_validate(config.cluster)
    except ValidationError as exc:
        lines += format_errors(exc, ClusterConfig, ("cluster",))
    placements = {}
    for i, target in enumerate(config.targets):
        try:
            placement = placements[target.name] = Placement.model_validate(target.placement)
        except ValidationError as exc:
            lines += format_errors(exc, Placement, ("targets", i, "placement"))
            continue
        if target.device == "cuda" and placement.resources.gpu == 0:
            lines.append(f"  targets.{i}.placement.resources.gpu: target {target.name!r}: device cuda needs "
                         "resources.gpu >= 1")
    if lines:
        raise config_error(lines)
    return Deployment(cluster, placements)


__all__ = ["AccuracyPlacement", "ClusterConfig", "ConfigError", "Deployment", "Placement", "Resources",
           "StageResources", "TaskTimeouts", "Toleration", "deployment"]
