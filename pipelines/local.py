"""Run the real pipeline on this machine with kfp.local (no cluster)."""
from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from linas_lib.api.store import put_json
from linas_lib.backends.timing import load_average_1m, usable_cpus
from linas_lib.config import LinasConfig
from linas_lib.stores.local import LocalStore
from pipelines.linas_pipeline import build_pipeline
from pipelines.warm_start import PRELOAD, TaskRunner, WarmStarter

TASK_TIMES = "task-times.json"  # in the run directory, beside summary.json
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


@contextmanager
def kfp_local(pipeline_root: str, quiet: bool = True, warm: bool = True, preload=PRELOAD):
    """kfp.local set up for this process (SubprocessRunner, use_venv=False); yields the
    TaskRunner that starts its tasks (a WarmStarter unless `warm` is False), whose `tasks`
    record each one's wall and CPU time.

    `quiet`: kfp.local's own chatter filtered out (see QuietKfpLocal, QuietTaskOutput).
    `warm`: tasks fork from a preloaded interpreter (`pipelines.warm_start`) instead of
    paying 2-5 CPU-seconds of imports and teardown each; False starts each as kfp.local does."""
    from kfp import local
    from kfp.local import logging_utils, subprocess_task_handler

    _horizontal_line = logging_utils.print_horizontal_line
    _run_subprocess = subprocess_task_handler.run_local_subprocess
    quiet_filter = QuietKfpLocal()
    echo = QuietTaskOutput().print if quiet else print
    root = logging.getLogger()
    runner = WarmStarter(_run_subprocess, echo, preload) if warm else TaskRunner(_run_subprocess)
    with warnings.catch_warnings(), runner as starter:
        if quiet:
            for message in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            root.addFilter(quiet_filter)
            # kfp.local relays each task's output with a bare print(): this module's `print`
            subprocess_task_handler.print = echo
            logging_utils.print_horizontal_line = _no_line
        # kfp.local starts each task through this module-level function
        subprocess_task_handler.run_local_subprocess = starter
        try:
            local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root,
                       raise_on_error=True)
            yield starter
        finally:
            root.removeFilter(quiet_filter)
            subprocess_task_handler.__dict__.pop("print", None)
            subprocess_task_handler.run_local_subprocess = _run_subprocess
            logging_utils.print_horizontal_line = _horizontal_line
    if starter.cold_reasons:
        print(f"linas: warning: {starter.started['cold']} of {sum(starter.started.values())} tasks started cold "
              f"(slower): {'; '.join(starter.cold_reasons)}", file=sys.stderr)


def run_local(config: LinasConfig, out_dir: str, checkpoint: str = "", quiet: bool = True,
              warm: bool = True) -> Path:
    """Execute every task as a subprocess of this interpreter; results land in out_dir,
    with each task's wall and CPU time in TASK_TIMES. `quiet` and `warm` as for `kfp_local`."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    load_before = load_average_1m()
    with kfp_local(str(out / "kfp"), quiet=quiet, warm=warm) as runner:
        pipeline = build_pipeline(config)
        try:
            pipeline(checkpoint=checkpoint, store_uri=str(out))
        finally:  # a failed run's times say where it spent its time before it failed
            put_json(LocalStore(str(out)), TASK_TIMES, {
                "format": "linas-task-times/1", "cpu_count": usable_cpus(),
                "load_1m": {"before": round(load_before, 2), "after": round(load_average_1m(), 2)},
                "tasks": runner.tasks})
    return out


def stage_times(task_times: dict) -> str:
    """One line: wall and CPU seconds per kind of task, the costliest first, and the total."""
    stages: dict[str, list[float]] = {}  # task function: [count, wall, CPU]
    for task in task_times["tasks"]:
        stage = stages.setdefault(task["task"], [0, 0.0, 0.0])
        stage[0] += 1
        stage[1] += task["wall_s"]
        stage[2] += task["cpu_s"] or 0.0
    parts = [f"{name} {n}x {_seconds(wall)} s ({_seconds(cpu)} CPU-s)"
             for name, (n, wall, cpu) in sorted(stages.items(), key=lambda item: -item[1][1])]
    wall, cpu = sum(v[1] for v in stages.values()), sum(v[2] for v in stages.values())
    load = task_times["load_1m"]
    return (f"time by stage: {'; '.join(parts)}; all {len(task_times['tasks'])} tasks {_seconds(wall)} s "
            f"({_seconds(cpu)} CPU-s) at load {load['before']:.1f}-{load['after']:.1f} on {task_times['cpu_count']} CPUs")


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"
