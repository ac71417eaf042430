"""What the OFA plugins share: checkpoints, batch-norm recalibration, scoring, export.

No torch at import time: search-only stages build a plugin just for its space.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from linas_lib.api.search_space import SearchSpace
from linas_lib.supernets.checkpoints import CheckpointError, digest_matches, file_digest

log = logging.getLogger(__name__)

CHANNEL_DIVISIBLE = 8


class WeightsRequiredError(CheckpointError):
    """Accuracy asked of a super-network that has no trained weights."""


class DataRequiredError(RuntimeError):
    """Accuracy asked without labelled images to score on."""


def make_divisible(v: float, divisor: int = CHANNEL_DIVISIBLE, min_val: int | None = None) -> int:
    """OFA's (and TF MobileNet's) channel rounding: nearest multiple, never 10% below."""
    min_val = divisor if min_val is None else min_val
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


# ---- checkpoints ------------------------------------------------------------------------
UNTRAINED_FORMAT = "linas-ofa-untrained"


def untrained_marker(name: str, seed: int, cache_dir: str) -> Path:
    """The checkpoint `prepare(None, ...)` hands out: a small JSON file naming an untrained,
    seeded super-network (OFA's he_fout initialisation). A file rather than a made-up URI,
    so it travels wherever a checkpoint path does; every process rebuilds the same weights."""
    path = Path(cache_dir).expanduser() / "ofa" / f"{name}-untrained-seed{seed}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"format": UNTRAINED_FORMAT, "supernet": name, "seed": seed}))
        os.replace(tmp, path)
    return path


def untrained_digest(net_id: str, n_classes: int, seed: int) -> str:
    """`checkpoint_digest` of an untrained network: what determines its weights, stably."""
    return f"untrained:{net_id}:classes{n_classes}:seed{seed}"


def read_untrained_marker(path: Path) -> dict | None:
    if path.suffix != ".json" or path.stat().st_size > 4096:
        return None
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == UNTRAINED_FORMAT else None


def local_checkpoint(uri: str) -> Path:
    """A local file for a checkpoint path, file:// URI or store URI (s3://BUCKET/KEY?endpoint=...)."""
    from linas_lib.supernets import fetch_checkpoint

    try:
        path = Path(fetch_checkpoint(uri)).expanduser()
    except Exception as exc:
        raise CheckpointError(f"could not read checkpoint {uri!r}: {exc}") from None
    if not path.is_file():
        raise CheckpointError(f"checkpoint {uri!r} does not exist")
    return path


def read_state_dict(path: Path, uri: str, trust: bool) -> dict[str, Any]:
    """The tensors of a checkpoint: `{'state_dict': ...}` (OFA's release format) or a bare state dict."""
    import pickle

    import torch

    if not digest_matches(path):
        raise CheckpointError(f"checkpoint {uri!r} does not match its recorded sha256 digest")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] != b"PK" and magic[:1] != b"\x80":  # zip (torch >= 1.6) or a legacy pickle
        raise CheckpointError(f"checkpoint {uri!r} is not a torch checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"checkpoint {uri!r} holds objects other than tensors, so it was not unpickled "
            "(torch.load(weights_only=True) refused it); if you trust the file, set "
            "supernet.params.trust_checkpoint: true"
        ) from None
    except Exception as exc:
        raise CheckpointError(f"checkpoint {uri!r} is not a torch checkpoint: {exc}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {uri!r} is not a state dict (nor {{'state_dict': ...}})")
    return obj


def _candidates(key: str) -> Iterator[str]:
    """Spellings of a parameter name across `ofa` releases (cf. OFAMobileNetV3.load_state_dict)."""
    key = key.removeprefix("module.")  # saved from DataParallel
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    yield key
    for old, new in ((".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"), (".linear.linear.", ".linear."),
                     (".linear.", ".linear.linear."), ("bn.", "bn.bn."), ("conv.weight", "conv.conv.weight")):
        if old in key:
            yield key.replace(old, new)


def match_state_dict(net, state: dict[str, Any], uri: str, what: str) -> dict[str, Any]:
    """Rename `state`'s keys to `net`'s and check that every weight is there with its shape."""
    expected = net.state_dict()
    matched: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in state.items():
        name = next((c for c in _candidates(key) if c in expected), None)
        if name is None:
            unknown.append(key)
        else:
            matched[name] = value
    missing = [k for k in expected if k not in matched and not k.endswith("num_batches_tracked")]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weights missing (e.g. {', '.join(missing[:3])})")
        if unknown:
            parts.append(f"{len(unknown)} unknown keys (e.g. {', '.join(unknown[:3])})")
        raise CheckpointError(f"checkpoint {uri!r} is not a {what} checkpoint: {'; '.join(parts)}")
    for key, value in matched.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"checkpoint {uri!r} is not a {what} checkpoint: {key} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    import torch

    for key in expected:
        if key not in matched:  # num_batches_tracked, absent from old checkpoints
            matched[key] = torch.zeros((), dtype=torch.long)
    return matched


# ---- the plugin ---------------------------------------------------------------------------
class OFASupernet:
    """Base of the OFA plugins; subclasses give the space, the arch decoding and the network.

    Parameters (``supernet.params``):
      resolution: input side in pixels (OFA: 160-224; default 224).
      data: labelled images for accuracy: an ImageFolder-style directory (one sub-folder
        per class, sorted names = label order, e.g. the ImageNet validation set) or an
        .npz with ``x`` and ``y``. Required by `evaluate`/`evaluate_exported` only.
      calibration_data: images for batch-norm recalibration and INT8 calibration
        (OFA uses a training subset); defaults to ``data``.
      eval_images: score on this many images (fixed random subset) instead of all.
      calibration_images: images per batch-norm recalibration (OFA: 2000).
      batch_size: batch for scoring and recalibration.
      device: "cpu" or "cuda" for scoring and recalibration (exports are always on CPU).
      seed: seeds the untrained network and the synthetic inputs.
      synthetic_batches, synthetic_batch_size: random-input recalibration used when
        there are no weights or no calibration data (enough for latency).
      trust_checkpoint: allow checkpoints that hold more than tensors (full unpickling).
      n_classes: classifier outputs (1000 for the released OFA weights).
    """

    quality_metric = "accuracy"
    name = "ofa"
    ofa_net_id = ""
    default_resolution = 224

    def __init__(
        self,
        resolution: int | None = None,
        data: str | None = None,
        calibration_data: str | None = None,
        eval_images: int | None = None,
        calibration_images: int = 2000,
        batch_size: int = 100,
        device: str = "cpu",
        seed: int = 0,
        synthetic_batches: int = 2,
        synthetic_batch_size: int = 8,
        trust_checkpoint: bool = False,
        n_classes: int = 1000,
        progress: bool = True,
    ):
        self.resolution = int(resolution or self.default_resolution)
        if self.resolution < 32:
            raise ValueError(f"{self.name}: resolution must be at least 32, got {self.resolution}")
        self.data, self.calibration_data = data, calibration_data or data
        self.eval_images, self.calibration_images = eval_images, calibration_images
        self.batch_size, self.device, self.seed = batch_size, device, seed
        self.synthetic_batches, self.synthetic_batch_size = synthetic_batches, synthetic_batch_size
        self.trust_checkpoint, self.n_classes, self.progress = trust_checkpoint, n_classes, progress
        self.space = self.build_space()
        self._net = None
        self.trained = False
        self.checkpoint_digest: str | None = None
        self._datasets: dict[str, Any] = {}

    # ---- subclass hooks -------------------------------------------------------------------
    @classmethod
    def build_space(cls) -> SearchSpace:
        raise NotImplementedError

    def decode(self, encoding: np.ndarray):
        raise NotImplementedError

    def ofa_config(self, encoding: np.ndarray) -> dict[str, list]:
        """The keyword arguments of `ofa`'s `set_active_subnet` for this encoding."""
        raise NotImplementedError

    def _new_network(self):
        raise NotImplementedError

    @classmethod
    def search_space(cls, **_: Any) -> SearchSpace:
        return cls.build_space()

    # ---- weights ----------------------------------------------------------------------------
    @property
    def network(self):
        if self._net is None:
            raise CheckpointError(f"{self.name} has no network; call load(prepare(checkpoint, cache_dir)) first")
        return self._net

    def prepare(self, checkpoint: str | None, cache_dir: str) -> str:
        """The checkpoint as a local path; without one, a marker file of the untrained network."""
        if not checkpoint:
            log.warning("%s: no supernet.checkpoint; using an untrained network, good for latency, MACs and "
                        "parameters only (accuracy needs the released OFA weights %s)", self.name, self.ofa_net_id)
            return str(untrained_marker(self.name, self.seed, cache_dir))
        return str(local_checkpoint(checkpoint))

    def load(self, checkpoint: str) -> None:
        import torch

        path = local_checkpoint(checkpoint)
        marker = read_untrained_marker(path)
        if marker is not None:
            from linas_lib.supernets.ofa._nn import init_he_fout

            if marker.get("supernet") != self.name:
                raise CheckpointError(
                    f"{checkpoint!r} describes an untrained {marker.get('supernet')!r}, not {self.name}"
                )
            seed = int(marker.get("seed", self.seed))
            net = self._new_network()
            init_he_fout(net, seed)
            self._net, self.trained = net.eval(), False
            self.checkpoint_digest = untrained_digest(self.ofa_net_id, self.n_classes, seed)
            return
        state = read_state_dict(path, checkpoint, self.trust_checkpoint)
        net = self._new_network()
        matched = match_state_dict(net, state, checkpoint, f"{self.name} ({self.ofa_net_id})")
        with torch.no_grad():
            net.load_state_dict(matched, strict=True)
        self._net, self.trained, self.checkpoint_digest = net.eval(), True, file_digest(path)

    def _require_weights(self, what: str) -> None:
        self.network  # noqa: B018  (raises when nothing is loaded)
        if not self.trained:
            raise WeightsRequiredError(
                f"{self.name}: {what} needs the trained OFA weights ({self.ofa_net_id}), but this super-network "
                "is untrained (supernet.checkpoint is unset), which is only good for latency, MACs and "
                "parameters. Download the released checkpoint once (e.g. with the `ofa` package's "
                f"ofa_net('{self.ofa_net_id}'), saved with torch.save) and give its path or URI as "
                "supernet.checkpoint; nothing is downloaded at run time."
            )

    # ---- data -------------------------------------------------------------------------------
    def _dataset(self, source: str):
        if source not in self._datasets:
            from linas_lib.supernets.ofa.data import open_images

            self._datasets[source] = open_images(source, self.resolution, seed=self.seed)
        return self._datasets[source]

    def _eval_data(self, what: str):
        if not self.data:
            raise DataRequiredError(
                f"{self.name}: {what} needs labelled images; set supernet.params.data to an ImageFolder-style "
                "directory (e.g. the ImageNet validation set, one sub-folder per class) or an .npz with x and y"
            )
        return self._dataset(self.data)

    def _synthetic(self, batch_size: int, n_batches: int, offset: int = 0):
        import torch

        gen = torch.Generator().manual_seed(self.seed + 7919 * offset)
        shape = (batch_size, 3, self.resolution, self.resolution)
        return [torch.randn(shape, generator=gen) for _ in range(n_batches)]

    def _calibration_batches(self) -> list:
        if self.trained and self.calibration_data:
            data = self._dataset(self.calibration_data)
            return [x for x, _ in data.batches(self.batch_size, limit=self.calibration_images)]
        return self._synthetic(self.synthetic_batch_size, self.synthetic_batches)

    # ---- sub-networks -------------------------------------------------------------------
    def static(self, encoding: np.ndarray):
        """The extracted sub-network with the super-network's batch-norm statistics."""
        return self.network.extract(self.decode(self.space.canonicalize(encoding)[0]))

    def subnet(self, encoding: np.ndarray, device: str = "cpu"):
        """The static sub-network with recalibrated batch norm, in eval mode."""
        from linas_lib.supernets.ofa._nn import recalibrate_bn

        module = self.static(encoding).to(device)
        recalibrate_bn(module, (x.to(device) for x in self._calibration_batches()))
        return module

    def complexity(self, encodings: np.ndarray) -> list[dict[str, float]]:
        """MACs (per image, at `resolution`) and parameters; needs no trained weights."""
        import torch

        from linas_lib.supernets.elastic_cnn import count_macs_params

        example = torch.zeros(1, 3, self.resolution, self.resolution)
        out = []
        for encoding in self.space.canonicalize(encodings):
            macs, params = count_macs_params(self.static(encoding).eval(), example)
            out.append({"macs": macs, "params": params})
        return out

    def evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        """Top-1 accuracy on `data` after batch-norm recalibration (OFA's protocol), MACs, parameters."""
        import torch

        self._require_weights("accuracy")
        data = self._eval_data("accuracy")
        from tqdm.auto import tqdm

        results = []
        n_images = min(len(data), self.eval_images or len(data))
        for encoding, complexity in zip(self.space.canonicalize(encodings), self.complexity(encodings)):
            module = self.subnet(encoding, self.device)
            correct = total = 0
            bar = tqdm(total=n_images, desc=f"{self.name} accuracy", unit="img", leave=False, disable=not self.progress)
            with torch.no_grad():
                for x, y in data.batches(self.batch_size, limit=self.eval_images):
                    pred = module(x.to(self.device)).argmax(1).cpu().numpy()
                    correct += int((pred == y).sum())
                    total += len(y)
                    bar.update(len(y))
            bar.close()
            results.append({"accuracy": correct / total, **complexity})
        return results

    def export_module(self, encoding: np.ndarray, batch_size: int):
        import torch

        module = self.subnet(encoding).cpu().eval()
        gen = torch.Generator().manual_seed(self.seed)
        return module, (torch.randn(batch_size, 3, self.resolution, self.resolution, generator=gen),)

    def calibration_inputs(self, batch_size: int, n_batches: int) -> list[tuple[Any, ...]]:
        """Images from `calibration_data`; random inputs when there is none (latency-only use)."""
        if self.calibration_data:
            data = self._dataset(self.calibration_data)
            xs = [x for x, _ in data.batches(batch_size, limit=batch_size * n_batches)]
            return [(x,) for x in xs if len(x) == batch_size]
        return [(x,) for x in self._synthetic(batch_size, n_batches, offset=1)]

    def evaluate_exported(self, encoding: np.ndarray, run: Callable[..., np.ndarray]) -> dict[str, float]:
        """Top-1 accuracy when `run(images) -> logits` is the forward pass (e.g. an INT8 model)."""
        self._require_weights("accuracy")
        data = self._eval_data("accuracy")
        correct = total = 0
        for x, y in data.batches(self.batch_size, limit=self.eval_images):
            correct += int((np.asarray(run(x.numpy())).argmax(1) == y).sum())
            total += len(y)
        return {"accuracy": correct / total}
