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


class QuietTaskOutput:
    """A task's output as kfp.local relays it, minus the executor's own chatter: its INFO
    lines, the executor-input JSON it dumps, the separators. What the stages print, and
    every traceback and warning, passes."""

    def __init__(self):
        self.in_dump = False

    def keep(self, line: str) -> bool:
        text = line.strip()
        if self.in_dump:
            self.in_dump = line.rstrip() != "}"  # the dump's closing brace: the only one in column 0
            return False
        if "Got executor_input:" in text:
            self.in_dump = True
            return False
        return bool(text) and not text.startswith("-" * 20) and not (text.startswith("[KFP Executor") and " INFO]" in text)

    def print(self, *args, **kwargs) -> None:
        line = " ".join(str(a) for a in args)
        if self.keep(line):
            print(line.strip(), flush=True)


def _no_line() -> None:
    pass


def run_local(config: LinasConfig, out_dir: str, checkpoint: str = "", quiet: bool = True) -> Path:
    """Execute every task as a subprocess of this interpreter; results land in out_dir."""
    from kfp import local

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from kfp.local import logging_utils, subprocess_task_handler

    _horizontal_line = logging_utils.print_horizontal_line

    quiet_filter = QuietKfpLocal()
    root = logging.getLogger()
    with warnings.catch_warnings():
        if quiet:
            for message in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            root.addFilter(quiet_filter)
            # kfp.local relays each task's output with a bare print(): this module's `print`
            subprocess_task_handler.print = QuietTaskOutput().print
            logging_utils.print_horizontal_line = _no_line
        try:
            local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(out / "kfp"),
                       raise_on_error=True)
            pipeline = build_pipeline(config)
            pipeline(checkpoint=checkpoint, store_uri=str(out))
        finally:
            root.removeFilter(quiet_filter)
            subprocess_task_handler.__dict__.pop("print", None)
            logging_utils.print_horizontal_line = _horizontal_line
    return out
