"""Reading the ledger that `faulty_nasbench201` writes: what was measured, and how often."""
from __future__ import annotations


def read_ledger(path, killed_pids=(), corrupted_subnets=()) -> dict:
    """Count a ledger's measurements: taken, repeated, redone after a kill, per fault.

    A killed process's last measurement may have finished without being stored: taking
    it again finishes an interrupted measurement and is not a repeat. Anything measured
    again after it was stored is a repeat, unless the bench corrupted its stored copy.
    """
    from collections import Counter
    from pathlib import Path

    text = Path(path).read_text() if Path(path).exists() else ""
    lines = [line.split() for line in text.split("\n") if line]
    done = [(kind, key, pid) for kind, key, pid in lines if not kind.startswith("fault:")]
    killed = {str(p) for p in killed_pids}
    last_of_killed = {max(i for i, (_, _, p) in enumerate(done) if p == pid)
                      for pid in killed if any(p == pid for _, _, p in done)}
    stored: set = set()
    interrupted: set = set()
    repeated, redone, after_corruption = [], 0, 0
    for i, (kind, key, _) in enumerate(done):
        if (kind, key) in stored:
            if key in corrupted_subnets:
                after_corruption += 1
            else:
                repeated.append(f"{kind} {key}")
        elif (kind, key) in interrupted:
            redone += 1
        (interrupted if i in last_of_killed else stored).add((kind, key))
    return {"measured": Counter((kind, key) for kind, key, _ in done), "repeated": repeated,
            "interrupted_and_redone": redone, "remeasured_after_corruption": after_corruption,
            "faults": Counter(kind.removeprefix("fault:") for kind, _, _ in lines if kind.startswith("fault:"))}
