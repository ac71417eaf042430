"""The torch modules of `transformer`: the SuperTransformer and its static sub-networks.

Imported only when weights are built, trained or loaded: search-only stages never import torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linas_lib.supernets.data.numbers import PAD, SRC_LEN, SRC_VOCAB, TGT_LEN, TGT_VOCAB
from linas_lib.supernets.transformer import EMBED_DIMS, HEAD_DIM, MASK_VALUE, Arch, largest_arch


def attend(q, k, v, heads: int, mask):
    """Scaled dot-product attention of (B, Tq, heads*HEAD_DIM) queries; `mask` is additive."""
    b, tq, tk = q.shape[0], q.shape[1], k.shape[1]
    q = q.reshape(b, tq, heads, HEAD_DIM).transpose(1, 2)
    k = k.reshape(b, tk, heads, HEAD_DIM).transpose(1, 2)
    v = v.reshape(b, tk, heads, HEAD_DIM).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-1, -2)) * (HEAD_DIM**-0.5) + mask
    out = torch.matmul(scores.softmax(dim=-1), v)
    return out.transpose(1, 2).reshape(b, tq, heads * HEAD_DIM)


def padding_mask(src):
    """(B, 1, 1, S) additive mask hiding padded source positions."""
    return (src == PAD).to(torch.float32)[:, None, None, :] * MASK_VALUE


def causal_mask(length: int):
    return torch.triu(torch.full((length, length), MASK_VALUE), diagonal=1)


# ---- static sub-network ---------------------------------------------------
class Attention(nn.Module):
    def __init__(self, d_q, d_kv, heads):
        super().__init__()
        self.heads, width = heads, heads * HEAD_DIM
        self.q, self.k, self.v = nn.Linear(d_q, width), nn.Linear(d_kv, width), nn.Linear(d_kv, width)
        self.out = nn.Linear(width, d_q)

    def forward(self, x, memory, mask):
        return self.out(attend(self.q(x), self.k(memory), self.v(memory), self.heads, mask))


class EncoderLayer(nn.Module):
    def __init__(self, d, ffn, heads):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), Attention(d, d, heads)
        self.ln2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, mask)
        return x + self.fc2(F.relu(self.fc1(self.ln2(x))))


class DecoderLayer(nn.Module):
    def __init__(self, d, d_enc, ffn, self_heads, cross_heads):
        super().__init__()
        self.ln1, self.self_attn = nn.LayerNorm(d), Attention(d, d, self_heads)
        self.ln2, self.cross_attn = nn.LayerNorm(d), Attention(d, d_enc, cross_heads)
        self.ln3, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x, memory, self_mask, cross_mask):
        h = self.ln1(x)
        x = x + self.self_attn(h, h, self_mask)
        x = x + self.cross_attn(self.ln2(x), memory, cross_mask)
        return x + self.fc2(F.relu(self.fc1(self.ln3(x))))


class StaticTransformer(nn.Module):
    """forward(src (B, SRC_LEN), tgt_in (B, T)) int64 -> logits (B, T, target vocabulary)."""

    def __init__(self, arch: Arch):
        super().__init__()
        de, dd = arch.enc_embed, arch.dec_embed
        self.src_embed, self.src_pos = nn.Embedding(len(SRC_VOCAB), de), nn.Parameter(torch.zeros(SRC_LEN, de))
        self.encoder = nn.ModuleList(EncoderLayer(de, f, h) for f, h in zip(arch.enc_ffn, arch.enc_heads))
        self.enc_ln = nn.LayerNorm(de)
        self.tgt_embed, self.tgt_pos = nn.Embedding(len(TGT_VOCAB), dd), nn.Parameter(torch.zeros(TGT_LEN, dd))
        self.decoder = nn.ModuleList(
            DecoderLayer(dd, de, f, hs, hc)
            for f, hs, hc in zip(arch.dec_ffn, arch.dec_self_heads, arch.dec_cross_heads)
        )
        self.dec_ln = nn.LayerNorm(dd)
        self.register_buffer("causal", causal_mask(TGT_LEN), persistent=False)
        self.enc_scale, self.dec_scale = de**0.5, dd**0.5

    def encode(self, src):
        x = self.src_embed(src) * self.enc_scale + self.src_pos[: src.shape[1]]
        mask = padding_mask(src)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_ln(x), mask

    def decode(self, tgt_in, memory, cross_mask):
        t = tgt_in.shape[1]
        x = self.tgt_embed(tgt_in) * self.dec_scale + self.tgt_pos[:t]
        self_mask = self.causal[:t, :t]
        for layer in self.decoder:
            x = layer(x, memory, self_mask, cross_mask)
        return F.linear(self.dec_ln(x), self.tgt_embed.weight)  # tied output projection

    def forward(self, src, tgt_in):
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)

    # incremental decoding (beam search): keys and values of past positions are cached
    def init_cache(self, memory, cross_mask) -> dict:
        cross = [(layer.cross_attn.k(memory), layer.cross_attn.v(memory)) for layer in self.decoder]
        return {"cross": cross, "mask": cross_mask, "self": [None] * len(self.decoder)}

    @staticmethod
    def reorder_cache(cache: dict, index) -> None:
        """Keep the self-attention cache of the hypotheses `index` (within each sentence)."""
        cache["self"] = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache["self"]]

    def decode_step(self, tokens, cache: dict):
        """Logits of the next token after `tokens` (N, t); equals decode(...)[:, -1]."""
        t = tokens.shape[1]
        x = self.tgt_embed(tokens[:, -1:]) * self.dec_scale + self.tgt_pos[t - 1 : t]
        for i, layer in enumerate(self.decoder):
            h, a = layer.ln1(x), layer.self_attn
            k, v = a.k(h), a.v(h)
            if cache["self"][i] is not None:
                k, v = torch.cat([cache["self"][i][0], k], 1), torch.cat([cache["self"][i][1], v], 1)
            cache["self"][i] = (k, v)
            x = x + a.out(attend(a.q(h), k, v, a.heads, 0.0))
            c, (ck, cv) = layer.cross_attn, cache["cross"][i]
            x = x + c.out(attend(c.q(layer.ln2(x)), ck, cv, c.heads, cache["mask"]))
            x = x + layer.fc2(F.relu(layer.fc1(layer.ln3(x))))
        return F.linear(self.dec_ln(x), self.tgt_embed.weight)[:, -1]


# ---- the super-network ----------------------------------------------------
def lin(layer: nn.Linear, x, d_in: int, d_out: int):
    return F.linear(x, layer.weight[:d_out, :d_in], layer.bias[:d_out])


def ln(layer: nn.LayerNorm, x, d: int):
    return F.layer_norm(x, (d,), layer.weight[:d], layer.bias[:d], layer.eps)


def elastic_attention(a: Attention, x, memory, d_q, d_kv, heads, mask):
    w = heads * HEAD_DIM
    q, k, v = lin(a.q, x, d_q, w), lin(a.k, memory, d_kv, w), lin(a.v, memory, d_kv, w)
    return lin(a.out, attend(q, k, v, heads, mask), w, d_q)


class ElasticTransformer(nn.Module):
    """The SuperTransformer: the static modules at their largest sizes, run sliced."""

    def __init__(self):
        super().__init__()
        self.full = StaticTransformer(largest_arch())
        for emb in (self.full.src_embed, self.full.tgt_embed):
            nn.init.normal_(emb.weight, std=max(EMBED_DIMS) ** -0.5)
        for pos in (self.full.src_pos, self.full.tgt_pos):
            nn.init.normal_(pos, std=0.02)

    def forward(self, src, tgt_in, arch: Arch):
        m, de, dd = self.full, arch.enc_embed, arch.dec_embed
        x = m.src_embed(src)[..., :de] * de**0.5 + m.src_pos[: src.shape[1], :de]
        mask = padding_mask(src)
        for layer, f, h in zip(m.encoder, arch.enc_ffn, arch.enc_heads):
            a = ln(layer.ln1, x, de)
            x = x + elastic_attention(layer.attn, a, a, de, de, h, mask)
            x = x + lin(layer.fc2, F.relu(lin(layer.fc1, ln(layer.ln2, x, de), de, f)), f, de)
        memory = ln(m.enc_ln, x, de)
        t = tgt_in.shape[1]
        y = m.tgt_embed(tgt_in)[..., :dd] * dd**0.5 + m.tgt_pos[:t, :dd]
        self_mask = m.causal[:t, :t]
        for layer, f, hs, hc in zip(m.decoder, arch.dec_ffn, arch.dec_self_heads, arch.dec_cross_heads):
            a = ln(layer.ln1, y, dd)
            y = y + elastic_attention(layer.self_attn, a, a, dd, dd, hs, self_mask)
            y = y + elastic_attention(layer.cross_attn, ln(layer.ln2, y, dd), memory, dd, de, hc, mask)
            y = y + lin(layer.fc2, F.relu(lin(layer.fc1, ln(layer.ln3, y, dd), dd, f)), f, dd)
        return F.linear(ln(m.dec_ln, y, dd), m.tgt_embed.weight[:, :dd])

    @torch.no_grad()
    def extract(self, arch: Arch) -> StaticTransformer:
        """The sub-network as a static module: every weight is the leading slice of the
        same-named weight of the super-network (module names match by construction)."""
        static = StaticTransformer(arch).to(self.full.src_pos.device)
        for name, dst in static.named_parameters():
            src = self.full.get_parameter(name)
            dst.copy_(src[tuple(slice(0, n) for n in dst.shape)])
        return static.eval()
