"""Writing a measurement to the evaluation cache without ever losing it."""
from __future__ import annotations

import logging

log = logging.getLogger("linas.cache")


def record_safely(cache, scope: str, key: str, entry: dict) -> bool:
    """A cache that cannot be written (store down, disk full) costs reuse, not the
    measurement: the row still reaches the run's measurement table."""
    try:
        cache.record(scope, key, entry)
        return True
    except Exception as exc:  # any store failure: warn and carry on
        log.warning("could not write %s to the evaluation cache %s: %s", key, cache.uri, exc)
        return False
