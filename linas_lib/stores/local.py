"""Local-directory store: the embedded default."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from linas_lib.api.store import MissingObjectError, StoreError
from linas_lib.stores import store_registry


_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _write_error(uri: str, key: str, exc: OSError, existed: bool) -> str:
    kept = "the previous object is unchanged" if existed else "nothing was written"
    if exc.errno in _FULL:
        why = "the disk is full or a file-size limit was reached"
    else:
        why = exc.strerror or type(exc).__name__
    return f"cannot write {uri}/{key}: {why} ({errno.errorcode.get(exc.errno, exc.errno)}); {kept}"


@store_registry.register("file")
class LocalStore:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise StoreError(f"key {key!r} escapes the store root")
        return path

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # temp file + rename in the same directory: readers never see a partial object,
            # and a failed write (full disk, file-size limit) leaves the previous one intact
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StoreError(_write_error(self.uri, key, exc, existed=path.is_file())) from exc
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise MissingObjectError(f"{self.uri}/{key} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        # Walk only the directory the prefix names (a cache scope of 100,000 entries beside
        # the one listed must not be walked), and in it only the names the prefix allows.
        head, _, tail = prefix.rpartition("/")
        base = self.root / head if head else self.root
        if ".." in Path(head).parts or not base.is_dir():
            return []
        keys = []
        for entry in os.scandir(base):
            if not entry.name.startswith(tail):
                continue
            if entry.is_dir(follow_symlinks=False):
                for folder, _, files in os.walk(entry.path):
                    keys += [os.path.join(folder, f) for f in files if os.path.isfile(os.path.join(folder, f))]
            elif entry.is_file():
                keys.append(entry.path)
        out = (Path(k).relative_to(self.root).as_posix() for k in keys)
        return sorted(k for k in out if not Path(k).name.startswith(".tmp-"))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
