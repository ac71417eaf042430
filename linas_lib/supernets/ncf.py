"""Elastic NeuMF on MovieLens-100k (LINAS paper, appendix D.5).

NeuMF (He et al., 2017) fuses generalized matrix factorization (GMF: the element-wise
product of a user and an item embedding) with an MLP over concatenated user and item
embeddings; a linear layer over both branches predicts the interaction logit. The
super-network holds the largest embeddings (128) and the widest MLP layers (1024, six
of them); a sub-network chooses the GMF and MLP embedding sizes, the MLP depth and
each layer's width, and takes the leading channels of every shared weight.

Training samples one sub-network uniformly per mini-batch and minimizes binary cross-
entropy on observed interactions and `negatives` sampled unobserved items per positive.
A sandwich-style step on the largest network every `largest_every` steps is available
but off by default: the largest network costs ~27x the MACs of an average sampled one,
and at equal CPU time more uniform epochs scored better (largest HR@10 0.62 after 8
uniform epochs vs 0.60 after 5 epochs with the largest every 8th step).
Quality is HR@10 under leave-one-out: each user's latest interaction ranked among 99
fixed negatives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from linas_lib.api.search_space import ActiveWhen, SearchSpace, Variable
from linas_lib.supernets import supernet_registry
from linas_lib.supernets.checkpoints import TrainedOnce, eval_device, torch_threads

EMBED_DIMS = (8, 16, 32, 64, 128)
HIDDEN_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
LAYERS = (1, 2, 3, 4, 5, 6)
MAX_EMBED, MAX_HIDDEN, MAX_LAYERS = max(EMBED_DIMS), max(HIDDEN_SIZES), max(LAYERS)
N_CANDIDATES = 100  # the held-out item and 99 negatives per user


@dataclass(frozen=True)
class Arch:
    gmf_dim: int
    mlp_dim: int
    hidden: tuple[int, ...]  # one width per MLP layer


def build_space() -> SearchSpace:
    variables = [
        Variable("gmf.embed", EMBED_DIMS),
        Variable("mlp.embed", EMBED_DIMS),
        Variable("mlp.layers", LAYERS),
    ]
    for i in range(MAX_LAYERS):
        cond = ActiveWhen("mlp.layers", i + 1) if i + 1 > min(LAYERS) else None
        variables.append(Variable(f"mlp.l{i}.hidden", HIDDEN_SIZES, cond))
    return SearchSpace(variables, name="ncf")


def decode(space: SearchSpace, encoding: np.ndarray) -> Arch:
    v = space.decode(encoding)
    depth = int(v["mlp.layers"])
    return Arch(int(v["gmf.embed"]), int(v["mlp.embed"]), tuple(int(v[f"mlp.l{i}.hidden"]) for i in range(depth)))


def largest_arch() -> Arch:
    return Arch(MAX_EMBED, MAX_EMBED, (MAX_HIDDEN,) * MAX_LAYERS)


def count_macs_params(arch: Arch, module=None) -> tuple[float, float]:
    """MACs of scoring one (user, item) pair: GMF product, MLP and prediction layer."""
    macs, fan_in = float(arch.gmf_dim), 2 * arch.mlp_dim
    for h in arch.hidden:
        macs += fan_in * h
        fan_in = h
    macs += arch.gmf_dim + fan_in
    params = float(sum(p.numel() for p in module.parameters())) if module is not None else float("nan")
    return macs, params


def _new_net(*args):
    """A fresh super-network; its torch module is imported here only, so search-only stages
    never import torch."""
    from linas_lib.supernets.nets.ncf_net import ElasticNeuMF

    return ElasticNeuMF(*args)


@supernet_registry.register("ncf")
class NCFSupernet(TrainedOnce):
    """Plugin for elastic NeuMF on MovieLens-100k; parameters set the training budget."""

    quality_metric = "hr@10"
    name, kind = "ncf", "an ncf checkpoint"
    recipe_keys = ("epochs", "batch_size", "lr", "negatives", "largest_every", "train_limit", "seed")

    def __init__(
        self,
        epochs: int = 8,
        batch_size: int = 2048,
        lr: float = 3e-3,
        negatives: int = 4,
        largest_every: int = 0,
        train_limit: int | None = None,
        eval_users: int | None = None,
        seed: int = 0,
        threads: int | None = None,
        progress: bool = True,
    ):
        self.epochs, self.batch_size, self.lr, self.negatives = epochs, batch_size, lr, negatives
        self.largest_every, self.train_limit, self.seed, self.progress = largest_every, train_limit, seed, progress
        self.eval_users = eval_users  # HR@10 over the first N users only (a smaller budget for tests)
        self.threads = threads  # torch CPU threads while training/scoring (None: torch's default)
        self.space = build_space()
        self._data = None  # loaded on first use

    @staticmethod
    def search_space(**_: Any) -> SearchSpace:
        return build_space()

    # ---- data ---------------------------------------------------------------
    def _movielens(self):
        if self._data is None:
            from linas_lib.supernets.data.movielens import load_movielens

            self._data = load_movielens(seed=0)  # the test negatives never depend on the training seed
        return self._data

    def _negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`negatives` unobserved items per user row (resampled while they hit an interaction)."""
        data = self._movielens()
        items = rng.integers(0, data.n_items, size=(len(users), self.negatives))
        for _ in range(10):
            hit = data.interacted[users[:, None], items]
            if not hit.any():
                break
            items[hit] = rng.integers(0, data.n_items, size=int(hit.sum()))
        return items

    # ---- weights (prepare, train and load come from TrainedOnce) ---------------
    def architecture(self) -> list:
        return [EMBED_DIMS, HIDDEN_SIZES, LAYERS, "ml-100k-loo"]

    def build(self, payload: dict):
        return _new_net(int(payload["n_users"]), int(payload["n_items"]))

    def fit(self):
        import torch
        import torch.nn.functional as F
        from tqdm.auto import tqdm

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        data = self._movielens()
        device = eval_device()
        users, items = data.train_users, data.train_items
        if self.train_limit:
            keep = rng.permutation(len(users))[: self.train_limit]
            users, items = users[keep], items[keep]
        net = _new_net(data.n_users, data.n_items).to(device)
        per_epoch = len(users) * (1 + self.negatives)
        steps_per_epoch = max(1, per_epoch // self.batch_size)
        total = steps_per_epoch * self.epochs
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, fused=True)  # one pass over 6M weights
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total, pct_start=0.1)
        net.train()
        bar = tqdm(total=total, desc="train ncf (uniform sub-networks)", disable=not self.progress, unit="step")
        step = 0
        for _ in range(self.epochs):
            neg = self._negatives(users, rng)
            u = np.concatenate([users, np.repeat(users, self.negatives)])
            i = np.concatenate([items, neg.reshape(-1)])
            y = np.concatenate([np.ones(len(users)), np.zeros(neg.size)]).astype(np.float32)
            order = rng.permutation(len(u))
            u_t, i_t, y_t = (torch.from_numpy(a[order]).to(device) for a in (u, i, y))
            for s in range(steps_per_epoch):
                sl = slice(s * self.batch_size, (s + 1) * self.batch_size)
                ub, ib, yb = u_t[sl], i_t[sl], y_t[sl]
                opt.zero_grad(set_to_none=True)
                archs = [decode(self.space, self.space.sample(1, rng)[0])]
                if self.largest_every and step % self.largest_every == 0:
                    archs.append(largest_arch())
                for arch in archs:
                    loss = F.binary_cross_entropy_with_logits(net(ub, ib, arch), yb)
                    loss.backward()
                opt.step()
                sched.step()
                step += 1
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update()
        bar.close()
        return net, {"n_users": data.n_users, "n_items": data.n_items}

    # ---- sub-networks -------------------------------------------------------
    def subnet(self, encoding: np.ndarray):
        """The static sub-network in eval mode (on the evaluation device)."""
        return self._require_net().extract(decode(self.space, encoding))

    def _scores(self, module, users: np.ndarray, items: np.ndarray, chunk: int = 100 * N_CANDIDATES) -> np.ndarray:
        import torch

        device = next(module.parameters()).device
        u, i = torch.from_numpy(users.reshape(-1)), torch.from_numpy(items.reshape(-1))
        with torch.no_grad():
            out = [module(ub.to(device), ib.to(device)).float().cpu() for ub, ib in zip(u.split(chunk), i.split(chunk))]
        return torch.cat(out).numpy().reshape(users.shape)

    def _candidates(self) -> tuple[np.ndarray, np.ndarray]:
        users, items = self._movielens().candidates()
        return users[: self.eval_users], items[: self.eval_users]

    def evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        with torch_threads(self.threads):
            return self._evaluate(encodings)

    def _evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        from linas_lib.supernets.data.movielens import hit_ratio

        users, items = self._candidates()
        results = []
        for encoding in self.space.canonicalize(encodings):
            module = self.subnet(encoding)
            hr = hit_ratio(self._scores(module, users, items), k=10)
            macs, params = count_macs_params(decode(self.space, encoding), module)
            results.append({"hr@10": hr, "macs": macs, "params": params})
        return results

    def export_module(self, encoding: np.ndarray, batch_size: int):
        """Static CPU module scoring `batch_size` (user, item) pairs: forward(user_ids, item_ids) -> logits."""
        module = self.subnet(self.space.canonicalize(encoding)[0]).cpu()
        (users, items), = self.calibration_inputs(batch_size, 1)
        return module, (users, items)

    def calibration_inputs(self, batch_size: int, n_batches: int):
        """Training pairs, half observed interactions and half sampled unobserved items."""
        import torch

        data = self._movielens()
        rng = np.random.default_rng(12345)
        n = batch_size * n_batches
        pos = rng.integers(0, len(data.train_users), size=n)
        users = data.train_users[pos]
        items = data.train_items[pos].copy()
        fake = rng.random(n) < 0.5
        items[fake] = rng.integers(0, data.n_items, size=int(fake.sum()))
        u, i = torch.from_numpy(users), torch.from_numpy(items)
        return [(ub, ib) for ub, ib in zip(u.split(batch_size), i.split(batch_size)) if len(ub) == batch_size]

    def evaluate_exported(self, encoding: np.ndarray, run) -> dict[str, float]:
        """HR@10 when `run(user_ids, item_ids) -> scores` is the forward pass; called once
        per user with that user's 100 candidates (always a batch of 100)."""
        from linas_lib.supernets.data.movielens import hit_ratio

        users, items = self._candidates()
        scores = np.stack([np.asarray(run(u, i), dtype=np.float64).reshape(-1) for u, i in zip(users, items)])
        return {"hr@10": hit_ratio(scores, k=10)}
