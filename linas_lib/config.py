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
    """The LINAS inner loop: an MOEA run on predictors alone (paper defaults)."""

    algorithm: str = "nsga2"
    evaluations: int = Field(20_000, ge=1)
    population: int = Field(50, ge=2)
    crossover: float = Field(0.9, ge=0, le=1)
    mutation: float = Field(0.02, ge=0, le=1)

    @field_validator("algorithm")
    @classmethod
    def _known(cls, v: str) -> str:
        from linas_lib.algos import algorithm_names

        return _check_name("algorithm", v, algorithm_names())

    def algorithm_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"population": self.population}
        if self.algorithm != "random":
            params.update(crossover=self.crossover, mutation=self.mutation)
        return params


def _default_predictors() -> dict[str, PredictorSpec]:
    return {"accuracy": PredictorSpec(name="svr_rbf"), "latency": PredictorSpec(name="ridge")}


class SearchConfig(_Strict):
    mode: Literal["linas", "validation"] = "linas"
    population: int = Field(25, ge=2, description="sub-networks measured per iteration")
    evaluations: int = Field(125, ge=2, description="total real measurements")
    algorithm: str = Field("nsga2", description="validation mode: the algorithm that is measured directly")
    inner: InnerSearchConfig = Field(default_factory=InnerSearchConfig)
    predictors: dict[str, PredictorSpec] = Field(default_factory=_default_predictors)

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
        return self

    @property
    def iterations(self) -> int:
        return math.ceil(self.evaluations / self.population)

    def population_at(self, iteration: int) -> int:
        """The last iteration measures only what is left of the budget."""
        return min(self.population, self.evaluations - iteration * self.population)


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
        n_obj = len(self.resolved_objectives())
        if n_obj > 4:
            raise ValueError(f"objectives: {n_obj} objectives after expanding latency per target; at most 4")
        return self

    # ---- derived views ------------------------------------------------------
    def resolved_objectives(self) -> list[Objective]:
        """Latency expands into one objective per hardware target."""
        from linas_lib.supernets import supernet_class

        quality = supernet_class(self.supernet.name).quality_metric
        out: list[Objective] = []
        for name in self.objectives:
            if name == "latency":
                out += [Objective(latency_column(t.name), "min", "ms") for t in self.targets]
            elif name == quality:
                out.append(Objective(name, "max"))
            else:
                out.append(Objective(name, "min"))
        return out

    def predictor_for(self, objective: str) -> PredictorSpec:
        specs = self.search.predictors
        base = objective.split("@", 1)[0]
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
