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

Look-ups are batched through an index of packs (`<scope>/_index/*.parquet`): each
measured batch, once its entries are written, also writes one immutable pack holding a
copy of them (signed and checked like any object), so a look-up is a listing of the
scope's own `_index/` and `_pending/` folders plus one read per pack, not a listing of
every entry and a read per hit. The entries stay the source of truth. A batch announces itself with a
`_pending/` marker before its first entry; a look-up that sees one (a writer killed
between its entries and its pack) or a scope without `_index/origin.json` (a cache from
before packs) lists the scope as before, reads what it needs one by one, copies the
loose entries it found into a pack (up to REPAIR_MAX per look-up, so an old cache
migrates gradually) and, once nothing is left loose, writes the origin mark and clears
the markers. More than MAX_PACKS packs are merged (size-tiered) by a later look-up.

The cache is also where each measurement becomes durable, so an entry that cannot be
written (the store is down) goes to a local journal (`$LINAS_JOURNAL`, default
`$LINAS_CACHE/journal`) and the search stops (objectives/recording.py): the next lookup,
on resume, writes the journal to the store first, and nothing is measured twice.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

from linas_lib.api.store import MissingObjectError, Store, StoreError, get_json, get_table, put_json, put_table
from linas_lib.stores import open_store

log = logging.getLogger("linas.cache")
STALE_MARK = "_stale_before.json"
INDEX = "_index/"              # <scope>/_index/<time>-<digest>.parquet: packs, copies of many entries
ORIGIN = INDEX + "origin.json"  # every entry of the scope is in a pack, or in a batch still pending
PENDING = "_pending/"          # <scope>/_pending/<time>-<pid>-<random>: a batch being written
MAX_PACKS = 8
REPAIR_MAX = 2000              # loose entries a look-up copies into a pack
PACK_COLUMNS = ("subnet_id", "measured_at", "entry")


def digest(obj: Any, length: int = 16) -> str:
    """A stable short hash of JSON-able data."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def quality_scope(metric: str | None) -> str:
    return f"quality-{metric}" if metric else "complexity"


def latency_scope(fingerprint: dict) -> str:
    return f"latency-{digest(fingerprint)}"


def _usable(entry: Any, stale_before: float) -> bool:
    return isinstance(entry, dict) and entry.get("measured_at", 0) >= stale_before and "values" in entry


class EvaluationCache:
    def __init__(self, store: Store | str, namespace: str):
        self.store = open_store(store) if isinstance(store, str) else store
        self.namespace = namespace
        self._batches: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {}  # scope -> (marker, entries)

    @property
    def uri(self) -> str:
        return f"{self.store.uri}/{self.namespace}"

    def _key(self, scope: str, subnet_id: str) -> str:
        return f"{self.namespace}/{scope}/{subnet_id}.json"

    def lookup(self, scope: str, subnet_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The usable entries among `subnet_ids`: the listings of the scope's index folders and
        one read per pack; the scope's full listing and a read per loose hit only where entries may
        lie outside the packs (see the module docstring)."""
        self.flush_journal()  # measurements taken while the store was down count as taken
        wanted = list(dict.fromkeys(subnet_ids))
        prefix = f"{self.namespace}/{scope}/"
        packed, damaged = None, []
        for _ in range(2):
            meta = self._meta(prefix)
            packs = sorted(k for k in meta if k.startswith(prefix + INDEX) and k.endswith(".parquet"))
            try:
                packed, damaged = self._read_packs(packs)
                break
            except MissingObjectError:  # merged away since the listing: list again
                packed = None
        pending = sorted(k for k in meta if k.startswith(prefix + PENDING) and not k.endswith(".sha256"))
        stale_before = self._stale_before(scope, meta)
        found = {}
        index = {}
        if packed is not None and len(packed):
            hit = packed[packed["subnet_id"].isin(wanted)]
            index = dict(zip(hit["subnet_id"], hit["entry"]))
        for subnet_id, text in index.items():
            try:
                entry = json.loads(text)
            except (json.JSONDecodeError, TypeError):
                continue
            if _usable(entry, stale_before):
                found[subnet_id] = entry
        if packed is None or damaged or pending or prefix + ORIGIN not in meta:
            covered = set(packed["subnet_id"].tolist()) if packed is not None and len(packed) else set()
            found.update(self._loose(scope, wanted, covered, pending + damaged, stale_before))
        elif len(packs) > MAX_PACKS:
            self._merge(packs, packed)
        return found

    def _meta(self, prefix: str) -> set[str]:
        """The scope's own objects: its packs, its pending batches and its stale mark. Listed
        folder by folder (a local listing of `_` would scan every entry of the scope)."""
        meta = set(self.store.list(prefix + INDEX)) | set(self.store.list(prefix + PENDING))
        if self.store.exists(prefix + STALE_MARK):
            meta.add(prefix + STALE_MARK)
        return meta

    def _read_packs(self, packs: list[str]):
        """(every pack's rows, the newest copy of each entry; the damaged packs). A damaged pack
        is skipped: its entries are still there to be found one by one."""
        import pandas as pd

        frames, damaged = [], []
        for key in packs:
            try:
                frames.append(get_table(self.store, key).assign(_pack=key))
            except MissingObjectError:
                raise
            except StoreError as exc:
                log.warning("evaluation cache: %s; its entries are read one by one", exc)
                damaged.append(key)
        if not frames:
            return pd.DataFrame({c: [] for c in (*PACK_COLUMNS, "_pack")}), damaged
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(frames) > 1:
            rows = rows.sort_values("measured_at", kind="stable").drop_duplicates("subnet_id", keep="last")
        return rows, damaged

    def _loose(self, scope: str, wanted: list[str], covered: set[str], settled: list[str],
               stale_before: float) -> dict[str, dict[str, Any]]:
        """Entries outside the packs, as before packs existed (one listing, one read per hit),
        copied into a pack so the next look-up needs no full listing; once none is left, the
        `settled` objects (pending markers, damaged packs) are deleted."""
        prefix = f"{self.namespace}/{scope}/"
        loose = {k[len(prefix):-5] for k in self.store.list(prefix)
                 if k.endswith(".json") and "/" not in k[len(prefix):] and not k[len(prefix):].startswith("_")}
        loose -= covered
        want = set(wanted)
        found, copied = {}, {}
        order = [s for s in wanted if s in loose] + sorted(loose - want)
        for subnet_id in order:
            if subnet_id not in want and len(copied) >= REPAIR_MAX:
                break
            try:
                entry = get_json(self.store, self._key(scope, subnet_id))
            except StoreError:
                continue  # corrupt or vanished: measure again, the new entry replaces it
            if not isinstance(entry, dict):
                continue
            copied[subnet_id] = entry
            if subnet_id in want and _usable(entry, stale_before):
                found[subnet_id] = entry
        try:
            if copied:
                self._write_pack(scope, copied)
            if len(copied) == len(loose):  # nothing is left outside the packs
                if prefix + ORIGIN not in set(self.store.list(prefix + ORIGIN)):
                    put_json(self.store, prefix + ORIGIN, {"since": time.time()})
                for key in settled:  # what those batches wrote so far is packed; a live one packs the rest
                    self.store.delete(key)
                    if INDEX in key:
                        self.store.delete(key + ".sha256")
        except (StoreError, OSError) as exc:  # the index only saves work
            log.warning("evaluation cache: could not update the index of %s: %s", scope, exc)
        return found

    def _write_pack(self, scope: str, entries: dict[str, dict[str, Any]]) -> str:
        import pandas as pd

        frame = pd.DataFrame({
            "subnet_id": pd.Series(list(entries), dtype="string"),
            "measured_at": pd.Series([float(e.get("measured_at", 0)) for e in entries.values()], dtype="float64"),
            "entry": pd.Series([json.dumps(e, sort_keys=True, default=str) for e in entries.values()], dtype="string"),
        })
        return self._put_pack(scope, frame)

    def _put_pack(self, scope: str, frame) -> str:
        key = f"{self.namespace}/{scope}/{INDEX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        put_table(self.store, key, frame[list(PACK_COLUMNS)])
        return key

    def _merge(self, packs: list[str], rows) -> None:
        """Size-tiered: the smaller packs into one, the largest kept, unless they outweigh it."""
        try:
            sizes = rows["_pack"].value_counts().reindex(packs, fill_value=0)
            small = list(sizes.sort_values(kind="stable").index[:-1])
            if sizes[small].sum() > sizes.max() or len(small) < 2:
                small = packs
            scope = packs[0][len(self.namespace) + 1:].split("/", 1)[0]
            self._put_pack(scope, rows[rows["_pack"].isin(small)])
            for key in small:  # after the merged pack exists: a reader lists again if one vanishes
                self.store.delete(key)
                self.store.delete(key + ".sha256")
        except (StoreError, OSError) as exc:
            log.warning("evaluation cache: could not merge index packs: %s", exc)

    def record(self, scope: str, subnet_id: str, entry: dict[str, Any]) -> None:
        """Write the entry (the source of truth); it joins the scope's open batch, which
        `close_batch` copies into one pack. The batch's marker is written before its first entry."""
        self._record(scope, subnet_id, self._entry(entry))

    def _record(self, scope: str, subnet_id: str, stored: dict[str, Any]) -> None:
        if scope not in self._batches:
            marker = f"{self.namespace}/{scope}/{PENDING}{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.store.put_bytes(marker, b"")
            self._batches[scope] = (marker, {})
        put_json(self.store, self._key(scope, subnet_id), stored)
        self._batches[scope][1][subnet_id] = stored

    def close_batch(self, scope: str) -> None:
        """One pack of the entries recorded in `scope` since the last call, then the marker
        goes. On a store failure the marker stays: a later look-up finds the entries."""
        marker, entries = self._batches.pop(scope, (None, {}))
        if marker is None:
            return
        try:
            if entries:
                self._write_pack(scope, entries)
            self.store.delete(marker)
        except (StoreError, OSError) as exc:
            log.warning("evaluation cache: %s: could not write the batch's index pack (%s); a later "
                        "look-up indexes its entries", scope, exc)

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
        opened = set(self._batches)
        try:
            return self._flush_parts(path)
        finally:  # the flushed entries are indexed like any batch
            for scope in set(self._batches) - opened:
                self.close_batch(scope)

    def _flush_parts(self, path: Path) -> int:
        written, prefix = 0, f"{self.namespace}/"
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
                scope, _, name = key[len(prefix):].partition("/") if key.startswith(prefix) else ("", "", "")
                try:
                    if scope and name.endswith(".json") and "/" not in name:
                        self._record(scope, name[:-5], entry)
                    else:  # not an entry of this namespace (a journal from elsewhere): as it was
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
        """`present`: keys listed under the scope (its `_` objects at least)."""
        key = f"{self.namespace}/{scope}/{STALE_MARK}"
        if key not in present:
            return 0.0
        try:
            return float(get_json(self.store, key)["before"])
        except (StoreError, KeyError, TypeError, ValueError):
            return float("inf")  # an unreadable mark: trust nothing in this scope

    def entries(self, scope: str) -> int:
        prefix = f"{self.namespace}/{scope}/"
        return sum(1 for k in self.store.list(prefix) if k.endswith(".json") and "/" not in k[len(prefix):]
                   and not k[len(prefix):].startswith("_"))


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
