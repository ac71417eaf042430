"""The OFA plugins (ofa_mbv3, ofa_resnet50): spaces, weight sharing, checkpoints, export.

No real OFA weights are needed: checkpoints are saved from freshly initialised networks
of the same architecture, so the loading code that reads the released weights is real.
"""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from linas_lib.api.supernet import SuperNetwork
from linas_lib.supernets import build_supernet, supernet_names, supernet_space
from linas_lib.supernets.checkpoints import CheckpointError
from linas_lib.supernets.ofa import DataRequiredError, WeightsRequiredError

RES = {"ofa_mbv3": 128, "ofa_resnet50": 64}  # small inputs keep the suite fast


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions on a shared 2-core machine: threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def untrained(name, cache, **params):
    params = {"resolution": RES[name], "synthetic_batches": 1, "synthetic_batch_size": 4, **params}
    plugin = build_supernet(name, **params)
    plugin.load(plugin.prepare(None, cache))
    return plugin


@pytest.fixture(scope="module")
def mbv3(cache):
    return untrained("ofa_mbv3", cache)


@pytest.fixture(scope="module")
def resnet(cache):
    return untrained("ofa_resnet50", cache)


@pytest.fixture
def plugins(mbv3, resnet):
    return {"ofa_mbv3": mbv3, "ofa_resnet50": resnet}


def save_fresh(plugin, path, seed, key_map=lambda k: k):
    """A checkpoint in OFA's release format ({'state_dict': ...}) from a freshly initialised
    network of the same architecture, every float tensor perturbed so that loading shows."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in plugin.network.state_dict().items():
        value = value.clone()
        if value.is_floating_point():
            value.add_(0.01 * torch.randn(value.shape, generator=gen)).abs_()
        state[key] = value
    torch.save({"state_dict": {key_map(k): v for k, v in state.items()}, "epoch": 0}, path)
    return state


def onnx_run(module, example):
    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buf, dynamo=False, input_names=["input"], opset_version=17)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": example[0].numpy()})[0]


# ---- spaces ---------------------------------------------------------------------------------
def test_registered_and_spaces_need_no_torch():
    assert {"ofa_mbv3", "ofa_resnet50"} <= set(supernet_names())
    code = (
        "import sys; from linas_lib.supernets import supernet_space as s; "
        "print(s('ofa_mbv3').n_var, s('ofa_resnet50').n_var, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["45", "29", "False"]


def test_mbv3_space_has_45_genes_with_block_genes_conditional_on_stage_depth():
    space = supernet_space("ofa_mbv3")
    assert space.n_var == 45
    depth_genes = [v for v in space.variables if v.name.endswith(".depth")]
    assert [v.name for v in depth_genes] == [f"s{s}.depth" for s in range(5)]
    assert all(v.options == (2, 3, 4) for v in depth_genes)
    kernels = [v for v in space.variables if v.name.endswith(".kernel")]
    expands = [v for v in space.variables if v.name.endswith(".expand")]
    assert len(kernels) == len(expands) == 20
    assert all(v.options == (3, 5, 7) for v in kernels) and all(v.options == (3, 4, 6) for v in expands)
    conditional = {v.name: v.active_when for v in space.variables if v.active_when}
    assert conditional["s0.b2.kernel"].variable == "s0.depth" and conditional["s0.b2.kernel"].at_least == 3
    assert conditional["s4.b3.expand"].at_least == 4 and "s0.b1.kernel" not in conditional
    # Depth 2 everywhere: the genes of blocks 3 and 4 are canonicalized away.
    x = space.canonicalize(np.array([0 if v.name.endswith("depth") else 1 for v in space.variables]))[0]
    assert space.active_mask(x)[0].sum() == 5 + 5 * 2 * 2


def test_resnet_space_follows_ofa_resnets():
    space = supernet_space("ofa_resnet50")
    values = {v.name: v.options for v in space.variables}
    assert space.n_var == 29
    assert values["stem.depth"] == (0, 2)
    assert values["stem.mid_width"] == (0.65, 1.0)  # 0.8 gives the same 24 channels as 0.65
    assert values["stem.width"] == values["s0.width"] == (0.65, 0.8, 1.0)
    assert all(values[f"s{s}.depth"] == (0, 1, 2) for s in range(4))
    expands = [n for n in values if n.endswith(".expand")]
    assert len(expands) == 4 + 4 + 6 + 4 and all(values[n] == (0.2, 0.25, 0.35) for n in expands)
    conditional = {v.name: (v.active_when.variable, v.active_when.at_least) for v in space.variables if v.active_when}
    assert conditional == {"s0.b2.expand": ("s0.depth", 1), "s0.b3.expand": ("s0.depth", 2),
                           "s1.b2.expand": ("s1.depth", 1), "s1.b3.expand": ("s1.depth", 2),
                           "s2.b4.expand": ("s2.depth", 1), "s2.b5.expand": ("s2.depth", 2),
                           "s3.b2.expand": ("s3.depth", 1), "s3.b3.expand": ("s3.depth", 2)}


def test_encodings_map_to_ofa_set_active_subnet_arguments(mbv3, resnet):
    largest = mbv3.ofa_config(mbv3.space.upper)
    assert largest == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}
    cfg = resnet.ofa_config(resnet.space.canonicalize(np.zeros(resnet.space.n_var, dtype=int))[0])
    assert cfg["d"] == [0, 0, 0, 0, 0] and cfg["w"] == [0, 0, 0, 0, 0, 0] and len(cfg["e"]) == 18
    arch = resnet.decode(resnet.space.upper)
    assert (arch.stem_mid, arch.stem_out, arch.widths) == (32, 64, (256, 512, 1024, 2048))


# ---- weight sharing ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ofa_mbv3", "ofa_resnet50"])
def test_extracted_subnetworks_compute_what_the_supernetwork_computes(name, plugins):
    plugin = plugins[name]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    X = np.vstack([plugin.space.canonicalize(plugin.space.upper), plugin.space.sample(1, rng=1)])
    with torch.no_grad():
        for encoding in X:
            static = plugin.static(encoding)
            assert not static.training
            torch.testing.assert_close(static(x), plugin.network(x, plugin.decode(encoding)), rtol=1e-4, atol=1e-6)
    large, small = plugin.complexity(X)
    assert 0 < small["macs"] < large["macs"] and 0 < small["params"] < large["params"]


def test_smaller_kernels_go_through_the_kernel_transformation_matrices(mbv3):
    dw = mbv3.network.blocks[1].conv.depth_conv.conv
    with torch.no_grad():
        k5 = dw.filter(8, 5).clone()
        centre = dw.conv.weight[:8, :, 1:6, 1:6]
        torch.testing.assert_close(k5, centre)  # identity transform at initialisation
        dw.get_parameter("7to5_matrix").mul_(2.0)
        torch.testing.assert_close(dw.filter(8, 5), 2 * centre)
        torch.testing.assert_close(dw.filter(8, 3), 2 * dw.conv.weight[:8, :, 2:5, 2:5])
        dw.get_parameter("7to5_matrix").mul_(0.5)


# ---- checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ofa_mbv3", "ofa_resnet50"])
def test_checkpoint_saved_from_a_fresh_network_loads(name, plugins, tmp_path, cache):
    path = tmp_path / f"{name}.pth"
    state = save_fresh(plugins[name], path, seed=3)
    plugin = build_supernet(name, resolution=RES[name])
    plugin.load(plugin.prepare(path.as_uri(), cache))  # a file:// URI
    assert plugin.trained and plugin.checkpoint_digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = plugin.network.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())


def test_checkpoint_with_older_ofa_key_names_loads(mbv3, tmp_path):
    """Early OFA releases saved `.mobile_inverted_conv.` and un-nested `bn.` names."""
    path = tmp_path / "old.pth"

    def old_name(key):
        if key.startswith("blocks."):
            key = key.replace(".conv.", ".mobile_inverted_conv.", 1)
        return "module." + key.replace(".bn.bn.", ".bn.")

    state = save_fresh(mbv3, path, seed=4, key_map=old_name)
    plugin = build_supernet("ofa_mbv3")
    plugin.load(str(path))
    loaded = plugin.network.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_foreign_or_broken_checkpoints_are_clear_errors(mbv3, tmp_path, cache):
    resnet_like = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"input_stem.0.conv.conv.weight": torch.zeros(32, 3, 3, 3)}}, resnet_like)
    mbv3 = build_supernet("ofa_mbv3")
    with pytest.raises(CheckpointError, match=r"is not a ofa_mbv3 .*weights missing.*1 unknown keys"):
        mbv3.load(str(resnet_like))
    ckpt = tmp_path / "mbv3.pth"
    torch.save({"state_dict": build_supernet("ofa_mbv3")._new_network().state_dict()}, ckpt)
    with pytest.raises(CheckpointError, match="does not exist"):
        mbv3.prepare(str(tmp_path / "missing.pth"), cache)
    other = tmp_path / "elastic.pt"
    torch.save({"state_dict": {"stem.0.weight": torch.zeros(16, 1, 3, 3)}}, other)
    with pytest.raises(CheckpointError, match="is not a ofa_mbv3"):
        mbv3.load(str(other))
    wrong_shape = tmp_path / "w12.pth"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    state["classifier.linear.weight"] = torch.zeros(10, 1280)
    torch.save(state, wrong_shape)
    with pytest.raises(CheckpointError, match=r"classifier.linear.weight has shape \(10, 1280\)"):
        mbv3.load(str(wrong_shape))
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        mbv3.load(str(text))


# ---- without weights: latency only ---------------------------------------------------------
def test_untrained_network_refuses_accuracy_with_a_clear_error(mbv3, cache):
    assert not mbv3.trained
    # no file holds the weights: the digest names what determines them
    assert mbv3.checkpoint_digest == "untrained:ofa_mbv3_d234_e346_k357_w1.0:classes1000:seed0"
    marker = mbv3.prepare(None, cache)
    assert json.loads(open(marker).read())["supernet"] == "ofa_mbv3"
    with pytest.raises(WeightsRequiredError, match=r"accuracy needs the trained OFA weights \(ofa_mbv3_d234_e346"):
        mbv3.evaluate(mbv3.space.sample(1, rng=0))
    with pytest.raises(WeightsRequiredError, match="supernet.checkpoint"):
        mbv3.evaluate_exported(mbv3.space.upper, lambda x: x)
    assert mbv3.complexity(mbv3.space.upper)[0]["macs"] > 0  # needs no weights


def test_untrained_marker_is_for_its_own_supernet(cache):
    marker = build_supernet("ofa_resnet50").prepare(None, cache)
    with pytest.raises(CheckpointError, match="untrained 'ofa_resnet50'"):
        build_supernet("ofa_mbv3").load(marker)


@pytest.mark.parametrize("name", ["ofa_mbv3", "ofa_resnet50"])
def test_export_runs_in_onnxruntime_with_recalibrated_batch_norm(name, plugins):
    plugin = plugins[name]
    assert isinstance(plugin, SuperNetwork)
    res = plugin.resolution
    encoding = plugin.space.sample(1, rng=7)[0]
    module, example = plugin.export_module(encoding, batch_size=2)
    assert not module.training and tuple(example[0].shape) == (2, 3, res, res)
    with torch.no_grad():
        expected = module(*example).numpy()
    # he_fout init alone gives ~1e-11 logits (denormals, meaningless INT8); recalibrated
    # batch norm keeps activations at unit scale.
    assert expected.shape == (2, 1000) and np.isfinite(expected).all() and expected.std() > 1e-3
    np.testing.assert_allclose(onnx_run(module, example), expected, rtol=1e-3, atol=1e-4)
    batches = plugin.calibration_inputs(batch_size=2, n_batches=2)
    assert len(batches) == 2 and tuple(batches[0][0].shape) == (2, 3, res, res)


# ---- with weights and data ---------------------------------------------------------------
def test_accuracy_with_a_checkpoint_and_labelled_images(mbv3, tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "images.npz"
    np.savez(data, x=rng.integers(0, 256, size=(12, 48, 48, 3), dtype=np.uint8), y=rng.integers(0, 1000, size=12))
    ckpt = tmp_path / "mbv3.pth"
    save_fresh(mbv3, ckpt, seed=6)
    plugin = build_supernet("ofa_mbv3", resolution=64, batch_size=6, calibration_images=12)
    plugin.load(str(ckpt))
    encoding = plugin.space.sample(1, rng=2)[0]
    with pytest.raises(DataRequiredError, match="supernet.params.data"):
        plugin.evaluate(encoding[None, :])

    plugin = build_supernet("ofa_mbv3", resolution=64, batch_size=6, calibration_images=12, data=str(data))
    plugin.load(str(ckpt))
    (row,) = plugin.evaluate(encoding[None, :])
    assert set(row) == {"accuracy", "macs", "params"} and 0.0 <= row["accuracy"] <= 1.0
    module = plugin.subnet(encoding)  # recalibrated on the same images: the same network

    def run(x):
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    assert plugin.evaluate_exported(encoding, run)["accuracy"] == row["accuracy"]
    (x,), = plugin.calibration_inputs(batch_size=4, n_batches=1)
    assert tuple(x.shape) == (4, 3, 64, 64)


def test_image_folder_is_read_like_imagenet_validation(tmp_path):
    from PIL import Image

    from linas_lib.supernets.ofa.data import IMAGENET_MEAN, IMAGENET_STD, open_images

    for c, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        (tmp_path / f"n0{c}").mkdir()
        for i, size in enumerate([(80, 60), (50, 90)]):
            Image.new("RGB", size, colour).save(tmp_path / f"n0{c}" / f"img{i}.png")
    data = open_images(str(tmp_path), resolution=32)
    assert len(data) == 4 and data.classes == ["n00", "n01"]
    (x, y), = list(data.batches(8))
    assert tuple(x.shape) == (4, 3, 32, 32) and y.tolist() == [0, 0, 1, 1]
    red = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert float(x[0, 0].mean()) == pytest.approx(red, abs=1e-4)
    assert len(list(data.batches(2, limit=3))) == 2  # a fixed random subset of 3 images
