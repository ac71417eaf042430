"""A HAT-style elastic encoder-decoder Transformer, scaled down for CPU translation.

As in HAT (Wang et al., 2020) the super-network is one pre-trained SuperTransformer
whose sub-networks take the leading slices of its weights: elastic encoder and decoder
embedding dimensions, per-layer FFN hidden dimensions, per-layer attention heads (self-
and encoder-decoder attention separately in the decoder) and an elastic number of
decoder layers; the encoder depth is fixed. Heads are elastic in the AutoFormer way:
each head has a fixed width (`HEAD_DIM`), so fewer heads means narrower query, key and
value projections rather than a re-split of a fixed width. Layers are pre-norm.

The task is English -> German number phrases up to 999 billion (`data.numbers`): up to
23 tokens a side and vocabularies of about 35 tokens, so the SuperTransformer trains in
a few minutes on a CPU. The space runs from 32-dimensional embeddings, one head, FFN 64
and one decoder layer (42k parameters) to 128 dimensions, four heads, FFN 384 and four
decoder layers (1.4M). Long numbers (four digit groups, each reordered) are what the
small sub-networks fail at, which gives the space its size/quality trade-off (with
numbers below a million and a space of 64-128 dimensions and two or four heads, every
sub-network scored BLEU 94-98 after the default budget). Training follows the sandwich
rule: every step trains the largest sub-network and `random_subnets` uniformly sampled
ones on label-smoothed cross-entropy; a batch drops its columns of padding only.
Quality is corpus BLEU (sacrebleu, 0-100, on German morphemes) of beam search with
beam 5 and length penalty 0.6, as in the paper. After the default budget (600 steps,
about 4.5 minutes of one CPU core) the smallest sub-network scored BLEU 24, a middle
one (96 dimensions, FFN 256, two heads, three decoder layers; 0.54M parameters) 83 and
the largest 95.

For latency, `export_module` hands out the static sub-network whose forward pass is
one full teacher-forced pass of encoder and decoder over fixed lengths
(`SRC_LEN` source tokens, `TGT_LEN` target tokens): (src, tgt_in) -> logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from linas_lib.api.search_space import ActiveWhen, SearchSpace, Variable
from linas_lib.supernets import supernet_registry
from linas_lib.supernets.checkpoints import TrainedOnce, eval_device, torch_threads

EMBED_DIMS = (32, 64, 96, 128)
FFN_DIMS = (64, 128, 256, 384)
HEADS = (1, 2, 4)
HEAD_DIM = 32
ENCODER_LAYERS = 3
DECODER_LAYERS = (1, 2, 3, 4)
BEAM, LENPEN = 5, 0.6
MASK_VALUE = -1e9


@dataclass(frozen=True)
class Arch:
    enc_embed: int
    dec_embed: int
    enc_ffn: tuple[int, ...]  # one per encoder layer
    enc_heads: tuple[int, ...]
    dec_ffn: tuple[int, ...]  # one per active decoder layer
    dec_self_heads: tuple[int, ...]
    dec_cross_heads: tuple[int, ...]


def build_space() -> SearchSpace:
    variables = [Variable("enc.embed", EMBED_DIMS), Variable("dec.embed", EMBED_DIMS)]
    for i in range(ENCODER_LAYERS):
        variables += [Variable(f"enc.l{i}.ffn", FFN_DIMS), Variable(f"enc.l{i}.heads", HEADS)]
    variables.append(Variable("dec.layers", DECODER_LAYERS))
    for i in range(max(DECODER_LAYERS)):
        cond = ActiveWhen("dec.layers", i + 1) if i + 1 > min(DECODER_LAYERS) else None
        variables += [
            Variable(f"dec.l{i}.ffn", FFN_DIMS, cond),
            Variable(f"dec.l{i}.self_heads", HEADS, cond),
            Variable(f"dec.l{i}.cross_heads", HEADS, cond),
        ]
    return SearchSpace(variables, name="transformer")


def decode(space: SearchSpace, encoding: np.ndarray) -> Arch:
    v = space.decode(encoding)
    n_dec = int(v["dec.layers"])
    enc = range(ENCODER_LAYERS)
    dec = range(n_dec)
    return Arch(
        enc_embed=int(v["enc.embed"]),
        dec_embed=int(v["dec.embed"]),
        enc_ffn=tuple(int(v[f"enc.l{i}.ffn"]) for i in enc),
        enc_heads=tuple(int(v[f"enc.l{i}.heads"]) for i in enc),
        dec_ffn=tuple(int(v[f"dec.l{i}.ffn"]) for i in dec),
        dec_self_heads=tuple(int(v[f"dec.l{i}.self_heads"]) for i in dec),
        dec_cross_heads=tuple(int(v[f"dec.l{i}.cross_heads"]) for i in dec),
    )


def largest_arch() -> Arch:
    e, d = ENCODER_LAYERS, max(DECODER_LAYERS)
    return Arch(max(EMBED_DIMS), max(EMBED_DIMS), (max(FFN_DIMS),) * e, (max(HEADS),) * e,
                (max(FFN_DIMS),) * d, (max(HEADS),) * d, (max(HEADS),) * d)


def smallest_arch() -> Arch:
    e, d = ENCODER_LAYERS, min(DECODER_LAYERS)
    return Arch(min(EMBED_DIMS), min(EMBED_DIMS), (min(FFN_DIMS),) * e, (min(HEADS),) * e,
                (min(FFN_DIMS),) * d, (min(HEADS),) * d, (min(HEADS),) * d)


def count_macs(arch: Arch) -> float:
    """MACs of one teacher-forced forward pass per sentence pair at the fixed lengths:
    every linear layer, both attention products and the output projection."""
    from linas_lib.supernets.data.numbers import SRC_LEN as S, TGT_LEN as T, TGT_VOCAB

    de, dd, macs = arch.enc_embed, arch.dec_embed, 0.0
    for f, h in zip(arch.enc_ffn, arch.enc_heads):
        q = h * HEAD_DIM
        macs += 3 * S * de * q + 2 * S * S * q + S * q * de + 2 * S * de * f
    for f, hs, hc in zip(arch.dec_ffn, arch.dec_self_heads, arch.dec_cross_heads):
        qs, qc = hs * HEAD_DIM, hc * HEAD_DIM
        macs += 3 * T * dd * qs + 2 * T * T * qs + T * qs * dd  # self-attention
        macs += T * dd * qc + 2 * S * de * qc + 2 * T * S * qc + T * qc * dd  # encoder-decoder attention
        macs += 2 * T * dd * f
    return float(macs + T * dd * len(TGT_VOCAB))


def _new_net(*args):
    """A fresh super-network; its torch module is imported here only, so search-only stages
    never import torch."""
    from linas_lib.supernets.nets.transformer_net import ElasticTransformer

    return ElasticTransformer(*args)


def beam_search(step_logits: Callable, n: int, device, beam: int = BEAM, lenpen: float = LENPEN):
    """Batched beam search as in fairseq: returns (n, TGT_LEN) token ids ending in </s>.

    `step_logits(tokens, parents)` takes the decoder input of all n*beam hypotheses,
    (n*beam, t) starting with <s>, and returns the logits of the next token, (n*beam, V);
    `parents` (n*beam,) says which row of the previous call each hypothesis extends (None
    on the first call), for callers that cache decoder state. A finished
    hypothesis scores its summed log-probability over len**lenpen (len counts </s>); a
    sentence stops collecting once it has `beam` finished hypotheses, and the best one wins.
    """
    import torch

    from linas_lib.supernets.data.numbers import BOS, EOS, PAD, TGT_LEN, UNK

    neg_inf = float("-inf")
    tokens = torch.full((n * beam, 1), BOS, dtype=torch.long, device=device)
    scores = torch.full((n, beam), neg_inf, device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    best = torch.full((n,), neg_inf, device=device)
    best_tokens = torch.full((n, TGT_LEN), PAD, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.long, device=device)
    rows = torch.arange(n, device=device)
    parents = None
    for step in range(TGT_LEN):
        lprobs = torch.log_softmax(step_logits(tokens, parents).float(), dim=-1)
        vocab = lprobs.shape[-1]
        lprobs[:, [PAD, BOS, UNK]] = neg_inf
        if step == TGT_LEN - 1:  # out of room: every hypothesis must end here
            keep = lprobs[:, EOS].clone()
            lprobs.fill_(neg_inf)
            lprobs[:, EOS] = keep
        cand = (scores.reshape(-1, 1) + lprobs).reshape(n, beam * vocab)
        top, idx = cand.topk(2 * beam, dim=1)
        origin, token = idx // vocab, idx % vocab
        prev = tokens.reshape(n, beam, -1)
        # finalize </s> among the best `beam` candidates of sentences still collecting
        is_eos = token == EOS
        fin = is_eos[:, :beam] & (finished < beam)[:, None] & torch.isfinite(top[:, :beam])
        norm = torch.where(fin, top[:, :beam] / float(step + 1) ** lenpen, torch.full_like(top[:, :beam], neg_inf))
        cand_best, j = norm.max(dim=1)
        better = cand_best > best
        if better.any():
            hyp = prev[rows, origin[rows, j], 1:]  # generated tokens, without <s>
            b = rows[better]
            best[b] = cand_best[b]
            best_tokens[b, :step] = hyp[better]
            best_tokens[b, step] = EOS
        finished += fin.sum(dim=1)
        if step == TGT_LEN - 1 or bool((finished >= beam).all()):
            break
        # continue with the best `beam` candidates that did not end
        order = torch.argsort(is_eos.to(torch.int8) * 2 * beam + torch.arange(2 * beam, device=device), dim=1)[:, :beam]
        scores = top.gather(1, order)
        origin, token = origin.gather(1, order), token.gather(1, order)
        tokens = torch.cat([prev[rows[:, None], origin], token[..., None]], dim=2).reshape(n * beam, -1)
        parents = (rows[:, None] * beam + origin).reshape(-1)
    return best_tokens


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    try:
        import sacrebleu
    except ImportError:
        raise RuntimeError("BLEU needs sacrebleu; run `pip install sacrebleu==2.6.0`") from None
    # already tokenized (German morphemes separated by spaces)
    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score)


@supernet_registry.register("transformer")
class TransformerSupernet(TrainedOnce):
    """Plugin for the elastic Transformer on En->De numbers; parameters set the budget."""

    quality_metric = "bleu"
    name, kind = "transformer", "a transformer checkpoint"
    recipe_keys = ("steps", "batch_size", "lr", "random_subnets", "label_smoothing", "train_sentences", "max_digits",
                   "seed")

    def __init__(
        self,
        steps: int = 600,
        batch_size: int = 64,
        lr: float = 2e-3,
        random_subnets: int = 1,
        label_smoothing: float = 0.1,
        train_sentences: int = 8000,
        test_sentences: int = 500,
        max_digits: int = 12,
        eval_batch: int = 100,
        seed: int = 0,
        threads: int | None = None,
        progress: bool = True,
    ):
        self.steps, self.batch_size, self.lr, self.random_subnets = steps, batch_size, lr, random_subnets
        self.label_smoothing, self.train_sentences, self.test_sentences = label_smoothing, train_sentences, test_sentences
        self.max_digits = max_digits  # numbers of 3..max_digits digits (12: up to 999 billion); fewer: easier
        self.eval_batch, self.seed, self.progress = eval_batch, seed, progress
        self.threads = threads  # torch CPU threads while training/scoring (None: torch's default)
        self.space = build_space()
        self._data = None  # loaded on first use

    @staticmethod
    def search_space(**_: Any) -> SearchSpace:
        return build_space()

    # ---- data ---------------------------------------------------------------
    def _splits(self):
        if self._data is None:
            from linas_lib.supernets import cache_dir
            from linas_lib.supernets.data.numbers import load_numbers

            self._data = load_numbers(self.train_sentences, self.test_sentences, seed=0, cache_dir=cache_dir(),
                                      max_digits=self.max_digits)
        return self._data

    # ---- weights (prepare, train and load come from TrainedOnce) ---------------
    def architecture(self) -> list:
        # v2: numbers up to 10^12 (24-token phrases), 36/37-token vocabularies
        return [EMBED_DIMS, FFN_DIMS, HEADS, HEAD_DIM, ENCODER_LAYERS, DECODER_LAYERS, "numbers-en-de-v2"]

    def build(self, payload: dict):
        return _new_net()

    def fit(self):
        import torch
        import torch.nn.functional as F
        from tqdm.auto import tqdm

        from linas_lib.supernets.data.numbers import PAD

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        device = eval_device()
        train, _ = self._splits()
        src, tgt_in, tgt_out = (torch.from_numpy(a).to(device) for a in (train.src, train.tgt_in, train.tgt_out))
        src_len, tgt_len = (train.src != PAD).sum(1), (train.tgt_out != PAD).sum(1)
        net = _new_net().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=self.steps, pct_start=0.1)
        net.train()
        bar = tqdm(total=self.steps, desc="train transformer (sandwich rule)", disable=not self.progress, unit="step")
        for _ in range(self.steps):
            rows = rng.integers(0, len(src), size=self.batch_size)
            ls, lt = int(src_len[rows].max()), int(tgt_len[rows].max())  # columns of padding only cost time
            idx = torch.from_numpy(rows).to(device)
            s, ti, to = src[idx, :ls], tgt_in[idx, :lt], tgt_out[idx, :lt]
            opt.zero_grad(set_to_none=True)
            archs = [largest_arch()] + [decode(self.space, e) for e in self.space.sample(self.random_subnets, rng)]
            for k, arch in enumerate(archs):
                logits = net(s, ti, arch)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), to.reshape(-1),
                                       ignore_index=PAD, label_smoothing=self.label_smoothing)
                loss.backward()
                if k == 0:
                    largest_loss = loss.item()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{largest_loss:.3f}")
            bar.update()
        bar.close()
        return net, {}

    # ---- sub-networks -------------------------------------------------------
    def subnet(self, encoding: np.ndarray):
        """The static sub-network in eval mode (on the evaluation device)."""
        return self._require_net().extract(decode(self.space, encoding))

    def translate(self, module, src: np.ndarray) -> list[str]:
        """Beam-search translations (German morphemes joined by spaces) of source id rows."""
        import torch

        from linas_lib.supernets.data.numbers import PAD, TGT_VOCAB

        device = next(module.parameters()).device
        out: list[str] = []
        with torch.no_grad():
            for chunk in torch.from_numpy(src).split(self.eval_batch):
                chunk = chunk[:, : int((chunk != PAD).sum(1).max())].to(device)  # drop padding-only columns
                memory, mask = module.encode(chunk)
                cache = module.init_cache(memory.repeat_interleave(BEAM, 0), mask.repeat_interleave(BEAM, 0))

                def step_logits(tokens, parents, cache=cache):
                    if parents is not None:
                        module.reorder_cache(cache, parents)
                    return module.decode_step(tokens, cache)

                ids = beam_search(step_logits, len(chunk), device)
                out += [" ".join(TGT_VOCAB.decode(row)) for row in ids.cpu().numpy()]
        return out

    def evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        with torch_threads(self.threads):
            return self._evaluate(encodings)

    def _evaluate(self, encodings: np.ndarray) -> list[dict[str, float]]:
        _, test = self._splits()
        results = []
        for encoding in self.space.canonicalize(encodings):
            module = self.subnet(encoding)
            bleu = corpus_bleu(self.translate(module, test.src), list(test.references))
            params = float(sum(p.numel() for p in module.parameters()))
            results.append({"bleu": bleu, "macs": count_macs(decode(self.space, encoding)), "params": params})
        return results

    def export_module(self, encoding: np.ndarray, batch_size: int):
        """Static CPU module: forward(src (B, SRC_LEN), tgt_in (B, TGT_LEN)) -> logits, one
        teacher-forced pass of encoder and decoder; inputs are real test sentences."""
        import torch

        module = self.subnet(self.space.canonicalize(encoding)[0]).cpu()
        _, test = self._splits()
        idx = np.arange(batch_size) % len(test.src)
        return module, (torch.from_numpy(test.src[idx]), torch.from_numpy(test.tgt_in[idx]))

    def calibration_inputs(self, batch_size: int, n_batches: int):
        import torch

        train, _ = self._splits()
        idx = np.random.default_rng(12345).permutation(len(train.src))[: batch_size * n_batches]
        src, tgt = torch.from_numpy(train.src[idx]), torch.from_numpy(train.tgt_in[idx])
        return [(s, t) for s, t in zip(src.split(batch_size), tgt.split(batch_size)) if len(s) == batch_size]

    def evaluate_exported(self, encoding: np.ndarray, run) -> dict[str, float]:
        """BLEU when `run(src, tgt_in) -> logits` is the exported forward pass: beam search
        feeds it right-padded (SRC_LEN, TGT_LEN) inputs and reads the logits at the current
        position. Every call has the same batch, eval_batch // 5 sentences times 5 beams."""
        import torch

        from linas_lib.supernets.data.numbers import PAD, TGT_LEN, TGT_VOCAB

        _, test = self._splits()
        per_call = max(1, self.eval_batch // BEAM)
        hyps: list[str] = []
        for start in range(0, len(test.src), per_call):
            chunk = test.src[start : start + per_call]
            real = len(chunk)
            if real < per_call:  # keep the batch fixed: repeat the last sentence
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], per_call - real, axis=0)])
            src = np.repeat(chunk, BEAM, axis=0)

            def step_logits(tokens, parents):
                t = tokens.shape[1]
                padded = np.full((tokens.shape[0], TGT_LEN), PAD, dtype=np.int64)
                padded[:, :t] = tokens.cpu().numpy()
                return torch.from_numpy(np.asarray(run(src, padded))[:, t - 1].astype(np.float32))

            ids = beam_search(step_logits, per_call, torch.device("cpu"))
            hyps += [" ".join(TGT_VOCAB.decode(row)) for row in ids.numpy()[:real]]
        return {"bleu": corpus_bleu(hyps, list(test.references))}
