"""The elastic NeuMF plugin: space, training, HR@10, static export and ONNX (checkpoints:
test_checkpoints.py)."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from linas_lib.supernets import build_supernet, supernet_names, supernet_space

torch = pytest.importorskip("torch")
pytest.importorskip("recbole", reason="MovieLens-100k ships in the recbole wheel (pip install --no-deps recbole)")

from linas_lib.supernets import ncf  # noqa: E402

SPACE = supernet_space("ncf")
# A tiny budget: 12k positives for one epoch (~60 steps) is enough to beat chance. Scoring
# the largest network on all 943 users costs ~0.5 TMACs, so the tests rank 300 users' items.
TINY = dict(epochs=1, batch_size=1024, lr=2e-3, train_limit=12000, eval_users=300, threads=1,
            progress=False)
# Somewhat longer: one epoch over all 99k positives (242 steps). On seeds 0-3 the largest
# network scored HR@10 0.28-0.43 (popularity alone: ~0.41; 8 epochs: ~0.62).
SHORT = dict(epochs=1, batch_size=2048, lr=3e-3, eval_users=300, threads=1, progress=False)


@pytest.fixture(scope="module")
def tiny(train_supernet):
    return train_supernet("ncf", **TINY)


def test_registered_and_space_hides_inactive_layer_genes():
    assert "ncf" in supernet_names()
    names = SPACE.names
    assert names[:3] == ["gmf.embed", "mlp.embed", "mlp.layers"] and len(names) == 3 + 6
    x = np.array([1, 2, 0, 3, 7, 7, 7, 7, 7])  # one MLP layer: l1..l5 do not exist
    canon = SPACE.canonicalize(x)[0]
    assert canon.tolist() == [1, 2, 0, 3, 0, 0, 0, 0, 0]
    y = x.copy()
    y[4:] = [1, 2, 3, 4, 5]
    assert SPACE.key(x) == SPACE.key(y)
    assert ncf.decode(SPACE, x) == ncf.Arch(16, 32, (64,))
    three = np.array([4, 4, 2, 7, 6, 5, 4, 4])
    assert SPACE.decode(np.r_[three, 0]) == {
        "gmf.embed": 128, "mlp.embed": 128, "mlp.layers": 3,
        "mlp.l0.hidden": 1024, "mlp.l1.hidden": 512, "mlp.l2.hidden": 256,
    }
    assert ncf.decode(SPACE, SPACE.upper) == ncf.largest_arch()


def test_tiny_training_beats_chance_and_reports_complexity(tiny, linas_cache):
    X = np.vstack([SPACE.canonicalize(SPACE.upper), SPACE.sample(3, 0)])
    results = tiny.evaluate(X)
    for row in results:
        assert set(row) == {"hr@10", "macs", "params"}
        assert 0.0 <= row["hr@10"] <= 1.0
    # chance: 10 of 100 candidates (0.10); measured 0.36-0.42 for the largest network
    assert results[0]["hr@10"] > 0.2
    assert np.mean([row["hr@10"] for row in results]) > 0.2
    # MACs and params follow the architecture; embeddings dominate the parameters.
    largest = results[0]
    arch = ncf.largest_arch()
    assert largest["macs"] == ncf.count_macs_params(arch)[0]
    assert largest["params"] == (943 + 1682) * 256 + 257 * 1024 + 5 * 1025 * 1024 + 1153
    small = tiny.evaluate(np.zeros((1, SPACE.n_var), dtype=int))[0]
    assert small["macs"] < largest["macs"] and small["params"] < largest["params"]
    # the cached checkpoint is reused (same training signature), with its digest sidecar
    again = build_supernet("ncf", **TINY)
    assert again.prepare(None, str(linas_cache)) == tiny.prepare(None, str(linas_cache))


def test_static_subnet_matches_the_elastic_forward(tiny):
    users = torch.arange(0, 64)
    items = torch.arange(100, 164)
    for x in SPACE.sample(3, 1):
        arch = ncf.decode(SPACE, x)
        with torch.no_grad():
            expected = tiny._net(users, items, arch)
        static = tiny.subnet(x)
        assert not static.training
        torch.testing.assert_close(static(users, items), expected, rtol=1e-5, atol=1e-5)


def test_export_module_onnx_and_exported_scoring(tiny):
    ort = pytest.importorskip("onnxruntime")
    x = SPACE.sample(1, 3)[0]
    module, inputs = tiny.export_module(x, batch_size=16)
    users, items = inputs
    assert users.shape == items.shape == (16,) and users.dtype == items.dtype == torch.int64
    with torch.no_grad():
        out = module(*inputs)
    assert out.shape == (16,)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, buf, dynamo=False, input_names=["user_ids", "item_ids"],
                          dynamic_axes={"user_ids": {0: "batch"}, "item_ids": {0: "batch"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"user_ids": users.numpy(), "item_ids": items.numpy()})
    np.testing.assert_allclose(onnx_out, out.numpy(), rtol=1e-4, atol=1e-5)

    def run(u, i):
        return session.run(None, {"user_ids": np.asarray(u), "item_ids": np.asarray(i)})[0]

    exported = tiny.evaluate_exported(x, run)
    assert exported["hr@10"] == pytest.approx(tiny.evaluate(x[None, :])[0]["hr@10"], abs=0.01)
    batches = tiny.calibration_inputs(batch_size=32, n_batches=3)
    assert len(batches) == 3 and all(u.shape == i.shape == (32,) for u, i in batches)


def test_largest_subnet_after_short_training(train_supernet):
    plugin = train_supernet("ncf", **SHORT)
    (largest,) = plugin.evaluate(SPACE.upper[None, :])
    assert 0.25 <= largest["hr@10"] <= 0.55
