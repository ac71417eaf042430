"""Warm task starts under the real kfp.local: toy pipelines whose tasks report where and
how they ran. The LINAS pipeline tests run warm too (`run_local`'s default), and the
first run of tests/reliability/test_pipeline_reuse.py cold, so both paths stay exercised
end to end."""
# no `from __future__ import annotations`: KFP reads the components' real annotation objects

import json
import os
import re
import signal

import pytest
from kfp import dsl

from linas_lib.messages import exit_description
from pipelines import warm_start
from pipelines.local import kfp_local, stage_times
from pipelines.warm_start import TaskRunner, WarmStarter, parse_task_command

pytestmark = [
    pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner:UserWarning"),
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]
# Light on purpose: what is preloaded is seen by the task, whatever the list holds.
PRELOAD = ("kfp.dsl.executor", "json", "linas_lib.messages", "no_such_module_here")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def whoami(tag: str) -> str:
    import json
    import os
    import sys

    print(f"task {tag} line 1")
    print(f"task {tag} line 2", file=sys.stderr)
    return json.dumps({"tag": tag, "pid": os.getpid(), "ppid": os.getppid(), "probe": os.environ.get("LINAS_PROBE"),
                       "threads": os.environ.get("OMP_NUM_THREADS"), "cwd": os.getcwd(),
                       "preloaded": "linas_lib.messages" in sys.modules, "runtime": os.environ.get("_KFP_RUNTIME")})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fail(how: str):
    import os
    import signal
    import sys

    print("about to fail", flush=True)
    if how == "raise":
        raise ValueError("boom from the task")
    if how == "exit":
        sys.exit("bye from the task")
    if how == "kill-starter":  # the task itself would succeed
        os.kill(os.getppid(), signal.SIGKILL)
        return
    os.kill(os.getpid(), signal.SIGKILL)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def burn(seconds: float):
    """CPU time in this process and as much in a child process of its own."""
    import subprocess
    import sys
    import time

    def spin(s):
        end = time.process_time() + s
        while time.process_time() < end:
            pass

    child = subprocess.Popen([sys.executable, "-c", f"import time\nend = time.process_time() + {seconds}\n"
                              "while time.process_time() < end: pass"])
    spin(seconds)
    child.wait()


@dsl.pipeline
def burns(seconds: float):
    burn(seconds=seconds)
    whoami(tag="light")


@dsl.pipeline
def two_tasks() -> str:
    first = whoami(tag="a")
    second = whoami(tag=first.output)
    second.set_env_variable("LINAS_PROBE", "from the pipeline")
    return second.output


@dsl.pipeline
def sets_threads() -> str:
    task = whoami(tag="t")
    task.set_env_variable("OMP_NUM_THREADS", "3")  # read at import time: this task must start cold
    return task.output


@dsl.pipeline
def failing(how: str):
    fail(how=how)


def test_tasks_fork_from_the_preloaded_starter(tmp_path):
    with kfp_local(str(tmp_path / "kfp"), preload=PRELOAD) as starter:
        lines = []
        starter.echo = lambda *a, **k: lines.append(" ".join(map(str, a)))
        first_json = two_tasks().output
        starter_pid = starter._proc.pid
    second = json.loads(first_json)
    first = json.loads(second["tag"])
    assert starter.started == {"warm": 2, "cold": 0}, starter.note
    assert starter.preloaded == ["kfp.dsl.executor", "json", "linas_lib.messages"]
    assert "no_such_module_here" in starter.skipped  # a task would meet the same ImportError itself
    for task in (first, second):
        assert task["ppid"] == starter_pid and task["pid"] not in (os.getpid(), starter_pid)
        assert task["preloaded"] and task["runtime"] == "true" and task["cwd"] == os.getcwd()
    assert first["pid"] != second["pid"]
    assert first["probe"] is None and second["probe"] == "from the pipeline"
    output = "".join(lines)
    assert "task a line 1" in output and "task a line 2" in output  # the task's stdout and stderr
    assert starter._proc is None  # closed with the session


def test_a_task_that_sets_an_import_time_variable_starts_cold(tmp_path, capsys):
    with kfp_local(str(tmp_path / "kfp"), preload=PRELOAD) as starter:
        task = json.loads(sets_threads().output)
    assert starter.started == {"warm": 0, "cold": 1}
    assert task["threads"] == "3" and not task["preloaded"]
    assert "1 of 1 tasks started cold (slower): the task sets a variable read at import time" in capsys.readouterr().err


def test_a_changed_environment_starts_tasks_cold(tmp_path, monkeypatch):
    with kfp_local(str(tmp_path / "kfp"), preload=PRELOAD) as starter:
        monkeypatch.setenv("LINAS_PROBE", "set after the starter started")
        task = json.loads(whoami(tag="late").output)
    assert starter.started == {"warm": 0, "cold": 1} and not task["preloaded"]
    assert task["probe"] == "set after the starter started"
    assert list(starter.cold_reasons) == ["the environment or working directory changed since the starter started"]


@pytest.mark.parametrize("how, says", [("raise", "ValueError: boom from the task"),
                                       ("exit", "bye from the task"),
                                       ("kill", "was killed by signal 9 (SIGKILL: often the out-of-memory killer)")])
def test_a_failing_task_fails_the_run_and_says_why(tmp_path, how, says):
    with kfp_local(str(tmp_path / "kfp"), preload=PRELOAD) as starter:
        lines = []
        starter.echo = lambda *a, **k: lines.append(" ".join(map(str, a)))
        with pytest.raises(RuntimeError, match="FAILURE"):
            failing(how=how)
        assert starter.started == {"warm": 1, "cold": 0}
        output = "".join(lines)
        assert "about to fail" in output and says in output, output
        whoami(tag="after")  # the starter survives its task's death
        assert starter.started == {"warm": 2, "cold": 0}


def test_tasks_start_cold_once_the_starter_is_gone(tmp_path, capsys):
    with kfp_local(str(tmp_path / "kfp"), preload=PRELOAD) as starter:
        assert json.loads(whoami(tag="warm").output)["preloaded"]
        starter._proc.send_signal(signal.SIGKILL)
        starter._proc.wait()
        task = json.loads(whoami(tag="cold").output)
    assert starter.started == {"warm": 1, "cold": 1}
    assert not task["preloaded"] and task["tag"] == "cold"
    assert "stopped taking tasks" in starter.note
    assert "1 of 2 tasks started cold (slower): the warm starter stopped taking tasks" in capsys.readouterr().err


def test_a_starter_that_dies_during_a_task_fails_that_task_and_says_so(tmp_path, capsys):
    """Its exit status is lost with the starter: failed, never guessed; later tasks start cold."""
    with kfp_local(str(tmp_path / "kfp"), preload=PRELOAD) as starter:
        lines = []
        starter.echo = lambda *a, **k: lines.append(" ".join(map(str, a)))
        with pytest.raises(RuntimeError, match="FAILURE"):
            failing(how="kill-starter")
        assert "the warm starter died before it reported this task's exit status" in "".join(lines)
        assert json.loads(whoami(tag="after").output)["tag"] == "after"
    assert starter.started == {"warm": 1, "cold": 1} and "died during a task" in starter.note


def test_a_starter_that_dies_while_preloading_says_what_it_wrote(tmp_path, monkeypatch, capsys):
    (tmp_path / "explodes_on_import.py").write_text(
        "import os, sys\nsys.stderr.write('preload exploded: out of widgets\\n')\nsys.stderr.flush()\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with kfp_local(str(tmp_path / "kfp"), preload=("json", "explodes_on_import")) as starter:
        assert json.loads(whoami(tag="x").output)["tag"] == "x"
    assert starter.started == {"warm": 0, "cold": 1}
    assert "did not get ready" in starter.note and "it wrote: preload exploded: out of widgets" in starter.note
    assert "preload exploded: out of widgets" in capsys.readouterr().err


def test_a_starter_that_cannot_start_leaves_every_task_cold(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(warm_start.sys, "executable", str(tmp_path / "no-python"))
    with kfp_local(str(tmp_path / "kfp"), preload=PRELOAD) as starter:
        monkeypatch.undo()  # the tasks themselves need the real interpreter
        assert json.loads(whoami(tag="x").output)["tag"] == "x"
    assert starter.started == {"warm": 0, "cold": 1} and "could not start" in starter.note
    assert "could not start" in capsys.readouterr().err


def test_cold_sessions_start_each_task_through_kfp_locals_own_function(tmp_path):
    from kfp.local import subprocess_task_handler

    original = subprocess_task_handler.run_local_subprocess
    with kfp_local(str(tmp_path / "kfp"), warm=False) as runner:
        assert type(runner) is TaskRunner and runner.cold is original
        assert subprocess_task_handler.run_local_subprocess is runner
        assert not json.loads(whoami(tag="c").output)["preloaded"]
    assert runner.started == {"warm": 0, "cold": 1} and not runner.cold_reasons
    with kfp_local(str(tmp_path / "kfp2"), preload=PRELOAD):
        assert subprocess_task_handler.run_local_subprocess is not original
    assert subprocess_task_handler.run_local_subprocess is original  # restored


@pytest.mark.parametrize("warm", [True, False])
def test_each_tasks_wall_and_cpu_time_is_recorded_with_its_child_processes(tmp_path, warm):
    with kfp_local(str(tmp_path / "kfp"), warm=warm, preload=PRELOAD) as runner:
        burns(seconds=0.6)
    by_task = {task["task"]: task for task in runner.tasks}  # kfp.local picks the order of independent tasks
    assert len(runner.tasks) == 2 and set(by_task) == {"burn", "whoami"}
    heavy, light = by_task["burn"], by_task["whoami"]
    assert {heavy["start"], light["start"]} == {"warm" if warm else "cold"}
    assert heavy["cpu_s"] >= 1.2 and heavy["wall_s"] >= 0.6  # its own 0.6 s and its child's
    assert light["cpu_s"] < heavy["cpu_s"] - 0.8
    line = stage_times({"tasks": runner.tasks, "cpu_count": 2, "load_1m": {"before": 0.5, "after": 1.0}})
    stage = r"(\w+) 1x ([\d.]+) s \([\d.]+ CPU-s\)"
    match = re.fullmatch(rf"time by stage: {stage}; {stage}; all 2 tasks [\d.]+ s \([\d.]+ CPU-s\) "
                         r"at load 0\.5-1\.0 on 2 CPUs", line)
    assert match and {match[1], match[3]} == {"burn", "whoami"}, line
    assert float(match[2]) >= float(match[4])  # the longest first
    assert f"burn 1x {heavy['wall_s']:.1f} s ({heavy['cpu_s']:.1f} CPU-s)" in line


def test_only_kfp_locals_component_script_is_recognized():
    script = ('program_path=$(mktemp -d)\n\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
              '_KFP_RUNTIME=true /venv/bin/python -m kfp.dsl.executor_main                         '
              '--component_module_path                         "$program_path/ephemeral_component.py"'
              '                         "$@"\n')
    command = ["sh", "-ec", script, "def f(): pass\n", "--executor_input", "{}", "--function_to_execute", "f"]
    assert parse_task_command(command) == ("/venv/bin/python", "def f(): pass\n",
                                           ["--executor_input", "{}", "--function_to_execute", "f"])
    assert parse_task_command(["sh", "-c", *command[2:]]) is None
    assert parse_task_command(["sh", "-ec", script.replace("executor_main", "other_main"), *command[3:]]) is None
    assert parse_task_command(["sh", "-ec", "pip install x && " + script, *command[3:]]) is None
    assert parse_task_command(["python", "-m", "kfp.dsl.executor_main"]) is None


def test_variables_read_at_import_time_are_recognized():
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONPATH", "PYTHONHASHSEED",
                 "LD_PRELOAD", "TORCH_HOME", "ARROW_DEFAULT_MEMORY_POOL"):
        assert warm_start.IMPORT_TIME_ENV.fullmatch(name), name
    for name in ("LINAS_LEASE_TTL_S", "LINAS_S3_ENDPOINT", "HOME", "PATH_OMP"):
        assert not warm_start.IMPORT_TIME_ENV.fullmatch(name), name


def test_exit_descriptions_name_the_signal():
    assert exit_description(0) == "exited with code 0" and exit_description(None) == "exited with code None"
    assert exit_description(-15) == "was killed by signal 15 (SIGTERM)"
    assert exit_description(-9) == "was killed by signal 9 (SIGKILL: often the out-of-memory killer)"
    assert exit_description(-99) == "was killed by signal 99"


def test_commands_it_does_not_recognize_run_cold(tmp_path):
    calls = []
    starter = WarmStarter(lambda full_command, env_vars: calls.append(full_command) or 7, preload=())
    with starter:
        assert starter(["echo", "hi"], {}) == 7
    assert calls == [["echo", "hi"]] and starter.started == {"warm": 0, "cold": 1}
