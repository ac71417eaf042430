"""The checkpoint code the built-in super-networks share (linas_lib.supernets.checkpoints)."""
from __future__ import annotations

import hashlib

import pytest

from linas_lib.supernets import build_supernet
from linas_lib.supernets.checkpoints import (
    CheckpointError,
    TrainedOnce,
    digest_matches,
    file_digest,
    params_digest,
    save_checkpoint,
    sidecar,
    torch_threads,
)

torch = pytest.importorskip("torch")

# name -> (how errors name its checkpoints, payload extras `build` needs)
TRAINED_ONCE = {
    "elastic_cnn": ("not an elastic_cnn checkpoint", {}),
    "ncf": ("not an ncf checkpoint", {"n_users": 3, "n_items": 5}),
    "transformer": ("not a transformer checkpoint", {}),
}


def test_save_checkpoint_writes_atomically_with_a_digest_sidecar(tmp_path):
    path = tmp_path / "sub" / "net-abc.pt"
    assert save_checkpoint(path, {"state_dict": {"w": torch.ones(3)}}) == str(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["net-abc.pt", "net-abc.pt.sha256"]
    assert sidecar(path).read_text() == file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest_matches(path, require_sidecar=True)
    sidecar(path).write_text("0" * 64)
    assert not digest_matches(path)
    sidecar(path).unlink()
    assert digest_matches(path) and not digest_matches(path, require_sidecar=True)


def test_equal_weights_give_equal_checkpoint_digests_wherever_and_whenever_saved(tmp_path):
    """The digest keys the evaluation cache: two clones that train the same weights (the
    recipe is deterministic) must write the same bytes, whatever the file or process."""
    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "signature": "abc"}
    first = save_checkpoint(tmp_path / "a" / "elastic_cnn-abc.pt", payload)
    second = save_checkpoint(tmp_path / "b" / "other-name.pt", payload)
    assert file_digest(first) == file_digest(second)
    assert torch.equal(torch.load(first, weights_only=True)["state_dict"]["w"], payload["state_dict"]["w"])


def test_params_digest_is_stable_and_order_free():
    assert params_digest({"a": 1, "b": [2, 3]}) == params_digest({"b": (2, 3), "a": 1})
    assert params_digest({"a": 1}) != params_digest({"a": 2}) and len(params_digest({})) == 12


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("name", sorted(TRAINED_ONCE))
def test_checkpoints_are_checked_and_digested_on_load(name, tmp_path):
    """Missing, foreign and tampered files are clear errors; a good one sets checkpoint_digest."""
    foreign_message, extras = TRAINED_ONCE[name]
    plugin = build_supernet(name, progress=False)
    assert isinstance(plugin, TrainedOnce) and plugin.checkpoint_digest is None
    with pytest.raises(CheckpointError, match="no weights loaded"):
        plugin.subnet(plugin.space.upper)
    with pytest.raises(CheckpointError, match="does not exist"):
        plugin.load(str(tmp_path / "nope.pt"))
    with pytest.raises(CheckpointError, match="does not exist"):
        plugin.prepare(str(tmp_path / "nope.pt"), str(tmp_path))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match=foreign_message):
        plugin.load(str(foreign))
    # an untrained network of the right architecture loads; its sidecar guards it
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"state_dict": plugin.build(extras).state_dict(), **extras})
    plugin.load(str(good))
    assert plugin.checkpoint_digest == hashlib.sha256(good.read_bytes()).hexdigest()
    assert plugin.prepare(str(good), str(tmp_path)) == str(good)
    sidecar(good).write_text("0" * 64)
    with pytest.raises(CheckpointError, match="sha256"):
        plugin.load(str(good))
