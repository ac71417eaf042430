"""Submit runs and recurring re-searches to a Kubeflow Pipelines endpoint (kfp.Client)."""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linas_lib.config import LinasConfig
from pipelines.linas_pipeline import compile_pipeline

_CRON_FIELD = re.compile(r"^[0-9*/,\-?LW#A-Za-z]+$")


class SubmitError(RuntimeError):
    pass


def validate_cron(cron: str) -> str:
    """KFP's cron has six fields, seconds first: 'S M H DoM Mon DoW'."""
    fields = cron.split()
    if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
        raise SubmitError(
            f"--cron {cron!r}: KFP cron needs 6 fields, seconds first (e.g. '0 0 3 * * 1' = Mondays 03:00:00)"
        )
    return cron


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
    return compile_pipeline(config, str(Path(folder) / f"linas-{config.name}.yaml"))


def _experiment_id(client, name: str, namespace: str | None) -> str:
    # create_experiment returns the existing experiment of that name when there is one
    return client.create_experiment(name=name, namespace=namespace).experiment_id


def submit_run(
    config: LinasConfig, host: str, experiment: str | None = None, arguments: dict[str, Any] | None = None,
    run_name: str | None = None, namespace: str | None = None,
) -> Submitted:
    client = _client(host, namespace)
    with tempfile.TemporaryDirectory() as folder:
        experiment_id = _experiment_id(client, experiment or config.name, namespace)
        run = client.create_run_from_pipeline_package(
            _package(config, folder), arguments=arguments or {}, run_name=run_name or f"linas-{config.name}",
            experiment_id=experiment_id,
        )
    return Submitted(experiment_id, run.run_id, "run")


def schedule_run(
    config: LinasConfig, host: str, cron: str, max_concurrency: int = 1, experiment: str | None = None,
    arguments: dict[str, Any] | None = None, job_name: str | None = None, namespace: str | None = None,
) -> Submitted:
    validate_cron(cron)
    if max_concurrency < 1:
        raise SubmitError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    client = _client(host, namespace)
    with tempfile.TemporaryDirectory() as folder:
        experiment_id = _experiment_id(client, experiment or config.name, namespace)
        job = client.create_recurring_run(
            experiment_id=experiment_id, job_name=job_name or f"linas-{config.name}-recurring",
            cron_expression=cron, max_concurrency=max_concurrency, pipeline_package_path=_package(config, folder),
            params=arguments or {}, no_catchup=True,
        )
    return Submitted(experiment_id, job.recurring_run_id, "recurring run")
