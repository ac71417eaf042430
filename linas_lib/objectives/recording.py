"""Recording a measurement durably, or stopping: a measurement the store cannot keep is
not followed by another one (so a store outage costs a pause, not repeated measurements)."""
from __future__ import annotations

import logging

from linas_lib.api.store import StoreError

log = logging.getLogger("linas.cache")


class NotRecordedError(StoreError):
    """A measurement could not be written to the evaluation cache; the search stops here."""


def record_durably(cache, scope: str, key: str, entry: dict) -> None:
    """Write the entry to the cache; if the store fails, keep it in the local journal and raise
    NotRecordedError, so the caller measures nothing more until the store is back (resume)."""
    try:
        cache.record(scope, key, entry)
        return
    except Exception as exc:  # any store failure (S3 down, disk full): stop measuring
        reason = exc
    stop = "the search stopped so that nothing more is measured without being recorded; resume it once the store is back"
    try:
        journal = cache.journal(scope, key, entry)
    except OSError as exc:
        raise NotRecordedError(
            f"could not record the measurement of {key} in the evaluation cache {cache.uri} ({reason}), nor in a "
            f"local journal ({exc.strerror or exc}): it will be measured again; {stop}") from None
    log.warning("store down: %s kept in the local journal %s", key, journal)
    raise NotRecordedError(
        f"could not record the measurement of {key} in the evaluation cache {cache.uri} ({reason}); it is kept in "
        f"the local journal {journal} and written to the cache on resume; {stop}") from None
