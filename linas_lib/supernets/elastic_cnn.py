"""The built-in image super-network: an OFA-style elastic MBConv CNN on Animal-MNIST.

Per stage the depth is elastic; per block the depthwise kernel (centre crop of a
7x7 kernel, as in OFA) and the expansion ratio (leading channel slice) are elastic.
Training uses the sandwich rule with in-place distillation: every step trains the
largest network on the labels and the smallest plus random ones on the largest
network's soft predictions. Every sub-network is extracted into a static module
and gets its batch-norm statistics recalibrated before it is scored or exported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from linas_lib.api.search_space import ActiveWhen, SearchSpace, Variable
from linas_lib.supernets import supernet_registry
from linas_lib.supernets.checkpoints import CheckpointError, TrainedOnce, eval_device, file_digest  # noqa: F401
from linas_lib.supernets.data_parallel import average_gradients, run_data_parallel

DEPTHS = (2, 3, 4)
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
# (width, stride of the first block); the stem halves 28x28 to 14x14 first, which
# keeps a sandwich-rule training step cheap enough for a 2-core CPU.
STAGES = ((16, 2), (24, 1), (32, 1))
STEM_WIDTH, HEAD_WIDTH = 16, 96


@dataclass(frozen=True)
class Arch:
    depths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[int, ...], ...]


def build_space() -> SearchSpace:
    variables: list[Variable] = []
    for s in range(len(STAGES)):
        variables.append(Variable(f"s{s}.depth", DEPTHS))
        for b in range(max(DEPTHS)):
            cond = ActiveWhen(f"s{s}.depth", b + 1) if b + 1 > min(DEPTHS) else None
            variables.append(Variable(f"s{s}.b{b}.kernel", KERNELS, cond))
            variables.append(Variable(f"s{s}.b{b}.expand", EXPANDS, cond))
    return SearchSpace(variables, name="elastic_cnn")


def decode(space: SearchSpace, encoding: np.ndarray) -> Arch:
    values = space.decode(encoding)
    depths = tuple(int(values[f"s{s}.depth"]) for s in range(len(STAGES)))
    kernels = tuple(tuple(int(values[f"s{s}.b{b}.kernel"]) for b in range(d)) for s, d in enumerate(depths))
    expands = tuple(tuple(int(values[f"s{s}.b{b}.expand"]) for b in range(d)) for s, d in enumerate(depths))
    return Arch(depths, kernels, expands)


def largest_arch() -> Arch:
    d = max(DEPTHS)
    return Arch((d,) * len(STAGES), ((max(KERNELS),) * d,) * len(STAGES), ((max(EXPANDS),) * d,) * len(STAGES))


def smallest_arch() -> Arch:
    d = min(DEPTHS)
    return Arch((d,) * len(STAGES), ((min(KERNELS),) * d,) * len(STAGES), ((min(EXPANDS),) * d,) * len(STAGES))


def complexity_of(X: np.ndarray) -> dict[str, np.ndarray]:
    """MACs per image and parameter count of canonical encodings, in closed form (vectorized).

    Counts what `count_macs_params` counts on the extracted module (convolutions and the
    classifier; batch-norm weight and bias as parameters), without torch: the inner
    search evaluates these exactly for 20,000 candidates in milliseconds.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.int64))
    n, genes_per_stage = len(X), 1 + 2 * max(DEPTHS)
    depths_opt, kernels_opt, expands_opt = np.array(DEPTHS), np.array(KERNELS), np.array(EXPANDS)
    res_in = 28 // 2  # after the stride-2 stem
    macs = np.full(n, STEM_WIDTH * res_in**2 * 9, dtype=float)
    params = np.full(n, STEM_WIDTH * 9 + 2 * STEM_WIDTH, dtype=float)
    cin, res = STEM_WIDTH, res_in
    for s, (width, stride) in enumerate(STAGES):
        base = s * genes_per_stage
        depth = depths_opt[X[:, base]]
        for b in range(max(DEPTHS)):
            active = b < depth
            k = kernels_opt[X[:, base + 1 + 2 * b]]
            mid = (cin if b == 0 else width) * expands_opt[X[:, base + 2 + 2 * b]]
            c_in = cin if b == 0 else width
            r_in, r_out = (res, res // stride) if b == 0 else (res // stride, res // stride)
            block_macs = mid * r_in**2 * c_in + mid * r_out**2 * k**2 + width * r_out**2 * mid
            block_params = c_in * mid + mid * k**2 + mid * width + 2 * (2 * mid + width)
            macs += np.where(active, block_macs, 0)
            params += np.where(active, block_params, 0)
        cin, res = width, res // stride
    n_classes = 10
    macs += HEAD_WIDTH * res**2 * cin + n_classes * HEAD_WIDTH
    params += cin * HEAD_WIDTH + 2 * HEAD_WIDTH + HEAD_WIDTH * n_classes + n_classes
    return {"macs": macs, "params": params}


def _new_net(*args):
    """A fresh super-network; its torch module is imported here only, so search-only stages
    never import torch."""
    from linas_lib.supernets.nets.elastic_cnn_net import ElasticCNN

    return ElasticCNN(*args)


def count_macs_params(module, example) -> tuple[float, float]:
    """Multiply-accumulates of one forward pass per sample, and parameter count."""
    import torch
    from torch import nn

    macs = [0.0]

    def hook(mod, inputs, output):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            macs[0] += output.numel() / output.shape[0] * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            macs[0] += output.numel() / output.shape[0] * mod.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        module(example[:1])
    for h in handles:
        h.remove()
    return macs[0], float(sum(p.numel() for p in module.parameters()))


@supernet_registry.register("elastic_cnn")
class ElasticCNNSupernet(TrainedOnce):
    """Plugin for the built-in elastic CNN; parameters set the training budget."""

    quality_metric = "accuracy"
    fast_complexity = True  # closed form: MACs and params are computed in the search, never predicted
    name, kind = "elastic_cnn", "an elastic_cnn checkpoint"
    recipe_keys = ("epochs", "batch_size", "lr", "random_subnets", "train_limit", "seed", "ranks")
    keep_on_cpu = True  # scoring moves each extracted sub-network to the device

    def __init__(
        self,
        epochs: int = 4,
        batch_size: int = 128,
        lr: float = 3e-3,
        random_subnets: int = 2,
        train_limit: int | None = None,
        calibration_images: int = 1000,
        seed: int = 0,
        ranks: int = 2,
        progress: bool = True,
    ):
        if ranks < 1 or batch_size % ranks:
            raise ValueError(f"supernet.params.ranks: {ranks} must be at least 1 and divide batch_size {batch_size}")
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.random_subnets, self.train_limit = random_subnets, train_limit
        self.calibration_images, self.seed, self.progress = calibration_images, seed, progress
        self.ranks = ranks
        self.space = build_space()
        self._data = None  # loaded on first use

    @staticmethod
    def search_space(**_: Any) -> SearchSpace:
        return build_space()

    # ---- weights (prepare, train and load come from TrainedOnce) ---------------
    def architecture(self) -> list:
        return [STAGES, DEPTHS, KERNELS, EXPANDS, STEM_WIDTH, HEAD_WIDTH]

    def build(self, payload: dict):
        return _new_net()

    def fit(self):
        recipe = {k: getattr(self, k) for k in self.recipe_keys}
        return run_data_parallel(_train_rank, self.ranks, recipe, self.progress), {}

    # ---- sub-networks -------------------------------------------------------
    def _splits(self):
        if self._data is None:
            from linas_lib.supernets.animal_mnist import load_splits

            self._data = load_splits(seed=0)
        return self._data

    def _static(self, encoding: np.ndarray):
        return self._require_net().extract(decode(self.space, encoding))

    def _recalibrate(self, module) -> None:
        """Fresh batch-norm statistics for this sub-network (as OFA does before scoring).

        Run channels-last, where oneDNN's depthwise convolutions take half the CPU time;
        the module is handed back in the default layout."""
        import torch
        from torch import nn

        train, _ = self._splits()
        device = next(module.parameters()).device
        images = torch.from_numpy(train.x[: self.calibration_images]).to(device)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
        module.to(memory_format=torch.channels_last).train()
        with torch.no_grad():
            for chunk in images.split(250):
                module(chunk.contiguous(memory_format=torch.channels_last))
        module.to(memory_format=torch.contiguous_format).eval()

    def subnet(self, encoding: np.ndarray, device: str = "cpu"):
        """The static, recalibrated sub-network in eval mode."""
        module = self._static(encoding).to(device)
        self._recalibrate(module)
        return module

    def evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        import torch
        from torch.fx.experimental.optimization import fuse

        _, test = self._splits()
        device = eval_device()
        x, y = torch.from_numpy(test.x).to(device), torch.from_numpy(test.y).to(device)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        results = []
        for encoding in self.space.canonicalize(encodings):
            module = self.subnet(encoding, device)
            macs, params = count_macs_params(module, x[:1])
            # The same function at a quarter of the CPU time: batch norm folded into the
            # convolutions, channels-last for oneDNN's depthwise kernels.
            scored = fuse(module).to(memory_format=torch.channels_last)
            with torch.inference_mode():
                correct = sum(int((scored(xb).argmax(1) == yb).sum()) for xb, yb in zip(x_cl.split(500), y.split(500)))
            results.append({"accuracy": correct / len(y), "macs": macs, "params": params})
        return results

    def complexity(self, encodings: np.ndarray) -> dict[str, np.ndarray]:
        return complexity_of(self.space.canonicalize(encodings))

    def features(self, encodings: np.ndarray) -> np.ndarray:
        """Cheap derived features for the predictors: log MACs, log params and total depth."""
        X = self.space.canonicalize(encodings)
        c = complexity_of(X)
        depth = sum(np.array(DEPTHS)[X[:, s * (1 + 2 * max(DEPTHS))]] for s in range(len(STAGES)))
        return np.column_stack([np.log(c["macs"]), np.log(c["params"]), depth])

    def export_module(self, encoding: np.ndarray, batch_size: int):
        import torch

        module = self.subnet(self.space.canonicalize(encoding)[0])
        return module, (torch.randn(batch_size, 1, 28, 28),)

    def timing_module(self, encoding: np.ndarray, batch_size: int):
        """The sub-network without recalibrated batch norm: the same graph for timing, at
        half the preparation cost."""
        import torch

        module = self._static(self.space.canonicalize(encoding)[0])
        return module, (torch.randn(batch_size, 1, 28, 28),)

    def calibration_inputs(self, batch_size: int, n_batches: int):
        import torch

        train, _ = self._splits()
        x = torch.from_numpy(train.x[: batch_size * n_batches])
        return [(chunk,) for chunk in x.split(batch_size) if len(chunk) == batch_size]

    def evaluate_exported(self, encoding: np.ndarray, run) -> dict[str, float]:
        """Top-1 accuracy on the test split when `run(images) -> logits` is the forward pass."""
        _, test = self._splits()
        batch = 500
        correct = sum(
            int((np.asarray(run(test.x[i : i + batch])).argmax(1) == test.y[i : i + batch]).sum())
            for i in range(0, len(test.y), batch)
        )
        return {"accuracy": correct / len(test.y)}



def _train_rank(rank: int, ranks: int, recipe: dict, progress: bool):
    """One rank of the sandwich-rule training; rank 0 returns the super-network.

    Every rank draws the same data order and the same sub-networks (one seed) and trains
    on its share of each batch; averaged gradients keep the copies identical."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from linas_lib.supernets.animal_mnist import load_splits

    epochs, batch_size = recipe["epochs"], recipe["batch_size"]
    torch.manual_seed(recipe["seed"])
    rng = np.random.default_rng(recipe["seed"])
    space = build_space()
    train, _ = load_splits(seed=0)
    x_all, y_all = torch.from_numpy(train.x), torch.from_numpy(train.y)
    if recipe["train_limit"]:
        x_all, y_all = x_all[: recipe["train_limit"]], y_all[: recipe["train_limit"]]
    # channels_last makes depthwise backward ~5x faster on CPU (oneDNN)
    net = _new_net().to(memory_format=torch.channels_last)
    x_all = x_all.contiguous(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(x_all) // batch_size)
    total = steps_per_epoch * epochs
    opt = torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=total, pct_start=0.15)
    net.train()
    share = batch_size // ranks
    bar = tqdm(total=total, desc=f"train elastic_cnn (sandwich rule, {ranks} processes)",
               disable=not progress or rank > 0, unit="step")
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x_all)))
        for step in range(steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            idx = batch[rank * share : (rank + 1) * share]
            x, y = x_all[idx], y_all[idx]
            opt.zero_grad(set_to_none=True)
            logits = net(x, largest_arch())
            loss = F.cross_entropy(logits, y)
            loss.backward()
            teacher = logits.detach().softmax(dim=1)  # in-place distillation target
            archs = [smallest_arch()] + [decode(space, e) for e in space.sample(recipe["random_subnets"], rng)]
            for arch in archs:
                student = F.log_softmax(net(x, arch), dim=1)
                F.kl_div(student, teacher, reduction="batchmean").backward()
            average_gradients(net)
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
            bar.update()
    bar.close()
    return net if rank == 0 else None
