"""A complete, minimal LINAS super-network plugin that lives outside the package.

"toy_mlp" is a weight-sharing MLP classifier for a synthetic 4-class problem that the
code generates itself (no downloads). Genes: the number of hidden layers {1, 2, 3} and
the width of each hidden layer {16, 32, 64}; a layer's width gene exists only when the
network is that deep. A sub-network uses the leading rows/columns of the 64-wide
shared layers. `prepare` trains the super-network once (a couple of seconds) and
caches it; `load` reads it back.

Use it from a config without installing anything:

    supernet:
      name: toy_mlp
      plugin_file: tests/plugins/toy_plugin.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from linas_lib.api.search_space import ActiveWhen, SearchSpace, Variable
from linas_lib.supernets import supernet_registry

N_IN, N_CLASSES, MAX_WIDTH = 16, 4, 64
DEPTHS, WIDTHS = (1, 2, 3), (16, 32, 64)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points around 4 fixed centres, labelled by a fixed non-linear rule."""
    centres = np.random.default_rng(1234).normal(size=(N_CLASSES, N_IN))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_IN)) * 2.0
    y = np.argmax(np.tanh(x @ centres.T) + 0.1 * (x[:, :N_CLASSES] ** 2), axis=1)
    return x.astype(np.float32), y.astype(np.int64)


def build_space() -> SearchSpace:
    variables = [Variable("depth", DEPTHS)]
    for i in range(max(DEPTHS)):
        cond = ActiveWhen("depth", i + 1) if i + 1 > min(DEPTHS) else None
        variables.append(Variable(f"layer{i}.width", WIDTHS, cond))
    return SearchSpace(variables, name="toy_mlp")


def _shared_mlp():
    from torch import nn

    layers = nn.ModuleList([nn.Linear(N_IN, MAX_WIDTH)] + [nn.Linear(MAX_WIDTH, MAX_WIDTH) for _ in range(2)])
    return nn.ModuleDict({"hidden": layers, "head": nn.Linear(MAX_WIDTH, N_CLASSES)})


def _static(shared, widths: list[int]):
    """The sub-network as a plain nn.Sequential with copied weight slices."""
    import torch
    from torch import nn

    modules, cin = [], N_IN
    with torch.no_grad():
        for layer, w in zip(shared["hidden"], widths):
            lin = nn.Linear(cin, w)
            lin.weight.copy_(layer.weight[:w, :cin])
            lin.bias.copy_(layer.bias[:w])
            modules += [lin, nn.ReLU()]
            cin = w
        head = nn.Linear(cin, N_CLASSES)
        head.weight.copy_(shared["head"].weight[:, :cin])
        head.bias.copy_(shared["head"].bias)
    return nn.Sequential(*modules, head).eval()


@supernet_registry.register("toy_mlp")
class ToyMLP:
    quality_metric = "accuracy"

    def __init__(self, steps: int = 300, seed: int = 0):
        self.steps, self.seed = steps, seed  # cheap: no torch, no weights, no data
        self.space = build_space()
        self._shared = None

    @classmethod
    def search_space(cls, **_):
        return build_space()

    def widths(self, encoding) -> list[int]:
        values = self.space.decode(encoding)
        return [values[f"layer{i}.width"] for i in range(values["depth"])]

    # ---- weights ------------------------------------------------------------------------
    def prepare(self, checkpoint, cache_dir):
        if checkpoint:
            if not Path(checkpoint).is_file():
                raise FileNotFoundError(f"toy_mlp: checkpoint {checkpoint!r} does not exist")
            return checkpoint
        path = Path(cache_dir) / f"toy_mlp-steps{self.steps}-seed{self.seed}.pt"
        if not path.is_file():
            self._train(path)
        return str(path)

    def _train(self, path: Path) -> None:
        import torch
        import torch.nn.functional as F

        torch.manual_seed(self.seed)
        x, y = map(torch.from_numpy, make_data(4096, self.seed))
        shared = _shared_mlp()
        opt = torch.optim.Adam(shared.parameters(), lr=3e-3)
        for step in range(self.steps):
            idx = torch.randint(0, len(x), (128,))
            opt.zero_grad()
            for encoding in [self.space.canonicalize(self.space.upper)[0], *self.space.sample(2, step)]:
                h = x[idx]
                for layer, w in zip(shared["hidden"], self.widths(encoding)):
                    h = F.relu(F.linear(h, layer.weight[:w, : h.shape[1]], layer.bias[:w]))
                logits = F.linear(h, shared["head"].weight[:, : h.shape[1]], shared["head"].bias)
                F.cross_entropy(logits, y[idx]).backward()  # sandwich-style: gradients add up
            opt.step()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"toy_mlp": shared.state_dict()}, path)

    def load(self, checkpoint):
        import torch

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "toy_mlp" not in state:
            raise ValueError(f"toy_mlp: {checkpoint!r} is not a toy_mlp checkpoint")
        self._shared = _shared_mlp()
        self._shared.load_state_dict(state["toy_mlp"])

    # ---- sub-networks -------------------------------------------------------------------
    def subnet(self, encoding):
        if self._shared is None:
            raise RuntimeError("toy_mlp: no weights loaded; call load(prepare(...)) first")
        return _static(self._shared, self.widths(self.space.canonicalize(encoding)[0]))

    def evaluate(self, encodings):
        import torch

        x, y = make_data(2000, self.seed + 1)  # held-out split
        rows = []
        for encoding in self.space.canonicalize(encodings):
            module = self.subnet(encoding)
            with torch.no_grad():
                accuracy = float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
            linears = [m for m in module if isinstance(m, torch.nn.Linear)]
            rows.append({
                "accuracy": accuracy,
                "macs": float(sum(m.in_features * m.out_features for m in linears)),
                "params": float(sum(p.numel() for p in module.parameters())),
            })
        return rows

    def export_module(self, encoding, batch_size):
        import torch

        return self.subnet(encoding), (torch.randn(batch_size, N_IN),)

    # ---- optional: INT8 targets ------------------------------------------------------------
    def calibration_inputs(self, batch_size, n_batches):
        import torch

        x, _ = make_data(batch_size * n_batches, self.seed)
        return [(chunk,) for chunk in torch.from_numpy(x).split(batch_size)]

    def evaluate_exported(self, encoding, run):
        x, y = make_data(2000, self.seed + 1)
        return {"accuracy": float((np.asarray(run(x)).argmax(1) == y).mean())}
