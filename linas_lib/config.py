"""The one configuration model, validated once where it enters (CLI, pipeline task).

Errors name the offending field and, for registry-backed names, the allowed values.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from linas_lib.api.objective import Objective, latency_column
from linas_lib.messages import short_repr

COMPLEXITY_OBJECTIVES = ("macs", "params")


class ConfigError(ValueError):
    """A config that failed validation; the message lists every bad field."""


class _Strict(BaseModel):
    # NaN and infinity are refused: `min_time_s: .inf` would time forever, a NaN bound never holds
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_name(kind: str, name: str, names: list[str]) -> str:
    if name not in names:
        raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(names)}")
    return name


# ---- locations ------------------------------------------------------------------------------
# Every path or URI field is a `Location`, checked by the one validator below: a config is
# compiled into the pipeline, readable by anyone who can view it, so no secret may ride in it.
# Free-form `params` dicts get the same check on every string inside them (a LUT table...).
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_SECRET_PARAM = re.compile(
    r"^(sig|.*(secret|password|passwd|token|signature|credential|access[_-]?key|api[_-]?key|private[_-]?key).*)$", re.I
)
CREDENTIALS_HINT = ("credentials come from the environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                    "injected from the Kubernetes Secret named by cluster.store_secret")


class LocationField:
    """Marks a config field as a path or URI (tests walk the model for these)."""


def check_location(value: str) -> str:
    """Refuse a path or URI that embeds credentials. Never echo the value: it may hold the secret."""
    if _USERINFO.match(value):
        raise ValueError(f"must not contain user:password@; {CREDENTIALS_HINT}")
    query = value.partition("?")[2].partition("#")[0]
    names = [part.partition("=")[0] for part in re.split(r"[&;]", query) if "=" in part]
    if any(_SECRET_PARAM.match(name) for name in names):
        raise ValueError("must not carry credentials in its query (a signature, token, key or password: e.g. a "
                         f"presigned URL); {CREDENTIALS_HINT}")
    return value


Location = Annotated[str, AfterValidator(check_location), LocationField()]


def _check_params_locations(params: dict[str, Any]) -> dict[str, Any]:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, str):
            try:
                check_location(node)
            except ValueError as exc:  # ".key: ..." continues the field's dotted path (_format_errors)
                raise ValueError(f".{path}: {exc}") from None
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")

    walk(params, "")
    return params


Params = Annotated[dict[str, Any], AfterValidator(_check_params_locations)]


class SupernetConfig(_Strict):
    name: str = "elastic_cnn"
    checkpoint: Location | None = Field(None, description="weights path or URI; built-ins train and cache when unset")
    params: Params = Field(default_factory=dict)
    plugin_file: Location | None = Field(None, description="a Python file that registers the plugin (runs only when named)")

    @model_validator(mode="before")
    @classmethod
    def _load_plugin(cls, data: Any, info: ValidationInfo) -> Any:
        # Before `name` is checked: the file is what registers the name.
        if isinstance(data, dict) and data.get("plugin_file"):
            from linas_lib.registry import load_plugin_file

            if not isinstance(data["plugin_file"], str):
                return data  # the field's own type check names it
            try:  # before the file is opened, whose error would repeat the path
                check_location(data["plugin_file"])
            except ValueError as exc:
                raise ValueError(f"supernet.plugin_file: {exc}") from None
            base = (info.context or {}).get("config_dir")
            path = Path(data["plugin_file"]).expanduser()
            if base is not None and not path.is_absolute():
                # as a config's other files are meant: beside it, wherever the command runs; kept
                # absolute, so pipeline tasks (other processes, other folders) find the same file
                data = {**data, "plugin_file": str(Path(base, path).resolve())}
            try:
                load_plugin_file(data["plugin_file"])
            except FileNotFoundError as exc:
                where = f" (a relative path is resolved against the config's folder {base})" if base else ""
                raise ValueError(f"{exc}{where}") from None
            except Exception as exc:  # a broken plugin: a clear message, not a traceback from pydantic
                raise ValueError(
                    f"supernet.plugin_file {data['plugin_file']!r} failed to load: {type(exc).__name__}: {exc}"
                ) from None
        return data

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.supernets import supernet_names

        return _check_name("super-network", v, supernet_names())

    @model_validator(mode="after")
    def _params_and_space(self) -> "SupernetConfig":
        from linas_lib.supernets import supernet_class

        plugin = supernet_class(self.name)
        _check_params(f"super-network {self.name}", plugin, self.params, "supernet.params")
        build = getattr(plugin, "search_space", None)
        if build is None:
            return self
        try:
            space = build(**self.params)
        except Exception as exc:  # e.g. SearchSpace's "needs at least one variable"
            raise ValueError(f"super-network {self.name}: no search space from supernet.params "
                             f"{short_repr(self.params)}: {exc}") from None
        variables = list(getattr(space, "variables", None) or [])
        if not variables:
            raise ValueError(f"super-network {self.name}: supernet.params {short_repr(self.params)} give an empty search space")
        empty = [getattr(v, "name", "?") for v in variables if not getattr(v, "options", None)]
        if empty:
            raise ValueError(f"super-network {self.name}: variable(s) {empty} of the search space have no options")
        return self


def _check_params(what: str, plugin: Any, params: dict[str, Any], where: str) -> None:
    """Names (and, where annotated, types) of `params` against the plugin's constructor."""
    import inspect
    import typing

    from pydantic import TypeAdapter

    try:
        signature = inspect.signature(plugin)
    except (TypeError, ValueError):
        return
    accepted = {n: p for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} in {where} of {what}; "
                             f"allowed: {', '.join(accepted) or '(none)'}")
    try:
        hints = typing.get_type_hints(plugin.__init__)
    except Exception:  # unresolvable annotations: names only
        return
    for name, value in params.items():
        if name not in hints or name not in accepted:
            continue
        try:
            TypeAdapter(hints[name]).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else "wrong type"
            raise ValueError(f"{where}.{name}: {reason} (got {short_repr(value)})") from None
        except Exception:  # a hint pydantic cannot check
            continue


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


class TargetConfig(Placement):
    """A hardware target: how latency is measured, and on which node pool."""

    name: str = "cpu-ort"
    backend: str = "onnxruntime"
    device: Literal["cpu", "cuda"] = "cpu"
    precision: Literal["fp32", "int8"] = "fp32"
    batch_size: int = Field(32, ge=1, le=4096)
    threads: int = Field(1, ge=1, le=256)
    warmup: int = Field(10, ge=0, le=100_000)
    min_repeats: int = Field(30, ge=3, le=1_000_000)
    min_time_s: float = Field(0.3, ge=0, le=3600)
    calibration_samples: int = Field(64, ge=1, description="int8: calibration samples for quantization")
    params: Params = Field(default_factory=dict, description="backend-specific settings, e.g. lut: {table: PATH}")
    node_fingerprint: dict[str, str] = Field(
        default_factory=dict, description="hardware labels of the matched nodes, filled in by the preflight"
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", v):
            raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-'), at most 40 characters")
        return v

    @field_validator("backend")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.backends import backend_names

        return _check_name("latency backend", v, backend_names())

    @model_validator(mode="after")
    def _supported(self) -> "TargetConfig":
        from linas_lib.backends import backend_class

        backend = backend_class(self.backend)
        for field_name, allowed in (("device", backend.devices), ("precision", backend.precisions)):
            if getattr(self, field_name) not in allowed:
                raise ValueError(f"target {self.name!r}: backend {self.backend} supports {field_name} "
                                 f"{', '.join(allowed)}; got {getattr(self, field_name)!r}")
        if self.device == "cuda" and self.resources.gpu == 0:
            raise ValueError(f"target {self.name!r}: device cuda needs resources.gpu >= 1")
        return self

    def backend_params(self) -> dict[str, Any]:
        """What the backend is built with; `params` override the fields (e.g. calibration_samples)."""
        base = self.model_dump(include={"device", "precision", "threads", "warmup", "min_repeats", "min_time_s",
                                        "calibration_samples"})
        return {**base, **self.params}

    @property
    def calibration_count(self) -> int:
        """INT8 calibration samples, as the backend gets them (the cache key records this)."""
        return int(self.backend_params()["calibration_samples"])

    @property
    def records_quality(self) -> bool:
        """INT8 targets also measure the quantized model's quality."""
        return self.precision == "int8"

    @property
    def image_role(self) -> str:
        """The container image this target's latency pod runs in (the backend's choice)."""
        from linas_lib.backends import backend_image_role

        return backend_image_role(self.backend, self.device)


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


class EarlyStop(_Strict):
    """Stop once the hypervolume gained less than `threshold` over the last `window` iterations."""

    threshold: float = Field(0.0, ge=0, description="0 disables early stopping")
    window: int = Field(2, ge=1)


class PredictorSpec(_Strict):
    name: str
    params: Params = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.predictors import predictor_names

        return _check_name("predictor", v, predictor_names())


class InnerSearchConfig(_Strict):
    """The LINAS inner loop: an MOEA run on predictors alone.

    Unset operator settings take the algorithm's own defaults (the paper's Table 4:
    e.g. NSGA-II population 50, crossover 0.9, mutation 0.02; C-TAEA 1.0 and 0.05).
    """

    algorithm: str = "nsga2"
    evaluations: int = Field(20_000, ge=1)
    population: int | None = Field(None, ge=2)
    crossover: float | None = Field(None, ge=0, le=1)
    mutation: float | None = Field(None, ge=0, le=1)
    params: Params = Field(default_factory=dict, description="further algorithm-specific settings")

    @field_validator("algorithm")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.algos import algorithm_names

        return _check_name("algorithm", v, algorithm_names())

    @model_validator(mode="after")
    def _budget(self) -> "InnerSearchConfig":
        if self.population is not None and self.evaluations < self.population:
            raise ValueError(f"evaluations ({self.evaluations}) must be at least population ({self.population})")
        return self

    def algorithm_params(self) -> dict[str, Any]:
        set_ = {k: getattr(self, k) for k in ("population", "crossover", "mutation") if getattr(self, k) is not None}
        return {**set_, **self.params}


def _default_predictors() -> dict[str, PredictorSpec]:
    return {"accuracy": PredictorSpec(name="svr_rbf"), "latency": PredictorSpec(name="ridge")}


class ConstraintGroup(_Strict):
    """Search only sub-networks whose predicted `objective` is at most `max` (OFA-style)."""

    objective: str
    max: float


class ScheduleStep(_Strict):
    """From `from_iteration` on, LINAS uses these settings (the paper lets them change)."""

    from_iteration: int = Field(ge=1)
    population: int | None = Field(None, ge=2)
    inner: InnerSearchConfig | None = None
    predictors: dict[str, PredictorSpec] | None = None


def auto_plan(evaluations: int) -> list[int]:
    """Population sizes when `search.population` is 'auto'.

    A first population of a tenth of the budget (10 to 50) gives the predictors a
    spread sample; later populations grow with the data, a quarter of what is measured
    (at least 10, at most 50): small batches while each measurement moves the
    predictors most, larger ones once a batch is a small part of the evidence. The
    number of iterations stays near 10-20 for budgets of 100-1,000, which a compiled
    pipeline can unroll.
    """
    sizes, measured = [], 0
    while measured < evaluations:
        n = int(np.clip(round(evaluations / 10), 10, 50)) if not sizes else int(np.clip(round(measured / 4), 10, 50))
        n = min(n, evaluations - measured)
        sizes.append(n)
        measured += n
    return sizes


class SearchConfig(_Strict):
    mode: Literal["linas", "validation", "oneshot"] = "linas"
    population: int | Literal["auto"] = Field(
        "auto", description="sub-networks measured per iteration, or 'auto' (see auto_plan)")
    selection: str = Field("ehvi_rank", description="how the next population is chosen from the inner search: "
                                                     "ehvi_rank (half predicted front, half expected hypervolume "
                                                     "improvement), ehvi, or rank_crowding (the paper's)")
    ensemble: int = Field(8, ge=2, le=64, description="ehvi, ehvi_rank: bootstrap members per predictor, for its "
                                                      "uncertainty")
    evaluations: int = Field(125, ge=2, le=1_000_000, description="total real measurements")
    algorithm: str = Field("nsga2", description="validation mode: the algorithm that is measured directly")
    algorithm_params: Params = Field(default_factory=dict, description="validation mode: algorithm settings")
    inner: InnerSearchConfig = Field(default_factory=InnerSearchConfig)
    predictors: dict[str, PredictorSpec] = Field(default_factory=_default_predictors)
    oneshot_samples: int | None = Field(
        None, ge=2, description="oneshot mode: sub-networks measured up front (default: evaluations - population)"
    )
    constraints: list[ConstraintGroup] = Field(default_factory=list, description="latency-constraint groups")
    schedule: list[ScheduleStep] = Field(default_factory=list)
    normalize_latency: bool = Field(
        False, description="latency as a ratio to the largest sub-network on the same target (paper, appendix E)"
    )
    max_iterations: int | None = Field(None, ge=1, description="cap on iterations (a pipeline run parameter)")
    early_stop: EarlyStop = Field(default_factory=EarlyStop)

    @field_validator("algorithm")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.algos import algorithm_names

        return _check_name("algorithm", v, algorithm_names())

    @field_validator("selection")
    @classmethod
    def _known_selection(cls, v: str) -> str:
        from linas_lib.search.selection import selection_names

        return _check_name("selection strategy", v, selection_names())

    @field_validator("population", mode="before")
    @classmethod
    def _population_range(cls, v: Any) -> int | str:
        # one clear message instead of one per member of the union
        if v == "auto" and isinstance(v, str):
            return v
        if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 100_000:
            raise ValueError(f"must be 'auto' or an integer from 2 to 100000, got {short_repr(v)}")
        return v

    @property
    def fixed_population(self) -> int:
        """The population as a number (the first iteration's under 'auto')."""
        return self.population if isinstance(self.population, int) else auto_plan(self.evaluations)[0]

    @model_validator(mode="after")
    def _budget(self) -> "SearchConfig":
        if self.evaluations < self.fixed_population:
            raise ValueError(
                f"evaluations ({self.evaluations}) must be at least population ({self.fixed_population})"
            )
        if self.mode == "oneshot" and self.oneshot_samples is not None and self.oneshot_samples >= self.evaluations:
            raise ValueError(
                f"oneshot_samples ({self.oneshot_samples}) must leave part of evaluations ({self.evaluations}) "
                "to validate the predicted front"
            )
        steps = [s.from_iteration for s in self.schedule]
        if steps != sorted(set(steps)):
            raise ValueError(f"schedule: from_iteration values must be strictly increasing, got {steps}")
        return self

    def plan(self) -> list[int]:
        """How many sub-networks each iteration measures; the sum is `evaluations`."""
        if self.mode == "oneshot":
            samples = self.oneshot_samples or max(2, self.evaluations - self.fixed_population)
            return [samples, self.evaluations - samples][: self.max_iterations]
        if self.population == "auto" and not self.schedule:
            return auto_plan(self.evaluations)[: self.max_iterations]
        sizes, left, it = [], self.evaluations, 0
        while left > 0:
            n = min(self.step(it).population or self.fixed_population, left)
            sizes.append(n)
            left -= n
            it += 1
        return sizes[: self.max_iterations]

    @property
    def iterations(self) -> int:
        return len(self.plan())

    def population_at(self, iteration: int) -> int:
        return self.plan()[iteration]

    def step(self, iteration: int) -> ScheduleStep:
        """The schedule entry in force at `iteration` (an empty step before the first)."""
        current = ScheduleStep(from_iteration=1)
        for step in self.schedule:
            if step.from_iteration <= iteration:
                current = step
        return current

    def inner_at(self, iteration: int) -> InnerSearchConfig:
        return self.step(iteration).inner or self.inner

    def predictors_at(self, iteration: int) -> dict[str, PredictorSpec]:
        return self.step(iteration).predictors or self.predictors


class MeasurementPolicy(_Strict):
    """How one real measurement is attempted: an exception, a time-out, out of memory or a
    NaN/inf/non-positive value is retried with exponential backoff, then recorded as failed."""

    retries: int = Field(2, ge=0, le=10, description="attempts after the first")
    backoff_s: float = Field(1.0, ge=0, le=600, description="wait before retry k: backoff_s * 2**k")
    timeout_s: float | None = Field(None, gt=0, description="per sub-network and objective; null: no limit")
    max_latency_cv: float | None = Field(
        0.05, gt=0, le=10,
        description="a latency whose CV (std/mean over the timed calls) exceeds this is timed again, up to "
                    "noisy_retimes times (the steadiest timing is kept); a target with latencies still above it "
                    "is flagged noisy in the summary and the CLI; null: never re-timed or flagged",
    )
    noisy_retimes: int = Field(2, ge=0, le=20, description="re-timings of a latency above max_latency_cv")


class CacheConfig(_Strict):
    """The cross-run evaluation cache (see linas_lib.cache)."""

    enabled: bool = Field(True, description="false: the cache is private to the run (still used to resume)")
    uri: Location | None = Field(None, description="a directory or s3:// URI; default: 'evaluation-cache' beside the run")
    tenant: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]{0,62}$",
        description="whose measurements these are: runs share cached values only within one tenant; "
                    "default: the location that holds the run (its store prefix)",
    )


class RecurringConfig(_Strict):
    """Re-running a config into a run location that holds a finished run."""

    warm_start: bool = Field(True, description="start from the previous run's measured Pareto set")
    drift_threshold: float = Field(
        0.15, gt=0, le=10, description="relative change of the previous front's median latency that counts as drift"
    )


class LinasConfig(_Strict):
    name: str = Field("linas", pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$")
    seed: int = Field(0, ge=0)
    supernet: SupernetConfig = Field(default_factory=SupernetConfig)
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "latency"], min_length=1, max_length=4)
    targets: list[TargetConfig] = Field(
        default_factory=lambda: [TargetConfig()],
        description="hardware targets; measured only when an objective needs them (latency, quality@target)")
    search: SearchConfig = Field(default_factory=SearchConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    measurement: MeasurementPolicy = Field(default_factory=MeasurementPolicy)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    recurring: RecurringConfig = Field(default_factory=RecurringConfig)
    store: Location | None = Field(None, description="run location: a directory or s3://bucket/prefix (pipeline default)")

    @model_validator(mode="after")
    def _consistent(self) -> "LinasConfig":
        from linas_lib.supernets import supernet_class

        quality = supernet_class(self.supernet.name).quality_metric
        allowed = [quality, "latency", *COMPLEXITY_OBJECTIVES]
        allowed += [f"{quality}@{t.name}" for t in self.targets if t.records_quality]
        for name in self.objectives:
            if name not in allowed:
                raise ValueError(f"objectives: unknown objective {name!r}; allowed: {', '.join(allowed)}")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("objectives: each objective may appear once")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: names must be unique, got {names}")
        if "latency" in self.objectives and not self.targets:
            raise ValueError("targets: the objective latency needs at least one hardware target")
        objectives = self.resolved_objectives()
        if len(objectives) > 4:
            raise ValueError(f"objectives: {len(objectives)} objectives after expanding latency per target; at most 4")
        names = [o.name for o in objectives]
        for group in self.search.constraints:
            if group.objective not in names:
                raise ValueError(f"search.constraints: unknown objective {group.objective!r}; allowed: {', '.join(names)}")
        return self

    # ---- derived views ------------------------------------------------------
    @property
    def latency_targets(self) -> list[TargetConfig]:
        """The targets that are measured: all of them when an objective needs one (latency,
        or an INT8 target's quality), none otherwise: a search on [accuracy, macs]
        measures no latency, whatever targets the file lists."""
        quality_at = {o.split("@", 1)[1] for o in self.objectives if "@" in o}
        if "latency" in self.objectives:
            return list(self.targets)
        return [t for t in self.targets if t.name in quality_at]

    def resolved_objectives(self) -> list[Objective]:
        """Latency expands into one objective per hardware target."""
        from linas_lib.supernets import supernet_class

        quality = supernet_class(self.supernet.name).quality_metric
        out: list[Objective] = []
        for name in self.objectives:
            if name == "latency" and self.search.normalize_latency:
                out += [Objective(f"latency_norm@{t.name}", "min", "x largest") for t in self.targets]
            elif name == "latency":
                out += [Objective(latency_column(t.name), "min", "ms") for t in self.targets]
            elif name == quality or name.startswith(f"{quality}@"):
                out.append(Objective(name, "max"))
            else:
                out.append(Objective(name, "min"))
        return out

    def predictor_for(self, objective: str, iteration: int = 0) -> PredictorSpec:
        specs = self.search.predictors_at(iteration)
        base = objective.split("@", 1)[0].removesuffix("_norm")
        if objective in specs:
            return specs[objective]
        if base in specs:
            return specs[base]
        return PredictorSpec(name="ridge")

    def to_json(self) -> str:
        return self.model_dump_json()

    def with_overrides(self, **dotted: Any) -> "LinasConfig":
        """A copy with 'search.population'-style keys replaced, validated again."""
        data = self.model_dump()
        for key, value in dotted.items():
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        return config_from_dict(data)


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            msg = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif err["type"] != "value_error" and not isinstance(err.get("input"), dict):
            msg += f" (got {short_repr(err['input'])})"
        if msg.startswith("."):  # a path inside the field (a key of a params dict)
            lines.append(f"  {where}{msg}")
        else:
            lines.append(f"  {msg}" if msg.startswith(f"{where}.") else f"  {where}: {msg}")
    return "invalid config:\n" + "\n".join(lines)


def _allowed_keys(loc: tuple) -> list[str]:
    """The field names of the model at `loc` (list indices and dict keys step into the items)."""
    import types
    import typing

    def unwrap(tp: Any) -> Any:  # X | None -> X
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp

    node: Any = LinasConfig
    for part in loc:
        node = unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            if str(part) not in node.model_fields:
                return []
            node = node.model_fields[str(part)].annotation
        elif typing.get_origin(node) in (list, dict) and typing.get_args(node):
            node = typing.get_args(node)[-1]  # list[X] -> X, dict[K, V] -> V
        else:
            return []
    node = unwrap(node)
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def config_from_dict(data: Any, config_dir: str | Path | None = None) -> LinasConfig:
    """`config_dir`: the folder of the file `data` came from, which relative paths
    (supernet.plugin_file) are resolved against."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return LinasConfig.model_validate(data, context={"config_dir": config_dir} if config_dir else None)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def config_from_json(text: str) -> LinasConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid config: not valid JSON ({exc})") from None
    return config_from_dict(data)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice (YAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:  # the explicit keys; '<<' merges may be overridden
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> LinasConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only, no Python objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"config file {str(path)!r} is empty")
    return config_from_dict(data, config_dir=path.resolve().parent)
