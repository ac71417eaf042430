"""Fault injection: run a LINAS search many times on an S3 store while it is killed,
its backend crashes or returns NaN, its S3 connections are reset, the store goes down
in the middle of an iteration and its stored objects are corrupted; resume until done;
count what was lost or measured twice.

The super-network is NAS-Bench-201 behind `bench/plugins/faulty_nasbench201.py`:
table values, so a finished run can be compared with an uninterrupted one exactly.
The S3 server is a real moto_server on loopback, reached through a proxy that
resets a fraction of the connections. Each trial's first start runs into a store
outage (every connection refused or cut for OUTAGE_S, longer than the S3 client's
retries) once it has taken a few measurements: the search must stop, keep the
measurement it could not record in its local journal, and repeat nothing on resume.

    python bench/faults.py            # quick: 3 trials
    python bench/faults.py --full     # 10 trials

Writes bench/results/faults.json. `measurements_lost` and `measurements_repeated`
must be 0, every trial's result must equal the uninterrupted run's, and every trial
must have run into its store outage.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' moto_server launcher
sys.path.insert(0, str(ROOT))
from s3_server import free_port, moto_server  # noqa: E402

sys.path.insert(0, str(ROOT / "bench" / "plugins"))
from ledger import read_ledger  # noqa: E402

PLUGIN = str(ROOT / "bench" / "plugins" / "faulty_nasbench201.py")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "linas-bench", "AWS_SECRET_ACCESS_KEY": "linas-bench-secret"}
FAULTS = {"exception": 0.04, "nan": 0.04, "kill": 0.004, "sleep_s": 0.004}
S3_RESET_RATE = 0.03
OUTAGE_S = 8.0  # longer than S3Store's retries (0.25 + 0.5 + 1 + 2 s of backoff)
OUTAGE_AFTER = 7  # measurements into the first start's iteration 0 (population 10, 2 kinds each)
COLUMNS = ["iteration", "subnet_id", "status", "accuracy", "latency@nb201"]


class FlakyProxy:
    """TCP proxy to the S3 server that resets a fraction of new connections."""

    def __init__(self, upstream: str, reset_rate: float, seed: int):
        self.upstream = upstream.split(":")
        self.reset_rate, self.rng = reset_rate, random.Random(seed)
        self.resets = self.connections = self.refused = self.outages = 0
        self.down = False
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def outage_when(self, ledger: Path, lines: int, seconds: float) -> threading.Thread:
        """Go down (refuse new connections, cut open ones) once `ledger` holds `lines` lines, for `seconds`."""
        def watch() -> None:
            deadline = time.time() + 120
            while time.time() < deadline:
                if ledger.exists() and ledger.read_text().count("\n") >= lines:
                    break
                time.sleep(0.02)
            else:
                return
            with self.lock:
                self.down, self.outages = True, self.outages + 1
                for sock in list(self.open):
                    _reset(sock)
                self.open.clear()
            time.sleep(seconds)
            self.down = False

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            client, _ = self.server.accept()
            self.connections += 1
            if self.down:
                self.refused += 1
                _reset(client)
                continue
            if self.rng.random() < self.reset_rate:
                self.resets += 1
                _reset(client)  # the client sees "connection reset by peer"
                continue
            upstream = socket.create_connection((self.upstream[0], int(self.upstream[1])))
            with self.lock:
                self.open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a dead endpoint or a cut network path does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    except OSError:
        pass


def _config(path: Path, seed: int) -> Path:
    config = {
        "name": f"faults-{seed}", "seed": seed,
        "supernet": {"name": "faulty_nasbench201", "plugin_file": PLUGIN, "params": {"dataset": "cifar10"}},
        "objectives": ["accuracy", "latency"],
        "targets": [{"name": "nb201", "backend": "tabular"}],
        "search": {"population": 10, "evaluations": 60, "inner": {"evaluations": 2000}},
        "measurement": {"retries": 8, "backoff_s": 0.01},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _run(config: Path, uri: str, resume: bool, ledger: Path, faults: dict, kill_after: float | None,
         journal: Path | None = None) -> tuple[int, int, str]:
    env = {**os.environ, **CREDENTIALS, "LINAS_FAULT_LEDGER": str(ledger), "LINAS_FAULTS": json.dumps(faults),
           "PYTHONPATH": str(ROOT)}
    if journal:
        env["LINAS_JOURNAL"] = str(journal)
    args = [sys.executable, "-m", "linas_lib.cli", "search", str(config), "--resume" if resume else "--out", uri]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    err = proc.communicate(timeout=600)[1]
    last = err.strip().splitlines()[-1] if err.strip() else ""
    if proc.returncode not in (0, -signal.SIGKILL):
        print(f"    run ended with {proc.returncode}: {last[:300]}")
    return proc.returncode, proc.pid, last


def _table(store, prefix: str) -> pd.DataFrame:
    from linas_lib.api.store import get_table

    return get_table(store, f"{prefix}/measurements.parquet")[COLUMNS].reset_index(drop=True)


def _corrupt(store, prefix: str, rng: random.Random) -> tuple[str, str | None]:
    """Damage one stored object: a cache entry (returns its subnet) or the run's table."""
    entries = [k for k in store.list("evaluation-cache/") if k.endswith(".json") and "_stale" not in k]
    if entries and rng.random() < 0.7:
        key = rng.choice(entries)
        store.put_bytes(key, store.get_bytes(key)[:-5] + b"#####")
        return key, Path(key).stem
    key = f"{prefix}/measurements.parquet"
    if store.exists(key):
        data = store.get_bytes(key)
        store.put_bytes(key, data[: len(data) // 2])  # truncated
        return key, None
    return "", None


def trial(index: int, seed: int, endpoint: str, proxy: FlakyProxy, work: Path, bucket: str) -> dict:
    from linas_lib.stores import open_store

    rng = random.Random(1000 + index)
    config = _config(work / f"config-{index}.yaml", seed)
    store = open_store(f"s3://{bucket}?endpoint={endpoint}&secure=false")

    # the uninterrupted run, on the same store but its own cache, straight to the server
    reference_uri = f"s3://{bucket}/reference-{index}/run?endpoint={endpoint}&secure=false"
    assert _run(config, reference_uri, False, work / f"ref-{index}.ledger", {}, None, work / f"ref-{index}.journal")[0] == 0
    reference = _table(store, f"reference-{index}/run")

    uri = f"s3://{bucket}/trial-{index}/run?endpoint={proxy.endpoint}&secure=false"
    ledger = work / f"trial-{index}.ledger"
    starts = outside_kills = crashes = stopped_by_outage = 0
    corrupted: list[str] = []
    remeasure_ok: set[str] = set()
    rc = None
    killed: set[str] = set()
    t0 = time.time()
    while rc != 0 and starts < 40:
        resume = starts > 0 and store.exists(f"trial-{index}/run/config.json")
        kill_after = rng.uniform(1.5, 6.0) if starts < 4 and rng.random() < 0.8 else None
        outage = None
        if starts == 0:  # the first start runs into a store outage mid-iteration instead of a kill
            kill_after = None
            outage = proxy.outage_when(ledger, OUTAGE_AFTER, OUTAGE_S)
        rc, pid, last = _run(config, uri, resume, ledger, {**FAULTS, "seed": seed * 100 + starts}, kill_after,
                             work / f"trial-{index}.journal")
        if outage is not None:
            outage.join()  # the store is back before anything resumes
        starts += 1
        if rc == -signal.SIGKILL:
            killed.add(str(pid))
        if rc == -signal.SIGKILL and kill_after is not None:
            outside_kills += 1
        elif outage is not None and rc != 0 and "could not record the measurement" in last:
            stopped_by_outage += 1
        elif rc not in (0, -signal.SIGKILL):
            crashes += 1
        if rc != 0 and rng.random() < 0.5:
            key, subnet = _corrupt(open_store(f"s3://{bucket}/trial-{index}?endpoint={endpoint}&secure=false"),
                                   "run", rng)
            if key:
                corrupted.append(key)
                if subnet:
                    remeasure_ok.add(subnet)  # a damaged entry must be measured again: not a repeat
    counts = read_ledger(ledger, killed, remeasure_ok)
    measured, faults = counts["measured"], counts["faults"]
    final = _table(store, f"trial-{index}/run") if rc == 0 else pd.DataFrame(columns=COLUMNS)
    in_table = {(kind, sid) for sid in final["subnet_id"] for kind in ("quality", "latency")}
    lost = sum(1 for key in measured if key not in in_table)
    equal = rc == 0 and final.equals(reference)
    return {
        "trial": index, "seed": seed, "finished": rc == 0, "starts": starts, "resumes": max(starts - 1, 0),
        "faults_injected": {"process_kills_outside": outside_kills, "process_kills_inside": faults.get("kill", 0),
                            "backend_exceptions": faults.get("exception", 0), "nan_results": faults.get("nan", 0),
                            "corrupt_objects": len(corrupted), "runs_stopped_by_store_outage": stopped_by_outage,
                            "other_crashes": crashes},
        "corrupted": corrupted, "measurements": sum(measured.values()), "measurements_lost": lost,
        "measurements_repeated": len(counts["repeated"]), "repeated_keys": counts["repeated"],
        "remeasured_after_corruption": counts["remeasured_after_corruption"],
        "interrupted_by_kill_and_redone": counts["interrupted_and_redone"],
        "equal_to_uninterrupted": bool(equal), "wall_s": round(time.time() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="10 trials instead of 3")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "faults.json"))
    args = parser.parse_args()
    trials = args.trials or (10 if args.full else 3)
    os.environ.update(CREDENTIALS)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"linas-faults-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    from linas_lib.stores import open_store

    results = []
    t0 = time.time()
    with moto_server() as endpoint:
        proxy = FlakyProxy(endpoint, S3_RESET_RATE, seed=1)
        bucket = f"faults-{uuid.uuid4().hex[:8]}"
        open_store(f"s3://{bucket}?endpoint={endpoint}&secure=false").ensure_bucket()
        for i in range(trials):
            result = trial(i, seed=11 + i, endpoint=endpoint, proxy=proxy, work=work, bucket=bucket)
            print(f"trial {i}: {result['starts']} starts, faults {result['faults_injected']}, "
                  f"lost {result['measurements_lost']}, repeated {result['measurements_repeated']}, "
                  f"equal {result['equal_to_uninterrupted']}")
            results.append(result)
        s3_faults = {"connections": proxy.connections, "connection_resets": proxy.resets,
                     "store_outages": proxy.outages, "connections_refused_in_outages": proxy.refused}
    totals: dict = Counter()
    for r in results:
        totals.update(r["faults_injected"])
    report = {
        "benchmark": "faults",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {"trials": trials, "faults": FAULTS, "s3_reset_rate": S3_RESET_RATE,
                     "store_outage": {"seconds": OUTAGE_S, "after_measurements": OUTAGE_AFTER, "at_start": 0},
                     "search": "NAS-Bench-201 cifar10, population 10, 60 evaluations"},
        "faults_injected": {**dict(totals), "s3_connection_resets": s3_faults["connection_resets"],
                            "store_outages": s3_faults["store_outages"]},
        "s3": s3_faults,
        "resumes": sum(r["resumes"] for r in results),
        "measurements_lost": sum(r["measurements_lost"] for r in results),
        "measurements_repeated": sum(r["measurements_repeated"] for r in results),
        "remeasured_after_corruption": sum(r["remeasured_after_corruption"] for r in results),
        "interrupted_by_kill_and_redone": sum(r["interrupted_by_kill_and_redone"] for r in results),
        "all_equal_to_uninterrupted": all(r["equal_to_uninterrupted"] for r in results),
        "trials": results,
        "wall_s": round(time.time() - t0, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k not in ("trials",)}, indent=2))
    ok = report["measurements_lost"] == 0 and report["measurements_repeated"] == 0 and \
        report["all_equal_to_uninterrupted"] and s3_faults["store_outages"] == trials
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
