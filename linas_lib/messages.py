"""How error messages quote a value they were given (its repr, cut to a readable length),
how they tell a child process's end, and the warning a long job gives on a busy host.

A hostile or mistaken input (a 10,000-gene list, a whole YAML document in one field)
must not flood the terminal; the start of it is enough to recognise it.
"""
from __future__ import annotations

import signal
import sys
from typing import Any


def short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exit_description(code: int | None) -> str:
    """A child process's exit status (negative: the signal that killed it) as a phrase:
    "exited with code 1", "was killed by signal 9 (SIGKILL: often the out-of-memory killer)"."""
    if code is None or code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return f"was killed by signal {-code}"
    return f"was killed by signal {-code} ({name}" + (": often the out-of-memory killer)" if -code == signal.SIGKILL else ")")


_busy_warned = False  # once per command: a search that trains first says it once, not twice


def warn_if_busy() -> None:
    """Before a long job (training, a search, a pipeline run): one warning line on stderr
    if the host is already busier than its CPUs, at most once per command."""
    global _busy_warned
    from linas_lib.backends.timing import busy_host_note

    note = None if _busy_warned else busy_host_note()
    if note:
        print(f"linas: warning: {note}", file=sys.stderr, flush=True)
        _busy_warned = True


def new_command() -> None:
    """A new `linas` command begins (cli.main): its long jobs may warn again."""
    global _busy_warned
    _busy_warned = False
