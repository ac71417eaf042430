"""A real S3 server (moto_server) on loopback, started and stopped by the tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(auth_free_actions: int | None = None):
    """Yield 'host:port' of a fresh moto S3 server.

    With `auth_free_actions`, moto enforces IAM authentication after that many
    requests (the setup requests that create a user and its keys).
    """
    port = free_port()
    env = {**os.environ}
    if auth_free_actions is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(auth_free_actions)
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
