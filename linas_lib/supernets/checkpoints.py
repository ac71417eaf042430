"""Checkpoints of the built-in super-networks: digests, the train-once cache, torch threads.

A checkpoint `NAME-SIGNATURE.pt` sits in the cache directory next to a sidecar
`NAME-SIGNATURE.pt.sha256` holding the file's sha256. SIGNATURE is a digest of the
training recipe (every parameter that changes the weights, plus the architecture), so a
different recipe trains anew and the same recipe reuses the cached file. A checkpoint is
written to a temporary file and renamed into place, so concurrent steps never read half
a file. `load` refuses a file whose sidecar disagrees with it; a user's own checkpoint
may come without a sidecar.

No torch at import time: search-only stages build a plugin just for its space.
"""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from linas_lib.messages import warn_if_busy


class CheckpointError(RuntimeError):
    """A checkpoint is missing, tampered with, or not this plugin's."""


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_suffix(path.suffix + ".sha256")


def digest_matches(path: str | os.PathLike[str], require_sidecar: bool = False) -> bool:
    """True when the recorded digest matches; a user's checkpoint may come without one."""
    recorded = sidecar(path)
    if not recorded.is_file():
        return not require_sidecar
    return recorded.read_text().strip() == file_digest(path)


def params_digest(recipe: dict[str, Any]) -> str:
    """A short, stable digest of a JSON-able training recipe (the cache key)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> str:
    """torch.save `payload` atomically (temporary file, then rename) and write its digest sidecar.

    Serialized in memory first: torch.save names the archive inside the file after the
    file, so saving straight to a temporary name made equal weights differ in digest
    from one save to the next, and no two clones could share a cache keyed on it."""
    import io

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(buffer.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    sidecar(path).write_text(file_digest(path))
    return str(path)


def existing_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The path of a checkpoint to load: it must exist and agree with its digest sidecar."""
    local = Path(path)
    if not local.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not digest_matches(local):
        raise CheckpointError(f"checkpoint {str(path)!r} does not match its recorded sha256 digest")
    return local


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` torch CPU threads (None: unchanged), restoring the previous count."""
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def eval_device() -> str:
    """CUDA when a GPU is present, the CPU otherwise: the same code either way."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TrainedOnce:
    """Base of the built-in plugins that train their own weights once and cache them.

    A subclass sets `name` (the registry name, used for file names), `kind` (how errors
    name its checkpoints, e.g. "an ncf checkpoint"), `recipe_keys` (the attributes that
    change the trained weights) and implements:

      architecture() -> JSON-able description of the super-network (part of the signature)
      fit() -> (network, extra payload): train from scratch; runs with `threads` torch threads
      build(payload) -> an untrained network to load `payload["state_dict"]` into

    `load` sets `_net` (on `eval_device()` unless `keep_on_cpu`) and `checkpoint_digest`.
    """

    name: str = ""
    kind: str = ""
    recipe_keys: tuple[str, ...] = ()
    keep_on_cpu = False
    threads: int | None = None
    checkpoint_digest: str | None = None
    _net: Any = None

    def architecture(self) -> Any:
        raise NotImplementedError

    def fit(self) -> tuple[Any, dict[str, Any]]:
        raise NotImplementedError

    def build(self, payload: dict[str, Any]) -> Any:
        raise NotImplementedError

    def training_signature(self) -> str:
        recipe = {k: getattr(self, k) for k in self.recipe_keys}
        recipe["arch"] = self.architecture()
        return params_digest(recipe)

    def prepare(self, checkpoint: str | None, cache_dir: str) -> str:
        """The given checkpoint (it must exist), or the cached one, trained on first use."""
        if checkpoint:
            if not Path(checkpoint).is_file():
                raise CheckpointError(f"supernet.checkpoint {checkpoint!r} does not exist")
            return checkpoint
        path = Path(cache_dir).expanduser() / f"{self.name}-{self.training_signature()}.pt"
        if not (path.is_file() and digest_matches(path, require_sidecar=True)):
            self.train(path)
        return str(path)

    def train(self, path: str | os.PathLike[str]) -> str:
        if getattr(self, "progress", False):  # said before minutes of training, not after
            warn_if_busy()
        with torch_threads(self.threads):
            net, extra = self.fit()
        state = {k: v.cpu() for k, v in net.state_dict().items()}
        payload = {"state_dict": state, "signature": self.training_signature(), "supernet": self.name, **extra}
        return save_checkpoint(path, payload)

    def load(self, checkpoint: str) -> None:
        import torch

        path = existing_checkpoint(checkpoint)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            net = self.build(payload)
            net.load_state_dict(payload["state_dict"])
        except Exception as exc:
            raise CheckpointError(f"checkpoint {checkpoint!r} is not {self.kind}: {exc}") from None
        self._net = (net if self.keep_on_cpu else net.to(eval_device())).eval()
        self.checkpoint_digest = file_digest(path)

    def _require_net(self):
        if self._net is None:
            raise CheckpointError(f"{self.name} has no weights loaded; call load(checkpoint) first")
        return self._net
