"""The torch modules of `ncf`: elastic NeuMF and its static sub-networks.

Imported only when weights are built, trained or loaded: search-only stages never import torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linas_lib.supernets.ncf import MAX_EMBED, MAX_HIDDEN, MAX_LAYERS, Arch


class StaticNeuMF(nn.Module):
    """A fixed sub-network: (user_ids, item_ids) int64 (B,) -> interaction logits (B,)."""

    def __init__(self, n_users, n_items, arch: Arch):
        super().__init__()
        self.user_gmf, self.item_gmf = nn.Embedding(n_users, arch.gmf_dim), nn.Embedding(n_items, arch.gmf_dim)
        self.user_mlp, self.item_mlp = nn.Embedding(n_users, arch.mlp_dim), nn.Embedding(n_items, arch.mlp_dim)
        widths = (2 * arch.mlp_dim,) + arch.hidden
        self.mlp = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.predict = nn.Linear(arch.gmf_dim + widths[-1], 1)

    def forward(self, user_ids, item_ids):
        gmf = self.user_gmf(user_ids) * self.item_gmf(item_ids)
        mlp = self.mlp(torch.cat([self.user_mlp(user_ids), self.item_mlp(item_ids)], dim=-1))
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)


class ElasticNeuMF(nn.Module):
    def __init__(self, n_users, n_items):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.user_gmf, self.item_gmf = nn.Embedding(n_users, MAX_EMBED), nn.Embedding(n_items, MAX_EMBED)
        self.user_mlp, self.item_mlp = nn.Embedding(n_users, MAX_EMBED), nn.Embedding(n_items, MAX_EMBED)
        for emb in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
            nn.init.normal_(emb.weight, std=0.01)  # as in He et al.
        self.layers = nn.ModuleList(
            [nn.Linear(2 * MAX_EMBED, MAX_HIDDEN)] + [nn.Linear(MAX_HIDDEN, MAX_HIDDEN) for _ in range(MAX_LAYERS - 1)]
        )
        # columns [:MAX_EMBED] see the GMF branch, the rest the last MLP layer
        self.predict = nn.Linear(MAX_EMBED + MAX_HIDDEN, 1)

    def _weights(self, arch: Arch):
        """(weight, bias) of every sliced layer, the prediction layer last."""
        m, out = arch.mlp_dim, []
        fan_in = None
        for i, h in enumerate(arch.hidden):
            layer = self.layers[i]
            if i == 0:  # user and item halves of the concatenated input
                w = torch.cat([layer.weight[:h, :m], layer.weight[:h, MAX_EMBED : MAX_EMBED + m]], dim=1)
            else:
                w = layer.weight[:h, :fan_in]
            out.append((w, layer.bias[:h]))
            fan_in = h
        g, p = arch.gmf_dim, self.predict
        w = torch.cat([p.weight[:, :g], p.weight[:, MAX_EMBED : MAX_EMBED + fan_in]], dim=1)
        out.append((w, p.bias))
        return out

    def forward(self, user_ids, item_ids, arch: Arch):
        g, m = arch.gmf_dim, arch.mlp_dim
        gmf = self.user_gmf(user_ids)[:, :g] * self.item_gmf(item_ids)[:, :g]
        x = torch.cat([self.user_mlp(user_ids)[:, :m], self.item_mlp(item_ids)[:, :m]], dim=-1)
        *layers, (pw, pb) = self._weights(arch)
        for w, b in layers:
            x = F.relu(F.linear(x, w, b))
        return F.linear(torch.cat([gmf, x], dim=-1), pw, pb).squeeze(-1)

    @torch.no_grad()
    def extract(self, arch: Arch) -> StaticNeuMF:
        static = StaticNeuMF(self.n_users, self.n_items, arch).to(self.predict.weight.device)
        g, m = arch.gmf_dim, arch.mlp_dim
        static.user_gmf.weight.copy_(self.user_gmf.weight[:, :g])
        static.item_gmf.weight.copy_(self.item_gmf.weight[:, :g])
        static.user_mlp.weight.copy_(self.user_mlp.weight[:, :m])
        static.item_mlp.weight.copy_(self.item_mlp.weight[:, :m])
        linears = [mod for mod in static.mlp if isinstance(mod, nn.Linear)] + [static.predict]
        for dst, (w, b) in zip(linears, self._weights(arch)):
            dst.weight.copy_(w)
            dst.bias.copy_(b)
        return static.eval()
