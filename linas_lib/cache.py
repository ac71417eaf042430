"""The evaluation cache: every real measurement, kept across runs, so none is paid for twice.

An entry is keyed by whose it is and what determines the measured value:

    <tenant>/<namespace>/<scope>/<subnet_id>.json

- tenant: `cache.tenant`, or by default a digest of the location that holds the run
  (`s3://bucket/team-a/runs` for a run in `.../runs/r1`), so teams sharing a bucket or a
  configured `cache.uri` read only their own measurements unless they name one tenant;
- namespace: the super-network (name, params, checkpoint digest);
- scope: the objective group, `quality-<metric>` or `complexity`, or for latency
  `latency-<hash of the target fingerprint>` (device model, backend and its version,
  precision, batch, threads, node labels);
- subnet_id: the canonical encoding's key.

Each entry is its own immutable object written whole (temp file + rename on disk, a
single PUT on S3), so any number of pods can write at once with no read-modify-write.
Entries from before a scope's `stale-before` mark (set when latency drift is
detected) are ignored. A corrupt or unreadable entry is a miss, never an error: the
cache only ever saves work.

The cache is also where each measurement becomes durable, so an entry that cannot be
written (the store is down) goes to a local journal (`$LINAS_JOURNAL`, default
`$LINAS_CACHE/journal`) and the search stops (objectives/recording.py): the next lookup,
on resume, writes the journal to the store first, and nothing is measured twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

from linas_lib.api.store import Store, StoreError, get_json, put_json
from linas_lib.stores import open_store

STALE_MARK = "_stale_before.json"


def digest(obj: Any, length: int = 16) -> str:
    """A stable short hash of JSON-able data."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def quality_scope(metric: str | None) -> str:
    return f"quality-{metric}" if metric else "complexity"


def latency_scope(fingerprint: dict) -> str:
    return f"latency-{digest(fingerprint)}"


class EvaluationCache:
    def __init__(self, store: Store | str, namespace: str):
        self.store = open_store(store) if isinstance(store, str) else store
        self.namespace = namespace

    @property
    def uri(self) -> str:
        return f"{self.store.uri}/{self.namespace}"

    def _key(self, scope: str, subnet_id: str) -> str:
        return f"{self.namespace}/{scope}/{subnet_id}.json"

    def lookup(self, scope: str, subnet_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The usable entries among `subnet_ids`: one listing, then one read per hit."""
        self.flush_journal()  # measurements taken while the store was down count as taken
        prefix = f"{self.namespace}/{scope}/"
        present = set(self.store.list(prefix))
        stale_before = self._stale_before(scope, present)
        found = {}
        for subnet_id in subnet_ids:
            key = self._key(scope, subnet_id)
            if key not in present:
                continue
            try:
                entry = get_json(self.store, key)
            except StoreError:
                continue  # corrupt or vanished: measure again, the new entry replaces it
            if isinstance(entry, dict) and entry.get("measured_at", 0) >= stale_before and "values" in entry:
                found[subnet_id] = entry
        return found

    def record(self, scope: str, subnet_id: str, entry: dict[str, Any]) -> None:
        put_json(self.store, self._key(scope, subnet_id), self._entry(entry))

    @staticmethod
    def _entry(entry: dict[str, Any]) -> dict[str, Any]:
        return {"measured_at": time.time(), **entry}

    # ---- the local journal: entries measured while the store was down ---------------------
    def journal_path(self) -> Path:
        folder = os.environ.get("LINAS_JOURNAL") or os.path.join(
            os.environ.get("LINAS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "linas")), "journal")
        return Path(folder) / f"{digest([self.store.uri, self.namespace])}.jsonl"

    def journal(self, scope: str, subnet_id: str, entry: dict[str, Any]) -> Path:
        """Append an entry to the local journal (one line, one O_APPEND write); OSError if impossible."""
        path = self.journal_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": self._key(scope, subnet_id), "entry": self._entry(entry)}, default=str) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def flush_journal(self) -> int:
        """Write journaled entries to the store; StoreError (the rest kept) while it is still down."""
        path = self.journal_path()
        if not path.parent.is_dir():
            return 0
        # A flusher claims the journal by renaming it, so appends during the flush start a new one;
        # claims left by a flusher that was killed are taken over (writing an entry twice is harmless).
        claimed = path.with_name(f"{path.stem}.{os.getpid()}-{time.time_ns()}.flushing")
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            pass
        written = 0
        for part in sorted(path.parent.glob(f"{path.stem}.*.flushing")):
            try:
                lines = part.read_text().splitlines()
            except FileNotFoundError:  # another flusher finished it
                continue
            for i, line in enumerate(lines):
                try:
                    item = json.loads(line)
                    key, entry = item["key"], item["entry"]
                except (json.JSONDecodeError, KeyError, TypeError):  # torn by a kill: taken again
                    continue
                try:
                    put_json(self.store, key, entry)
                except StoreError:
                    rest = "".join(f"{x}\n" for x in lines[i:])
                    with open(path, "a") as fh:
                        fh.write(rest)
                    part.unlink(missing_ok=True)
                    raise
                written += 1
            part.unlink(missing_ok=True)
        return written

    def mark_stale(self, scope: str, reason: str, before: float | None = None) -> None:
        """Every entry of `scope` measured before `before` (default: now) is ignored from here on."""
        mark = {"before": time.time() if before is None else before, "reason": reason}
        put_json(self.store, f"{self.namespace}/{scope}/{STALE_MARK}", mark)

    def _stale_before(self, scope: str, present: set[str]) -> float:
        key = f"{self.namespace}/{scope}/{STALE_MARK}"
        if key not in present:
            return 0.0
        try:
            return float(get_json(self.store, key)["before"])
        except (StoreError, KeyError, TypeError, ValueError):
            return float("inf")  # an unreadable mark: trust nothing in this scope

    def entries(self, scope: str) -> int:
        return sum(1 for k in self.store.list(f"{self.namespace}/{scope}/") if k.endswith(".json")
                   and not k.endswith(STALE_MARK))


def supernet_namespace(name: str, params: dict, checkpoint_digest: str) -> str:
    return f"{name}/{digest({'params': params, 'checkpoint': checkpoint_digest})}"


def checkpoint_digest(supernet, checkpoint: str | None) -> str:
    """The plugin's own digest when it offers one, else the checkpoint file's, else 'none'."""
    own = getattr(supernet, "checkpoint_digest", None)
    if own:
        return str(own)
    if checkpoint:
        import os

        if os.path.isfile(checkpoint):
            h = hashlib.sha256()
            with open(checkpoint, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()
        return f"path:{checkpoint}"
    return "none"


CACHE_DIR_NAME = "evaluation-cache"


def sibling_uri(run_uri: str, name: str) -> str:
    """`name` beside the run location: runs/a -> runs/<name>; s3://b/x/a?q -> s3://b/x/<name>?q."""
    import os
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(run_uri)
    if len(parsed.scheme) <= 1:  # a local path (or C:\)
        return os.path.join(os.path.dirname(os.path.abspath(run_uri)), name)
    if parsed.scheme == "file":
        return os.path.join(os.path.dirname(os.path.abspath(parsed.path)), name)
    parent = parsed.path.rstrip("/").rpartition("/")[0]
    return urlunparse(parsed._replace(path=f"{parent}/{name}"))


def cache_uri(config, run_uri: str) -> str:
    """The configured cache, or the shared one beside the run; a disabled cache is private
    to the run (it still makes resume and retried pipeline tasks free)."""
    if not config.cache.enabled:
        return _child(run_uri, CACHE_DIR_NAME)
    return config.cache.uri or sibling_uri(run_uri, CACHE_DIR_NAME)


def _child(uri: str, name: str) -> str:
    import os
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(uri)
    if len(parsed.scheme) <= 1:
        return os.path.join(uri, name)
    return urlunparse(parsed._replace(path=parsed.path.rstrip("/") + "/" + name))


def default_tenant(run_uri: str) -> str:
    """A tenant for the runs held by the same location as `run_uri` (its parent directory or
    prefix; the S3 endpoint and query are how it is reached, not whose it is)."""
    from urllib.parse import urlparse

    parsed = urlparse(run_uri)
    if len(parsed.scheme) <= 1 or parsed.scheme == "file":
        holder = os.path.dirname(os.path.abspath(parsed.path if parsed.scheme == "file" else run_uri))
    else:
        holder = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/').rpartition('/')[0]}"
    return f"prefix-{digest(holder, 12)}"


def cache_tenant(config, run_uri: str) -> str:
    return config.cache.tenant or default_tenant(run_uri)


def open_cache(config, run_uri: str, supernet, checkpoint: str | None) -> EvaluationCache:
    namespace = supernet_namespace(config.supernet.name, dict(config.supernet.params),
                                   checkpoint_digest(supernet, checkpoint))
    return EvaluationCache(cache_uri(config, run_uri), f"{cache_tenant(config, run_uri)}/{namespace}")
