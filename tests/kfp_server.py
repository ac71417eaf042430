"""A local HTTP server speaking the parts of KFP's /apis/v2beta1 that kfp.Client uses.

It keeps experiments, runs and recurring runs in memory and records every request,
so tests can assert exactly what a submission sent.
"""
from __future__ import annotations

import json
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOW = "2026-11-29T00:00:00Z"


class FakeKfp:
    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.experiments: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.recurring_runs: list[dict] = []

    def handle(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        self.requests.append((method, path, body))
        route = path.split("?", 1)[0].rstrip("/")
        if route == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False, "pipeline_store": "database"}
        if route == "/apis/v2beta1/experiments" and method == "GET":
            name = _query(path).get("filter", "")
            found = [e for e in self.experiments.values() if e["display_name"] in name]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if route == "/apis/v2beta1/experiments" and method == "POST":
            exp = {**body, "experiment_id": str(uuid.uuid4()), "created_at": NOW, "storage_state": "AVAILABLE"}
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if route.startswith("/apis/v2beta1/experiments/") and method == "GET":
            exp = self.experiments.get(route.rsplit("/", 1)[1])
            return (200, exp) if exp else (404, {"error": "not found"})
        if route == "/apis/v2beta1/runs" and method == "POST":
            run = {**body, "run_id": str(uuid.uuid4()), "created_at": NOW, "state": "PENDING"}
            self.runs.append(run)
            return 200, run
        if route == "/apis/v2beta1/recurringruns" and method == "POST":
            job = {**body, "recurring_run_id": str(uuid.uuid4()), "created_at": NOW, "updated_at": NOW,
                   "status": "ENABLED"}
            self.recurring_runs.append(job)
            return 200, job
        return 404, {"error": f"{method} {route} is not served by the fake"}


def _query(path: str) -> dict[str, str]:
    from urllib.parse import parse_qs, urlparse

    return {k: v[-1] for k, v in parse_qs(urlparse(path).query).items()}


@contextmanager
def kfp_server():
    """Yield (FakeKfp, 'http://127.0.0.1:PORT')."""
    fake = FakeKfp()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            status, payload = fake.handle(method, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._serve("GET")

        def do_POST(self):  # noqa: N802
            self._serve("POST")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
