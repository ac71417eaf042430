"""Run the real pipeline on this machine with kfp.local (no cluster)."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from linas_lib.config import LinasConfig
from pipelines.linas_pipeline import build_pipeline

# kfp.local's per-task warnings about settings only a cluster honours: expected locally
QUIET_WARNINGS = (r"Task .* have no effect in the current local runner", r"You may be attemping to run a task",
                  r".*Consider using the DockerRunner")


class QuietKfpLocal(logging.Filter):
    """Drops kfp.local's INFO records (task starts, outputs, executor inputs); keeps warnings and errors.

    kfp.local resets the root logger's level and handlers for each run, but not its filters."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "kfp" not in record.pathname.replace("\\", "/").split("/")


def run_local(config: LinasConfig, out_dir: str, checkpoint: str = "", quiet: bool = True) -> Path:
    """Execute every task as a subprocess of this interpreter; results land in out_dir."""
    from kfp import local

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    quiet_filter = QuietKfpLocal()
    root = logging.getLogger()
    with warnings.catch_warnings():
        if quiet:
            for message in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            root.addFilter(quiet_filter)
        try:
            local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(out / "kfp"),
                       raise_on_error=True)
            pipeline = build_pipeline(config)
            pipeline(checkpoint=checkpoint, store_uri=str(out))
        finally:
            root.removeFilter(quiet_filter)
    return out
