"""Progress a person can follow in `linas pipeline run`: a line per iteration, kfp.local's noise dropped."""
from __future__ import annotations

import json
import logging
import re

import pytest

from linas_lib.objectives import supernet_measure
from linas_lib.stages import progress_line
from linas_lib.supernets import load_supernet
from pipelines.local import QuietKfpLocal

from test_report import nb_config

LINE = re.compile(r"^linas: iteration (\d+): measured (\d+), failed (\d+), cache (\d+) hits, (\d+) misses, "
                  r"hypervolume (\d\.\d{4})$")


def test_the_iteration_line_has_a_fixed_greppable_format():
    config = nb_config()
    net = load_supernet(config.supernet, progress=False)
    new = supernet_measure(config, net)(0, net.space.sample(8, 1))
    match = LINE.match(progress_line(config, 0, new, new))
    assert match, progress_line(config, 0, new, new)
    assert match.groups()[:5] == ("0", "8", "0", "0", "16") and 0 < float(match.group(6)) <= 1


def _record(level: int, path: str) -> logging.LogRecord:
    return logging.LogRecord("root", level, path, 1, "msg", None, None)


def test_kfp_local_info_is_dropped_and_its_errors_kept():
    quiet = QuietKfpLocal()
    kfp_file = "/venv/lib/python3.11/site-packages/kfp/local/task_dispatcher.py"
    assert not quiet.filter(_record(logging.INFO, kfp_file))
    assert quiet.filter(_record(logging.ERROR, kfp_file))
    assert quiet.filter(_record(logging.INFO, "/work/linas_lib/stages.py"))


@pytest.mark.parametrize("start", ["warm", "cold"])
def test_pipeline_run_prints_one_line_per_iteration_and_none_of_kfp_locals_noise(tmp_path, capfd, start):
    """`linas pipeline run` through the real kfp.local, on a tabular plugin (whose prepared
    "checkpoint" is a marker, not a file: the tasks get none); tasks forked from the warm
    starter or (`--cold-start`) started as kfp.local starts them, each output filtered."""
    import yaml

    from linas_lib.cli import main

    config = tmp_path / "nb.yaml"
    config.write_text(yaml.safe_dump({
        "name": "nb-progress", "seed": 0, "supernet": {"name": "nasbench201", "params": {"dataset": "cifar10"}},
        "objectives": ["accuracy", "latency"], "targets": [{"name": "nb201", "backend": "tabular"}],
        "search": {"population": 8, "evaluations": 16, "inner": {"algorithm": "nsga2", "evaluations": 200,
                                                                  "population": 20}}}))
    cold = ["--cold-start"] if start == "cold" else []
    assert main(["pipeline", "run", str(config), "--out", str(tmp_path / "run"), *cold]) == 0
    out, err = capfd.readouterr()
    lines = [line.strip() for line in out.splitlines()]
    # before the first task: what is about to run, so a quiet first minute is not a hang
    assert lines[0] == (f"linas: nb-progress: up to 2 iterations measuring 16 sub-networks (8 per iteration; "
                        f"latency targets: nb201) through kfp.local into {tmp_path / 'run'}; a line per iteration "
                        f"follows"), lines[:3]
    assert [line.split(":")[1].strip() for line in lines if line.startswith("linas: iteration")] == \
        ["iteration 0", "iteration 1"], out
    assert any(line.startswith("evaluation cache ") and "hits" in line for line in lines)
    # where the time went: the stages of this run (2 iterations, one MOEA between them), costliest first
    (stage_line,) = [line for line in lines if line.startswith("time by stage: ")]
    stages = {part.split(" ")[0]: part for part in stage_line.removeprefix("time by stage: ").split("; ")}
    assert set(stages) == {"resolve_config", "sample", "evaluate_accuracy", "measure_latency", "train_predictors",
                           "run_moea", "report", "all"}, stage_line
    assert stages["measure_latency"].startswith("measure_latency 2x ") and stages["all"].startswith("all 10 tasks ")
    times = json.loads((tmp_path / "run" / "task-times.json").read_text())
    assert [t["start"] for t in times["tasks"]] == [start] * 10 and all(t["cpu_s"] > 0 for t in times["tasks"])
    for noise in ("Got executor_input", "KFP Executor", "-" * 40, "have no effect", "DockerRunner", "Executing task",
                  "started cold"):
        assert noise not in out and noise not in err, noise
    # the measuring tasks' fingerprints reach the report task (a run restored from its table)
    from linas_lib.runs import RunStore

    recorded = RunStore(str(tmp_path / "run")).load_summary()["hardware"]["nb201"]["fingerprint"]
    assert recorded["backend"] == "tabular" and recorded["table_source"]["dataset"] == "cifar10"
