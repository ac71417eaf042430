"""The elastic Transformer plugin: space, data, checkpoints, training, BLEU, export and ONNX."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from linas_lib.supernets import build_supernet, supernet_names, supernet_space
from linas_lib.supernets.elastic_cnn import CheckpointError

torch = pytest.importorskip("torch")
pytest.importorskip("num2words")
pytest.importorskip("sacrebleu")

from linas_lib.supernets import transformer as tr  # noqa: E402
from linas_lib.supernets.data import numbers  # noqa: E402

SPACE = supernet_space("transformer")
# Tiny budgets train the largest network alone (no random sub-networks: ~2x cheaper a
# step); 1,500 training numbers keep num2words generation short (~1 s). Measured on
# seeds 0-2: 50 steps give the largest network BLEU 6-25, 150 steps 45-47.
BUDGET = dict(batch_size=32, random_subnets=0, train_sentences=1500, test_sentences=100, threads=1, progress=False)
TINY = dict(steps=50, **BUDGET)
SHORT = dict(steps=150, **BUDGET)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("linas-cache")
        mp.setenv("LINAS_CACHE", str(path))
        yield str(path)


def trained(cache: str, **params):
    plugin = build_supernet("transformer", **params)
    plugin.load(plugin.prepare(None, cache))
    return plugin


@pytest.fixture(scope="module")
def tiny(cache):
    return trained(cache, **TINY)


def test_number_phrases_reorder_and_split_into_morphemes():
    assert numbers.english_words(21) == ["twenty", "one"]
    assert numbers.german_words(21) == ["ein", "und", "zwanzig"]
    assert numbers.german_words(45678) == ["fünf", "und", "vierzig", "tausend", "sechs", "hundert",
                                           "acht", "und", "siebzig"]
    assert numbers.split_german("siebzehn") == ["siebzehn"] and numbers.split_german("dreißig") == ["dreißig"]
    with pytest.raises(ValueError, match="cannot split"):
        numbers.split_german("eine Million")


def test_registered_and_space_hides_inactive_decoder_layer_genes():
    assert "transformer" in supernet_names()
    assert SPACE.n_var == 2 + 2 * tr.ENCODER_LAYERS + 1 + 3 * max(tr.DECODER_LAYERS)
    x = SPACE.upper.copy()
    x[SPACE.names.index("dec.layers")] = 1  # two decoder layers: l2 and l3 do not exist
    canon = SPACE.canonicalize(x)[0]
    hidden = [i for i, n in enumerate(SPACE.names) if n.startswith(("dec.l2.", "dec.l3."))]
    kept = [i for i, n in enumerate(SPACE.names) if n.startswith(("dec.l0.", "dec.l1.", "enc."))]
    assert len(hidden) == 6 and (canon[hidden] == 0).all() and (canon[kept] == x[kept]).all()
    y = x.copy()
    y[hidden] = 0
    assert SPACE.key(x) == SPACE.key(y)
    arch = tr.decode(SPACE, x)
    assert len(arch.dec_ffn) == 2 and len(arch.enc_ffn) == tr.ENCODER_LAYERS
    assert tr.decode(SPACE, SPACE.upper) == tr.largest_arch()
    assert tr.decode(SPACE, np.zeros(SPACE.n_var, dtype=int)) == tr.smallest_arch()


def test_missing_and_foreign_checkpoints_fail_clearly(tmp_path):
    plugin = build_supernet("transformer", progress=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        plugin.load(str(tmp_path / "nope.pt"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a transformer checkpoint"):
        plugin.load(str(foreign))
    (tmp_path / "foreign.pt.sha256").write_text("0" * 64)
    with pytest.raises(CheckpointError, match="sha256"):
        plugin.load(str(foreign))


def test_tiny_training_gives_positive_bleu_and_complexity(tiny, cache):
    X = np.vstack([SPACE.canonicalize(SPACE.upper), np.zeros(SPACE.n_var, dtype=int)])
    largest, smallest = tiny.evaluate(X)
    for row in (largest, smallest):
        assert set(row) == {"bleu", "macs", "params"}
        assert 0.0 <= row["bleu"] <= 100.0
    assert largest["bleu"] > 1.0
    assert smallest["macs"] < largest["macs"] and smallest["params"] < largest["params"]
    # the cached checkpoint is reused (same training signature), with its digest sidecar
    again = build_supernet("transformer", **TINY)
    assert again.prepare(None, cache) == tiny.prepare(None, cache)
    assert largest["macs"] == tr.count_macs(tr.largest_arch())


def test_static_subnet_matches_the_elastic_forward_and_beam_search_is_sane(tiny):
    train, test = tiny._splits()
    src, tgt_in = torch.from_numpy(test.src[:8]), torch.from_numpy(test.tgt_in[:8])
    for x in SPACE.sample(3, 1):
        arch = tr.decode(SPACE, x)
        with torch.no_grad():
            expected = tiny._net(src, tgt_in, arch)
        static = tiny.subnet(x)
        assert not static.training
        torch.testing.assert_close(static(src, tgt_in), expected, rtol=1e-4, atol=1e-4)
    # greedy-equivalent sanity: beam search output is a well-formed sequence ending in </s>
    hyps = tiny.translate(tiny.subnet(SPACE.upper), test.src[:4])
    assert len(hyps) == 4 and all(isinstance(h, str) for h in hyps)


def test_export_module_onnx_and_exported_scoring(tiny):
    ort = pytest.importorskip("onnxruntime")
    x = SPACE.sample(1, 4)[0]
    module, inputs = tiny.export_module(x, batch_size=5)
    src, tgt_in = inputs
    assert src.shape == (5, numbers.SRC_LEN) and tgt_in.shape == (5, numbers.TGT_LEN)
    with torch.no_grad():
        out = module(*inputs)
    assert out.shape == (5, numbers.TGT_LEN, len(numbers.TGT_VOCAB))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, buf, dynamo=False, input_names=["src", "tgt_in"],
                          dynamic_axes={"src": {0: "batch"}, "tgt_in": {0: "batch"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"src": src.numpy(), "tgt_in": tgt_in.numpy()})
    np.testing.assert_allclose(onnx_out, out.numpy(), rtol=1e-3, atol=1e-3)

    def run(s, t):
        return session.run(None, {"src": np.asarray(s), "tgt_in": np.asarray(t)})[0]

    exported = tiny.evaluate_exported(x, run)["bleu"]
    assert exported == pytest.approx(tiny.evaluate(x[None, :])[0]["bleu"], abs=2.0)
    batches = tiny.calibration_inputs(batch_size=4, n_batches=2)
    assert len(batches) == 2 and all(s.shape == (4, numbers.SRC_LEN) for s, _ in batches)


def test_largest_subnet_after_short_training(cache):
    plugin = trained(cache, **SHORT)
    (largest,) = plugin.evaluate(SPACE.upper[None, :])
    assert 35.0 <= largest["bleu"] <= 70.0
