"""Check our OFA networks against the reference `ofa` package, parameter for parameter.

Not used at run time. With the `ofa` wheel unpacked somewhere (it needs no weights):

    pip install --no-deps --target /tmp/ofa-ref ofa==0.1.0.post202307202001
    python -m linas_lib.supernets.ofa.verify_against_ofa /tmp/ofa-ref

For both super-networks it builds OFA's network, perturbs its batch-norm statistics and
kernel transformation matrices, saves its state dict in OFA's release format
(``{'state_dict': ...}``), loads that into our plugin, and compares, for random
sub-networks, OFA's `set_active_subnet` + `get_active_subnet(preserve_weight=True)`
with our extracted sub-network: same state-dict keys and shapes, same outputs.

`ofa` imports torchvision at module level (data loaders we do not use), and the PyPI
torchvision builds do not load beside this torch build; so, for this check only, a stub
`torchvision` is put into `sys.modules` inside `_stub_torchvision()` and removed after.
"""
from __future__ import annotations

import contextlib
import sys
import tempfile
import types
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def _stub_torchvision():
    names = ["torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.datasets"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    mods["torchvision"].transforms = mods["torchvision.transforms"]
    mods["torchvision"].datasets = mods["torchvision.datasets"]
    mods["torchvision.transforms"].functional = mods["torchvision.transforms.functional"]
    mods["torchvision.transforms"].RandomResizedCrop = type("RandomResizedCrop", (), {})
    mods["torchvision.transforms"].InterpolationMode = types.SimpleNamespace(BILINEAR=2)
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def verify(ofa_site: str | None = None, n_subnets: int = 6, resolution: int = 128) -> float:
    """The largest absolute output difference over all checked sub-networks."""
    import torch

    from linas_lib.supernets import build_supernet

    if ofa_site:
        sys.path.insert(0, ofa_site)
    with _stub_torchvision():
        from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3, OFAResNets
        from ofa.utils import init_models

    torch.manual_seed(0)
    refs = {
        "ofa_mbv3": OFAMobileNetV3(dropout_rate=0, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                   depth_list=[2, 3, 4]),
        "ofa_resnet50": OFAResNets(dropout_rate=0, depth_list=[0, 1, 2], expand_ratio_list=[0.2, 0.25, 0.35],
                                   width_mult_list=[0.65, 0.8, 1.0]),
    }
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, ref in refs.items():
            init_models(ref, "he_fout")
            with torch.no_grad():
                for key, p in ref.named_parameters():
                    if key.endswith("_matrix"):
                        p.add_(0.05 * torch.randn_like(p))
                    elif ".bn." in key:
                        p.add_(0.1 * torch.randn_like(p))
                for key, b in ref.named_buffers():
                    if key.endswith("running_mean"):
                        b.copy_(0.1 * torch.randn_like(b))
                    elif key.endswith("running_var"):
                        b.copy_(1 + 0.5 * torch.rand_like(b))
            path = Path(tmp) / f"{name}.pth"
            torch.save({"state_dict": ref.state_dict()}, path)
            plugin = build_supernet(name, resolution=resolution)
            plugin.load(str(path))
            assert set(ref.state_dict()) == set(plugin.network.state_dict()), f"{name}: super-network keys differ"
            space = plugin.space
            X = np.vstack([space.canonicalize(space.upper), space.canonicalize(np.zeros(space.n_var, dtype=int)),
                           space.sample(n_subnets, 0)])
            x = torch.randn(2, 3, resolution, resolution)
            ref.eval()
            for encoding in X:
                ref.set_active_subnet(**plugin.ofa_config(encoding))
                theirs = ref.get_active_subnet(preserve_weight=True).eval()
                ours = plugin.static(encoding).eval()
                a, b = theirs.state_dict(), ours.state_dict()
                assert set(a) == set(b), f"{name}: sub-network keys differ: {sorted(set(a) ^ set(b))[:5]}"
                assert all(a[k].shape == b[k].shape for k in a), f"{name}: sub-network shapes differ"
                with torch.no_grad():
                    diff = float((theirs(x) - ours(x)).abs().max())
                    scale = float(theirs(x).abs().max())
                worst = max(worst, diff / max(scale, 1e-12))
                print(f"{name} {plugin.ofa_config(encoding)['d']}: max |diff| {diff:.2e} (output scale {scale:.2e})")
    return worst


if __name__ == "__main__":
    rel = verify(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"largest relative difference: {rel:.2e}")
    sys.exit(0 if rel < 1e-4 else 1)
