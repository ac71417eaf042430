"""One writer per run location: a lease object in the store.

A second pipeline run on the same store (the UI's "Clone run", a manual run beside a
schedule) would start fresh and delete the first run's populations, predictors and
tables. The run that starts (sample) takes `lease.json` = {holder, holder_name,
acquired, expires}; the tasks that write run state renew it and check they still hold
it; the report releases it. Another holder's unexpired lease fails the task at once
with a message naming that run. S3 has no compare-and-swap here, so acquiring writes,
waits `settle_s` and reads back: of two runs starting in the same instant, at most the
one whose write landed last goes on (both fail only in a narrower race, never both run).
"""
from __future__ import annotations

import os
import time
from typing import Any

from linas_lib.api.store import Store, get_json, put_json

LEASE = "lease.json"


class LeaseHeld(RuntimeError):
    """The run location is held by another, live run."""


def _current(store: Store) -> dict[str, Any] | None:
    return get_json(store, LEASE) if store.exists(LEASE) else None


def _refuse(store: Store, lease: dict[str, Any], holder: str) -> LeaseHeld:
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(lease["expires"]))
    name = f" ({lease['holder_name']})" if lease.get("holder_name") else ""
    return LeaseHeld(
        f"{store.uri} is in use by run {lease['holder']}{name}, lease until {until}; this run ({holder}) would "
        f"overwrite its populations, predictors and tables. Wait for it to finish, give this run another "
        f"store_uri, or, if that run is gone, delete {store.uri}/{LEASE}"
    )


def acquire(store: Store, holder: str, ttl_s: float, holder_name: str = "", settle_s: float = 1.0,
            now=time.time) -> dict[str, Any]:
    lease = _current(store)
    if lease and lease["holder"] != holder and lease["expires"] > now():
        raise _refuse(store, lease, holder)
    ours = lease if lease and lease["holder"] == holder else {}  # a retried task of this run keeps its lease
    mine = {"holder": holder, "holder_name": holder_name or ours.get("holder_name", ""),
            "acquired": ours.get("acquired", now()), "expires": now() + ttl_s}
    put_json(store, LEASE, mine)
    time.sleep(settle_s)  # a concurrent acquirer's write lands, or has landed, by now
    lease = _current(store)
    if not lease or lease["holder"] != holder:
        raise _refuse(store, lease or mine, holder)
    return lease


def renew(store: Store, holder: str, ttl_s: float, now=time.time) -> dict[str, Any]:
    """Extend this run's lease; fail if another run took the location meanwhile."""
    lease = _current(store)
    if lease and lease["holder"] != holder and lease["expires"] > now():
        raise _refuse(store, lease, holder)
    lease = {**(lease or {}), "holder": holder, "expires": now() + ttl_s}
    lease.setdefault("acquired", now())
    put_json(store, LEASE, lease)
    return lease


def release(store: Store, holder: str) -> bool:
    lease = _current(store)
    if lease and lease["holder"] == holder:
        store.delete(LEASE)
        store.delete(LEASE + ".sha256")
        return True
    return False


# A day when the deployment sets none: longer than any iteration kfp.local runs.
DEFAULT_TTL_S = 86_400.0


def lease_ttl_s() -> float:
    """How long a lease lasts: the deployment layer sets LINAS_LEASE_TTL_S on the tasks,
    from the pod time-outs and retries (pipelines.placement.Deployment.lease_ttl_s)."""
    value = os.environ.get("LINAS_LEASE_TTL_S", "")
    try:
        ttl = float(value) if value else DEFAULT_TTL_S
    except ValueError:
        raise ValueError(f"LINAS_LEASE_TTL_S must be a number of seconds, got {value!r}") from None
    if not ttl > 0:
        raise ValueError(f"LINAS_LEASE_TTL_S must be positive, got {value!r}")
    return ttl
