"""The configuration schema: plain pydantic models, no side effects.

Only structure is checked here (types, ranges, patterns, budgets that add up); names
that registries own (super-networks, backends, predictors, algorithms), plugin files
and objectives are the resolver's (`linas_lib.config.resolve`), and Kubernetes
placement is the deployment layer's (`pipelines.placement`): the core keeps those
sections as plain data.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from linas_lib.api.objective import ColumnKey, Objective
from linas_lib.messages import short_repr

COMPLEXITY_OBJECTIVES = ("macs", "params")


class ConfigError(ValueError):
    """A config that failed validation; the message lists every bad field."""


class _Strict(BaseModel):
    # NaN and infinity are refused: `min_time_s: .inf` would time forever, a NaN bound never holds
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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


# A section another layer owns: Kubernetes placement and cluster settings are plain data
# here, checked by `pipelines.placement` wherever the pipeline is compiled, run or submitted.
DeploymentSection = Annotated[dict[str, Any], AfterValidator(_check_params_locations)]

# The placement keys a target had before they moved under `placement`: named in the error.
PLACEMENT_KEYS = ("node_selector", "tolerations", "resources")


class TargetConfig(_Strict):
    """A hardware target: how latency is measured, and where (its placement)."""

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
    placement: DeploymentSection = Field(
        default_factory=dict, description="where the latency pods run on Kubernetes: node_selector, tolerations, "
                                          "resources (checked by pipelines.placement.Placement)")
    node_fingerprint: dict[str, str] = Field(
        default_factory=dict, description="hardware labels of the matched nodes, filled in by the preflight"
    )

    @model_validator(mode="before")
    @classmethod
    def _placement_moved(cls, data: Any) -> Any:
        moved = [k for k in PLACEMENT_KEYS if isinstance(data, dict) and k in data]
        if moved:
            raise ValueError(f"{', '.join(moved)} belong under the target's placement: "
                             f"placement: {{{moved[0]}: ...}}")
        return data

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        # a letter first: `quality@target` columns then parse unambiguously (hr@10@cpu-int8)
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", v):
            raise ValueError("must be a lowercase DNS label starting with a letter (a-z, 0-9, '-'), "
                             "at most 40 characters")
        return v

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



class EarlyStop(_Strict):
    """Stop once the hypervolume gained less than `threshold` over the last `window` iterations."""

    threshold: float = Field(0.0, ge=0, description="0 disables early stopping")
    window: int = Field(2, ge=1)


class PredictorSpec(_Strict):
    name: str
    params: Params = Field(default_factory=dict)


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
    training_records: int | None = Field(
        30_000, ge=100, description="the predictors learn from at most this many successful measurements, a "
                                    "uniform sample drawn afresh each iteration (null: every one)")
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
    noisy_retimes: int = Field(2, ge=0, le=20, description="re-timings of a latency above max_latency_cv (one "
                                                         "while re-timing keeps failing: objectives.latency.Retimer)")
    workers: int = Field(
        1, ge=1, le=64,
        description="processes that work side by side where it disturbs no measurement, one torch thread each: "
                    "scoring sub-networks (on CPU; a GPU scores in one process) and exporting them before they are "
                    "timed. Timing is always one at a time. Up to the CPUs the step's pod has",
    )


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
    cluster: DeploymentSection = Field(
        default_factory=dict, description="Kubernetes-side settings of the compiled pipeline (namespace, secrets, "
                                          "images, resources...; checked by pipelines.placement.ClusterConfig)")
    measurement: MeasurementPolicy = Field(default_factory=MeasurementPolicy)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    recurring: RecurringConfig = Field(default_factory=RecurringConfig)
    store: Location | None = Field(None, description="run location: a directory or s3://bucket/prefix (pipeline default)")

    # the objectives as the resolver expanded them (latency per target): set once, when loaded
    _objectives: list[Objective] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _consistent(self) -> "LinasConfig":
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("objectives: each objective may appear once")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: names must be unique, got {names}")
        if "latency" in self.objectives and not self.targets:
            raise ValueError("targets: the objective latency needs at least one hardware target")
        return self

    # ---- derived views ------------------------------------------------------
    @property
    def latency_targets(self) -> list[TargetConfig]:
        """The targets that are measured: all of them when an objective needs one (latency,
        or an INT8 target's quality), none otherwise: a search on [accuracy, macs]
        measures no latency, whatever targets the file lists."""
        if "latency" in self.objectives:
            return list(self.targets)
        quality_at = {ColumnKey.parse(o).target for o in self.objectives}
        return [t for t in self.targets if t.name in quality_at]

    def resolved_objectives(self) -> list[Objective]:
        """The objectives, latency expanded into one per hardware target (by the resolver)."""
        if self._objectives is None:
            raise RuntimeError("this config was not resolved: load it with linas_lib.config.load_config, "
                               "config_from_dict or config_from_json")
        return list(self._objectives)

    def predictor_for(self, objective: str, iteration: int = 0) -> PredictorSpec:
        """The objective's own spec, else its kind's (latency for latency@t and latency_norm@t)."""
        specs = self.search.predictors_at(iteration)
        return specs.get(objective) or specs.get(ColumnKey.parse(objective).kind) or PredictorSpec(name="ridge")

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
        from linas_lib.config.resolve import config_from_dict

        return config_from_dict(data)


def format_errors(exc: ValidationError, root: type[BaseModel] | None = None, prefix: tuple = ()) -> list[str]:
    """One line per error, each naming its field (`prefix` + pydantic's location under
    `root`, LinasConfig by default) and, for unknown keys, the keys allowed there."""
    root = root or LinasConfig
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in (*prefix, *err["loc"])) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1], root)
            msg = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif err["type"] != "value_error" and not isinstance(err.get("input"), dict):
            msg += f" (got {short_repr(err['input'])})"
        if msg.startswith("."):  # a path inside the field (a key of a params dict)
            lines.append(f"  {where}{msg}")
        else:
            lines.append(f"  {msg}" if msg.startswith(f"{where}.") else f"  {where}: {msg}")
    return lines


def config_error(lines: list[str]) -> ConfigError:
    return ConfigError("invalid config:\n" + "\n".join(lines))


def _allowed_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The field names of the model at `loc` (list indices and dict keys step into the items)."""
    import types
    import typing

    def unwrap(tp: Any) -> Any:  # X | None -> X
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp

    node: Any = root
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
