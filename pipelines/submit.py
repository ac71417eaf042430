"""Submit runs and recurring re-searches to a Kubeflow Pipelines endpoint (kfp.Client).

Nothing is sent that the run would refuse: every run parameter is checked against the
compiled pipeline (name, type) and the config (range, budget) first, and a schedule's
cron expression is parsed as KFP's scheduler parses it.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from linas_lib.config import LinasConfig
from pipelines.placement import deployment


class SubmitError(RuntimeError):
    pass


# ---- cron: KFP's scheduled workflows use robfig/cron with a seconds field ------------------------
_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
# (name, low, high, names): the six fields, seconds first
_CRON_FIELDS = (("seconds", 0, 59, {}), ("minutes", 0, 59, {}), ("hours", 0, 23, {}),
                ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS), ("day of week", 0, 6, _DAYS))
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_EVERY = re.compile(r"^@every (\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def _cron_value(text: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            allowed = f"{low}-{high}" + (f" or {'/'.join(names)}" if names else "")
            raise ValueError(f"{field}: {text!r} is not a number ({allowed})")
        value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{field}: {value} is outside {low}-{high}")
    return value


def _cron_field(text: str, low: int, high: int, names: dict[str, int], field: str) -> None:
    for part in text.split(","):
        if not part:
            raise ValueError(f"{field}: empty list item in {text!r}")
        span, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{field}: step {step!r} must be a positive number")
        if span in ("*", "?"):  # robfig reads '?' as '*' in any field
            continue
        first, dash, last = span.partition("-")
        start = _cron_value(first, low, high, names, field)
        if dash:
            end = _cron_value(last, low, high, names, field)
            if end < start:
                raise ValueError(f"{field}: range {span!r} ends before it starts")


def validate_cron(cron: str) -> str:
    """KFP's cron (robfig/cron): six fields, seconds first: 'S M H DoM Mon DoW', with
    numbers, names (JAN-DEC, SUN-SAT), '*', '?', ranges, lists and steps; or a
    descriptor such as '@daily' or '@every 6h'."""
    text = cron.strip()
    if text in _DESCRIPTORS or _EVERY.match(text):
        return cron
    fields = text.split()
    example = "e.g. '0 0 3 * * 1' = Mondays 03:00:00"
    if len(fields) != 6:
        raise SubmitError(f"--cron {cron!r}: KFP cron needs 6 fields, seconds first ({example}), "
                          f"got {len(fields)}")
    try:
        for value, (name, low, high, names) in zip(fields, _CRON_FIELDS):
            _cron_field(value, low, high, names, name)
    except ValueError as exc:
        raise SubmitError(f"--cron {cron!r}: {exc} (6 fields, seconds first: {example})") from None
    return cron


# ---- run parameters ------------------------------------------------------------------------------
_PARAMETER_TYPES = {"STRING": (str,), "NUMBER_INTEGER": (int,), "NUMBER_DOUBLE": (int, float), "BOOLEAN": (bool,)}


def _pipeline_parameters(package: str) -> dict[str, dict]:
    spec = next(d for d in yaml.safe_load_all(Path(package).read_text()) if d and "root" in d)
    return spec["root"]["inputDefinitions"]["parameters"]


def _store_uri(value: str) -> None:
    from urllib.parse import urlparse

    parsed = urlparse(value)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.strip("/"):
        raise SubmitError(f"--param store_uri={value!r}: a run on the cluster needs an s3://BUCKET/PREFIX store "
                          "(a path would be inside one pod), e.g. s3://linas/runs/NAME")
    if "@" in parsed.netloc:
        raise SubmitError("--param store_uri: must not contain user:password@; the credentials come from "
                          "cluster.store_secret")


def validate_arguments(config: LinasConfig, package: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check every run parameter (name, type, range, budget, store_uri scheme) before
    anything is sent; SubmitError names the parameter and what is allowed. Returns the
    arguments as the pipeline takes them: the run parameters gathered into `overrides`
    over the compiled defaults (a JSON object parameter is replaced whole, never merged)."""
    from linas_lib.config import ConfigError, config_from_json
    from linas_lib.stages import RUN_PARAMETERS, check_run_parameters, resolve_config

    parameters = _pipeline_parameters(package)
    allowed_names = sorted((set(parameters) - {"overrides"}) | set(RUN_PARAMETERS))
    given = dict(arguments)
    overrides = dict(given.pop("overrides", None) or {})
    for name in [n for n in given if n in RUN_PARAMETERS]:
        overrides[name] = given.pop(name)
    for name, value in given.items():
        if name not in parameters or name == "overrides":
            raise SubmitError(f"--param {name}: not a parameter of this pipeline; allowed: {', '.join(allowed_names)}")
        kind = parameters[name]["parameterType"]
        allowed = _PARAMETER_TYPES.get(kind, (object,))
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            raise SubmitError(f"--param {name}={value!r}: expected {kind.lower().replace('_', ' ')}, "
                              f"got {type(value).__name__}")
    try:
        overrides = check_run_parameters(overrides)
    except ValueError as exc:
        raise SubmitError(f"--param {exc}") from None
    values = {name: p.get("defaultValue") for name, p in parameters.items()} | given
    if "store_uri" in given or not values.get("store_uri"):
        _store_uri(values.get("store_uri") or "")
    defaults = check_run_parameters(parameters["overrides"].get("defaultValue") or {})
    try:
        compiled = config_from_json(values["config_json"])
        resolve_config(values["config_json"], compiled.search.iterations, defaults | overrides)
    except (ConfigError, ValueError) as exc:
        raise SubmitError(f"run parameters refused: {exc}") from None
    return {**given, "overrides": defaults | overrides} if overrides else given


@dataclass(frozen=True)
class Submitted:
    experiment_id: str
    id: str
    kind: str  # "run" or "recurring run"


def _client(host: str, namespace: str | None):
    import kfp

    try:
        client = kfp.Client(host=host, namespace=namespace)
        client.get_kfp_healthz()
    except Exception as exc:
        raise SubmitError(f"cannot reach Kubeflow Pipelines at {host}: {type(exc).__name__}: {exc}") from None
    return client


def _package(config: LinasConfig, folder: str) -> str:
    from pipelines.linas_pipeline import compile_pipeline  # kfp: SubmitError is importable without it

    return compile_pipeline(config, str(Path(folder) / f"linas-{config.name}.yaml"))


def _experiment_id(client, name: str, namespace: str | None) -> str:
    # create_experiment returns the existing experiment of that name when there is one
    return client.create_experiment(name=name, namespace=namespace).experiment_id


def submit_run(
    config: LinasConfig, host: str, experiment: str | None = None, arguments: dict[str, Any] | None = None,
    run_name: str | None = None, namespace: str | None = None,
) -> Submitted:
    """Runs execute in `namespace` (default: cluster.namespace) as cluster.service_account."""
    cluster = deployment(config).cluster
    namespace = namespace or cluster.namespace
    with tempfile.TemporaryDirectory() as folder:
        package = _package(config, folder)
        arguments = validate_arguments(config, package, arguments or {})
        client = _client(host, namespace)
        experiment_id = _experiment_id(client, experiment or config.name, namespace)
        run = client.create_run_from_pipeline_package(
            package, arguments=arguments, run_name=run_name or f"linas-{config.name}",
            experiment_id=experiment_id, service_account=cluster.service_account,
        )
    return Submitted(experiment_id, run.run_id, "run")


def schedule_run(
    config: LinasConfig, host: str, cron: str, max_concurrency: int = 1, experiment: str | None = None,
    arguments: dict[str, Any] | None = None, job_name: str | None = None, namespace: str | None = None,
) -> Submitted:
    validate_cron(cron)
    if max_concurrency != 1:
        # every run of a schedule writes the same store_uri, and a store has one writer
        # (linas_lib.lease): with 1, KFP starts no new run while one is active
        raise SubmitError(f"--max-concurrency {max_concurrency}: must be 1; the runs of a schedule share "
                          "store_uri and a store has one writer at a time")
    cluster = deployment(config).cluster
    namespace = namespace or cluster.namespace
    with tempfile.TemporaryDirectory() as folder:
        package = _package(config, folder)
        arguments = validate_arguments(config, package, arguments or {})
        client = _client(host, namespace)
        experiment_id = _experiment_id(client, experiment or config.name, namespace)
        job = client.create_recurring_run(
            experiment_id=experiment_id, job_name=job_name or f"linas-{config.name}-recurring",
            cron_expression=cron, max_concurrency=max_concurrency, pipeline_package_path=package,
            params=arguments, no_catchup=True, service_account=cluster.service_account,
        )
    return Submitted(experiment_id, job.recurring_run_id, "recurring run")
