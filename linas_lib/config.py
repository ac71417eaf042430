"""The one configuration model, validated once where it enters (CLI, pipeline task).

Errors name the offending field and, for registry-backed names, the allowed values.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from linas_lib.api.objective import Objective
from linas_lib.measurements import latency_column

COMPLEXITY_OBJECTIVES = ("macs", "params")


class ConfigError(ValueError):
    """A config that failed validation; the message lists every bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(kind: str, name: str, names: list[str]) -> str:
    if name not in names:
        raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(names)}")
    return name


class SupernetConfig(_Strict):
    name: str = "elastic_cnn"
    checkpoint: str | None = Field(None, description="weights path or URI; built-ins train and cache when unset")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.supernets import supernet_names

        return _check_name("super-network", v, supernet_names())


class TargetConfig(_Strict):
    """A hardware target: where and how latency is measured."""

    name: str = "cpu-ort"
    backend: str = "onnxruntime"
    device: Literal["cpu", "cuda"] = "cpu"
    precision: Literal["fp32", "int8"] = "fp32"
    batch_size: int = Field(32, ge=1, le=4096)
    threads: int = Field(1, ge=1, le=256)
    warmup: int = Field(10, ge=0)
    min_repeats: int = Field(30, ge=3)
    min_time_s: float = Field(0.3, ge=0)

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

    def backend_params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name", "backend", "batch_size"})


class PredictorSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

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
    params: dict[str, Any] = Field(default_factory=dict, description="further algorithm-specific settings")

    @field_validator("algorithm")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.algos import algorithm_names

        return _check_name("algorithm", v, algorithm_names())

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


class SearchConfig(_Strict):
    mode: Literal["linas", "validation", "oneshot"] = "linas"
    population: int = Field(25, ge=2, description="sub-networks measured per iteration")
    evaluations: int = Field(125, ge=2, description="total real measurements")
    algorithm: str = Field("nsga2", description="validation mode: the algorithm that is measured directly")
    algorithm_params: dict[str, Any] = Field(default_factory=dict, description="validation mode: algorithm settings")
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

    @field_validator("algorithm")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.algos import algorithm_names

        return _check_name("algorithm", v, algorithm_names())

    @model_validator(mode="after")
    def _budget(self) -> "SearchConfig":
        if self.evaluations < self.population:
            raise ValueError(
                f"evaluations ({self.evaluations}) must be at least population ({self.population})"
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
            samples = self.oneshot_samples or max(2, self.evaluations - self.population)
            return [samples, self.evaluations - samples]
        sizes, left, it = [], self.evaluations, 0
        while left > 0:
            n = min(self.step(it).population or self.population, left)
            sizes.append(n)
            left -= n
            it += 1
        return sizes

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


class LinasConfig(_Strict):
    name: str = Field("linas", pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$")
    seed: int = Field(0, ge=0)
    supernet: SupernetConfig = Field(default_factory=SupernetConfig)
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "latency"], min_length=1, max_length=4)
    targets: list[TargetConfig] = Field(default_factory=lambda: [TargetConfig()], min_length=1)
    search: SearchConfig = Field(default_factory=SearchConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "LinasConfig":
        from linas_lib.supernets import supernet_class

        quality = supernet_class(self.supernet.name).quality_metric
        allowed = [quality, "latency", *COMPLEXITY_OBJECTIVES]
        for name in self.objectives:
            if name not in allowed:
                raise ValueError(f"objectives: unknown objective {name!r}; allowed: {', '.join(allowed)}")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError("objectives: each objective may appear once")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: names must be unique, got {names}")
        objectives = self.resolved_objectives()
        if len(objectives) > 4:
            raise ValueError(f"objectives: {len(objectives)} objectives after expanding latency per target; at most 4")
        names = [o.name for o in objectives]
        for group in self.search.constraints:
            if group.objective not in names:
                raise ValueError(f"search.constraints: unknown objective {group.objective!r}; allowed: {', '.join(names)}")
        return self

    # ---- derived views ------------------------------------------------------
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
            elif name == quality:
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
        lines.append(f"  {where}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "value_error" and not isinstance(err.get("input"), dict) else ""))
    return "invalid config:\n" + "\n".join(lines)


def config_from_dict(data: Any) -> LinasConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return LinasConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def config_from_json(text: str) -> LinasConfig:
    return config_from_dict(json.loads(text))


def load_config(path: str | Path) -> LinasConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    return config_from_dict(data)
