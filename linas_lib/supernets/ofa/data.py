"""Labelled images for the OFA plugins, preprocessed as OFA evaluates ImageNet.

Two sources:
  * an ImageFolder-style directory: one sub-folder per class, class index = position of
    the folder name in sorted order (torchvision's ImageFolder, which OFA's ImageNet
    loader uses); images are resized so the short side is ceil(resolution / 0.875)
    (bilinear), centre-cropped to resolution x resolution and normalised with the
    ImageNet mean and std;
  * an .npz file with ``x`` (N,H,W,3 or N,3,H,W uint8 pixels, or N,3,H,W float32 already
    normalised) and ``y`` (N integer labels); square images of another size are resized.

Decoded uint8 crops are kept in memory when they fit in `cache_mb`.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


def _normalize(pixels: np.ndarray):
    """uint8 N,H,W,3 -> normalised float32 N,3,H,W tensor."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def _subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def load_image(path: str | os.PathLike[str], resolution: int, crop_ratio: float = 0.875) -> np.ndarray:
    """Resize(ceil(resolution / crop_ratio)) + CenterCrop(resolution), as torchvision does it on PIL images."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        size = int(math.ceil(resolution / crop_ratio))
        w, h = img.size
        if w <= h:
            ow, oh = size, int(size * h / w)
        else:
            ow, oh = int(size * w / h), size
        img = img.resize((ow, oh), Image.BILINEAR)
        top, left = int(round((oh - resolution) / 2.0)), int(round((ow - resolution) / 2.0))
        img = img.crop((left, top, left + resolution, top + resolution))
        return np.asarray(img, dtype=np.uint8)


class FolderImages:
    def __init__(self, root: Path, resolution: int, seed: int = 0, cache_mb: int = 2048):
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        if not classes:
            raise ValueError(f"image folder {str(root)!r} has no class sub-folders")
        self.classes = classes
        self.files: list[tuple[str, int]] = [
            (str(p), label)
            for label, name in enumerate(classes)
            for p in sorted((root / name).rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.files:
            raise ValueError(f"image folder {str(root)!r} has no images")
        self.resolution, self.seed = resolution, seed
        self._cache: dict[int, np.ndarray] = {}
        self._cache_limit = cache_mb * 2**20 // (resolution * resolution * 3)

    def __len__(self) -> int:
        return len(self.files)

    def _pixels(self, indices: np.ndarray, pool: ThreadPoolExecutor) -> np.ndarray:
        todo = [int(i) for i in indices if int(i) not in self._cache]
        decoded = dict(zip(todo, pool.map(lambda i: load_image(self.files[i][0], self.resolution), todo)))
        out = np.stack([self._cache.get(int(i), decoded.get(int(i))) for i in indices])
        for i, px in decoded.items():
            if len(self._cache) < self._cache_limit:
                self._cache[i] = px
        return out

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[tuple[object, np.ndarray]]:
        order = _subset(len(self.files), limit, self.seed)
        labels = np.array([label for _, label in self.files], dtype=np.int64)
        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                yield _normalize(self._pixels(idx, pool)), labels[idx]


class ArrayImages:
    def __init__(self, path: Path, resolution: int, seed: int = 0):
        with np.load(path) as npz:
            keys = set(npz.files)
            xk = "x" if "x" in keys else "images" if "images" in keys else None
            yk = "y" if "y" in keys else "labels" if "labels" in keys else None
            if xk is None or yk is None:
                raise ValueError(f"{str(path)!r}: an image .npz needs arrays 'x' and 'y' (got {sorted(keys)})")
            self.x, self.y = npz[xk], npz[yk].astype(np.int64)
        if self.x.ndim != 4 or len(self.x) != len(self.y):
            raise ValueError(f"{str(path)!r}: x must be N images (N,H,W,3 or N,3,H,W) and y N labels")
        self.resolution, self.seed = resolution, seed

    def __len__(self) -> int:
        return len(self.y)

    def _tensor(self, x: np.ndarray):
        import torch
        import torch.nn.functional as F

        if x.dtype == np.uint8:
            t = _normalize(x if x.shape[-1] == 3 else x.transpose(0, 2, 3, 1))
        else:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if t.shape[-2:] != (self.resolution, self.resolution):
            t = F.interpolate(t, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False,
                              antialias=True)
        return t

    def batches(self, batch_size: int, limit: int | None = None):
        order = _subset(len(self.y), limit, self.seed)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield self._tensor(self.x[idx]), self.y[idx]


def open_images(source: str, resolution: int, seed: int = 0):
    parsed = urlparse(source)
    path = Path(parsed.path if parsed.scheme == "file" else source).expanduser()
    if path.is_dir():
        return FolderImages(path, resolution, seed)
    if path.is_file() and path.suffix == ".npz":
        return ArrayImages(path, resolution, seed)
    raise FileNotFoundError(f"image data {source!r} is neither a class-per-folder directory nor an .npz file")
