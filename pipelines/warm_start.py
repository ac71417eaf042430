"""Warm task starts for kfp.local: each task forks from one interpreter that has already
imported what the stages import.

kfp.local's SubprocessRunner starts every task as `sh -ec SCRIPT CODE ARGS...`, where the
script writes CODE to a file and runs `python -m kfp.dsl.executor_main` on it. A fresh
interpreter spends 2-5 CPU-seconds on imports (kfp, the stages, torch, scikit-learn)
before a task does any work, 22 times in `make run`, and three times as long in wall
time on a busy machine. Here a long-lived process (the *starter*) imports those modules
once, stays single-task, and forks a child per task; the child does what the script
does: writes CODE to a fresh temporary directory, sets the task's environment and runs
`kfp.dsl.executor_main` as `__main__`. The task still is its own process with its own
exit status; its output reaches kfp.local line by line, as from the subprocess.

Everything else runs cold, exactly as kfp.local would: a command in any other shape, a
task whose environment changes what the preloaded modules read at import (thread
counts, devices, paths), a changed working directory or environment of this process, or
a starter that failed or died. The cluster never sees any of this: pods start cold.

Warm or cold, each task's wall and CPU seconds (its own child processes included) are
recorded (`TaskRunner.tasks`): `pipeline run` says per stage where a run's time went.
"""
from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, NoReturn

from linas_lib.messages import exit_description

# What the tasks import: kfp's executor (every task), the stages (pandas, pyarrow,
# pydantic, pymoo), every registry's built-ins (which config validation imports), the
# predictors' scikit-learn and torch (scoring, export, timing). "module:function" also
# calls the function. Not onnxruntime or openvino: they start threads on import, and a
# fork copies a thread's locks but not the thread.
PRELOAD = (
    "kfp.dsl.executor",
    "kfp.dsl.utils",
    "linas_lib.stages",
    "linas_lib.registry:import_all_builtins",
    "linas_lib.search.run",
    "linas_lib.predictors.estimators",
    "linas_lib.predictors.ensemble",
    "linas_lib.predictors.large",
    "torch",
    "onnx",
)
# Environment variables that modules read when they are imported (so a task that sets
# one starts cold, where it takes effect).
IMPORT_TIME_ENV = re.compile(r"(OMP|MKL|OPENBLAS|KMP|GOMP|CUDA|NVIDIA|HIP|ROCR|LD)_.*|PYTHON.*|TORCH.*|ARROW_.*")
READY_TIMEOUT_S = 300.0  # preloading takes 5-15 s; a busy host can stretch that several times
# The script kfp.local runs for a lightweight component, with `python3` replaced by the
# interpreter (SubprocessRunner(use_venv=False)); whitespace as kfp writes it varies.
_SCRIPT = re.compile(
    r'program_path=\$\(mktemp -d\)\s+printf "%s" "\$0" > "\$program_path/ephemeral_component\.py"\s+'
    r'_KFP_RUNTIME=true (?P<python>\S+) -m kfp\.dsl\.executor_main\s+'
    r'--component_module_path\s+"\$program_path/ephemeral_component\.py"\s+"\$@"\s*')


def parse_task_command(full_command: list[str]) -> tuple[str, str, list[str]] | None:
    """(python, component code, executor arguments) of a kfp.local lightweight-component
    command, or None for any other command."""
    if len(full_command) < 4 or full_command[:2] != ["sh", "-ec"]:
        return None
    match = _SCRIPT.fullmatch(full_command[2])
    if match is None:
        return None
    return match["python"], full_command[3], list(full_command[4:])


# ---- framing: length-prefixed JSON on a Unix stream socket ------------------------------
def _send(sock: socket.socket, message: dict) -> None:
    data = json.dumps(message).encode()
    sock.sendall(struct.pack("!Q", len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> dict:
    (size,) = struct.unpack("!Q", _recv_exact(sock, 8))
    return json.loads(_recv_exact(sock, size))


class TaskRunner:
    """kfp.local's `run_local_subprocess(full_command, env_vars) -> int`, with a record of
    each task: its function, how it started, and its wall and CPU seconds (its child
    processes included). This one starts every task as kfp.local does (`cold`)."""

    def __init__(self, cold: Callable[..., int]):
        self.cold = cold
        self.started = {"warm": 0, "cold": 0}
        self.cold_reasons: dict[str, int] = {}  # why tasks started cold that could have started warm
        self.tasks: list[dict] = []

    def __enter__(self) -> "TaskRunner":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, full_command: list[str], env_vars: dict | None = None) -> int:
        return self._run_cold(full_command, env_vars or {}, parse_task_command(full_command), time.perf_counter())

    def _run_cold(self, full_command: list[str], env_vars: dict, parsed, began: float) -> int:
        self.started["cold"] += 1
        # kfp.local runs one task at a time: the children's CPU time that grows meanwhile is this task's
        before = _children_cpu_s()
        try:
            return self.cold(full_command=full_command, env_vars=env_vars)
        finally:
            self._account(parsed, "cold", began, _children_cpu_s() - before)

    def _account(self, parsed, start: str, began: float, cpu_s: float | None) -> None:
        args = parsed[2] if parsed else []
        name = args[args.index("--function_to_execute") + 1] if "--function_to_execute" in args[:-1] else "?"
        self.tasks.append({"task": name, "start": start, "wall_s": round(time.perf_counter() - began, 3),
                           "cpu_s": None if cpu_s is None else round(cpu_s, 3)})


class WarmStarter(TaskRunner):
    """A TaskRunner that starts tasks warm where it can.

    `cold` is kfp.local's function (used for anything not started warm); `echo` prints
    one line of task output (kfp.local's relay, or its filtered replacement)."""

    def __init__(self, cold: Callable[..., int], echo: Callable[..., None] = print, preload=PRELOAD):
        super().__init__(cold)
        self.echo, self.preload = echo, preload
        self.note = ""  # why the starter itself stopped or never started
        self.pids: list[int] = []  # of the tasks started warm
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._errors = None  # the starter's own stderr (its tasks' output goes to kfp.local)
        self.preloaded: list[str] = []  # as the starter reports them once it is ready
        self.skipped: dict[str, str] = {}
        self._ready = False

    # ---- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> "WarmStarter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._errors is not None:
            self._errors.close()
            self._errors = None

    def start(self) -> None:
        """Launch the starter; it preloads in the background until the first task needs it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._env, self._cwd = dict(os.environ), os.getcwd()
        self._errors = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.warm_start", str(theirs.fileno()), *self.preload],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._errors, env=self._env, cwd=self._cwd)
        except OSError as exc:
            ours.close()
            self.note = f"the warm starter could not start ({exc})"
        else:
            self._sock = ours
        finally:
            theirs.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the starter exits on end of input
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def _give_up(self, why: str) -> None:
        self.close()
        self.note = self.note or why + self._last_words()

    def _last_words(self) -> str:
        """The end of what the starter wrote to stderr, if anything (a traceback, a fatal error)."""
        if self._errors is None:
            return ""
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        return f"; it wrote: {' | '.join(lines[-3:])}" if lines else ""

    # ---- tasks ------------------------------------------------------------------------
    def _why_cold(self, parsed, env_vars: dict) -> str | None:
        """None if this task may start warm, else why not."""
        if self._sock is None:
            return self.note or "no warm starter"
        if parsed is None:
            return "not a lightweight-component command"
        if os.path.realpath(parsed[0]) != os.path.realpath(sys.executable):
            return f"another interpreter ({parsed[0]})"
        if dict(os.environ) != self._env or os.getcwd() != self._cwd:
            return "the environment or working directory changed since the starter started"
        if any(IMPORT_TIME_ENV.fullmatch(name) for name in env_vars):
            return "the task sets a variable read at import time"
        return None

    def __call__(self, full_command: list[str], env_vars: dict | None = None) -> int:
        env_vars = env_vars or {}
        parsed = parse_task_command(full_command)
        began = time.perf_counter()
        with self._lock:
            why = self._why_cold(parsed, env_vars)
            if why is None:
                code, cpu_s = self._run_warm(parsed, env_vars)
                if code is not None:
                    self.started["warm"] += 1
                    self._account(parsed, "warm", began, cpu_s)
                    return code
                why = self.note
            self.cold_reasons[why] = self.cold_reasons.get(why, 0) + 1
        return self._run_cold(full_command, env_vars, parsed, began)

    def _await_ready(self) -> bool:
        if self._ready:
            return True
        try:
            self._sock.settimeout(READY_TIMEOUT_S)
            hello = _recv(self._sock)
            self._sock.settimeout(None)
        except (OSError, EOFError, ValueError) as exc:
            self._give_up(f"the warm starter did not get ready ({type(exc).__name__}: {exc})")
            return False
        self.preloaded, self.skipped = hello["preloaded"], hello["skipped"]
        self._ready = True
        return True

    def _run_warm(self, parsed, env_vars: dict) -> tuple[int | None, float | None]:
        """The task's exit code (None if it could not be handed over: then it runs cold)
        and its CPU seconds (with those of its child processes), as far as known."""
        if not self._await_ready():
            return None, None
        _, code, args = parsed
        read_end, write_end = os.pipe()
        try:
            socket.send_fds(self._sock, [b"T"], [write_end])
            _send(self._sock, {"code": code, "args": args, "env": {**self._env, **env_vars, "_KFP_RUNTIME": "true"}})
            started = _recv(self._sock)  # the task's pid: from here on it runs, whatever happens to the starter
        except (OSError, EOFError, ValueError) as exc:
            os.close(read_end)
            self._give_up(f"the warm starter stopped taking tasks ({type(exc).__name__}: {exc})")
            return None, None
        finally:
            os.close(write_end)
        self.pids.append(started["pid"])
        # The task's stdout and stderr, as kfp.local relays a subprocess's: line by line.
        with open(read_end, encoding="utf-8", errors="replace", newline=None) as output:
            for line in output:
                self.echo(line, end="")
        self.echo("\n")
        try:
            status = _recv(self._sock)
        except (OSError, EOFError, ValueError) as exc:
            self._give_up(f"the warm starter died during a task ({type(exc).__name__})")
            self.echo("linas: the warm starter died before it reported this task's exit status\n", end="")
            return 1, None
        if status["exit"] < 0:
            self.echo(f"linas: the task's process {exit_description(status['exit'])}\n", end="")
        return status["exit"], status["cpu_s"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---- the starter process ----------------------------------------------------------------
def _run_task(code: str, args: list[str], env: dict) -> NoReturn:
    """In the forked child: what kfp.local's script does, then exit as the task."""
    import runpy
    import tempfile

    try:
        os.environ.clear()
        os.environ.update(env)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the starter ignores it; a task must not
        if "numpy" in sys.modules:  # a fresh interpreter would have a fresh legacy global RNG
            sys.modules["numpy"].random.seed()
        program_path = tempfile.mkdtemp()
        module_path = os.path.join(program_path, "ephemeral_component.py")
        with open(module_path, "w", encoding="utf-8") as f:
            f.write(code)
        sys.argv = ["-m", "--component_module_path", module_path, *args]
        runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exc:  # as the interpreter maps it: None is 0, a message is printed and 1
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except KeyboardInterrupt:
        status = -signal.SIGINT
    except BaseException as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
        status = 1
    _exit(status)


def _exit(status: int) -> NoReturn:
    """End the task as the interpreter would (threads joined, exit handlers run, output
    flushed) without tearing down every preloaded module: that teardown costs about
    1.4 CPU-seconds per task and does nothing the task can see."""
    import atexit
    import threading

    try:
        threading._shutdown()  # what the interpreter does first: wait for non-daemon threads
    except Exception:
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if status < 0:  # an interrupted task dies of its signal, as an interrupted interpreter does
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status & 0xFF)


def serve(fd: int, preload: list[str]) -> None:
    import importlib

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the tasks; the parent then closes us
    sock = socket.socket(fileno=fd)
    preloaded, skipped = [], {}
    for name in preload:
        module, _, function = name.partition(":")
        try:
            loaded = importlib.import_module(module)
            if function:
                getattr(loaded, function)()
            preloaded.append(name)
        except Exception as exc:  # a cold task would meet the same error, and report it
            skipped[name] = f"{type(exc).__name__}: {exc}"
    _send(sock, {"preloaded": preloaded, "skipped": skipped})
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
            if not fds:
                return  # end of input: the pipeline run is over
            request = _recv(sock)
        except (OSError, EOFError):
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the task: never returns into this loop
            sock.close()
            os.dup2(fds[0], 1)
            os.dup2(fds[0], 2)
            os.close(fds[0])
            _run_task(request["code"], request["args"], request["env"])
        os.close(fds[0])
        _send(sock, {"pid": pid})
        _, wait_status, usage = os.wait4(pid, 0)  # usage includes the task's own reaped children
        _send(sock, {"exit": os.waitstatus_to_exitcode(wait_status), "cpu_s": usage.ru_utime + usage.ru_stime})


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
