"""Weights in and out: nested dicts, DDP prefixes, safetensors, strict mismatches, no code execution."""

import os
import pickle

import pytest
import torch

import deepres
from deepres.errors import WeightsError
from deepres.models import load_weights, save_weights


@pytest.fixture
def pair():
    torch.manual_seed(0)
    return deepres.create_model("resnet20"), deepres.create_model("resnet20")


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"model": s, "optimizer": {"lr": 0.1}},
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
        lambda s: {f"_orig_mod.{k}": v for k, v in s.items()},
    ],
)
def test_load_plain_nested_and_prefixed_state_dicts(tmp_path, pair, wrap):
    src, dst = pair
    assert not _same(src, dst)
    path = tmp_path / "w.pth"
    torch.save(wrap(src.state_dict()), path)
    load_weights(dst, path)
    assert _same(src, dst)


def test_safetensors_round_trip(tmp_path, pair):
    src, dst = pair
    path = save_weights(src, tmp_path / "w.safetensors")
    assert path.read_bytes()[8:9] == b"{"
    load_weights(dst, path)
    assert _same(src, dst)


def test_safetensors_recognised_by_content(tmp_path, pair):
    src, dst = pair
    os.rename(save_weights(src, tmp_path / "w.safetensors"), tmp_path / "w.bin")
    load_weights(dst, tmp_path / "w.bin")
    assert _same(src, dst)


def test_create_model_with_weights(tmp_path, pair):
    src, _ = pair
    path = save_weights(src, tmp_path / "w.pt")
    assert _same(src, deepres.create_model("resnet20", weights=str(path)))


def test_strict_mismatch_lists_missing_unexpected_and_misshaped(tmp_path):
    state = deepres.create_model("resnet20", num_classes=100).state_dict()
    del state["layer3.2.bn2.weight"]
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    model = deepres.create_model("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        load_weights(model, path)
    msg = str(info.value)
    assert "1 missing (layer3.2.bn2.weight)" in msg
    assert "1 unexpected (extra.weight)" in msg
    assert "2 mis-shaped (fc.weight: file (100, 64) vs model (10, 64), fc.bias" in msg
    assert "\n" not in msg
    assert info.value.misshaped == ["fc.weight", "fc.bias"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_non_strict_loads_what_matches(tmp_path):
    src = deepres.create_model("resnet20", num_classes=100)
    path = save_weights(src, tmp_path / "w.pt")
    dst = deepres.create_model("resnet20")
    report = load_weights(dst, path, strict=False)
    assert report["misshaped"] == ["fc.weight", "fc.bias"]
    assert torch.equal(dst.conv1.weight, src.conv1.weight)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")  # the hostile file's protocol, as meant
def test_loading_never_runs_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Exploit()}, f)
    with pytest.raises(WeightsError, match="refused to load"):
        load_weights(deepres.create_model("resnet20"), path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a PyTorch checkpoint"),
        (b"hello, I am a text file\n", "not a PyTorch checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path, content, match):
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match):
        load_weights(deepres.create_model("resnet20"), path)


def test_checkpoint_without_a_state_dict(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(WeightsError, match="found no state dict.*epoch, lr"):
        load_weights(deepres.create_model("resnet20"), path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        load_weights(deepres.create_model("resnet20"), tmp_path / "nope.pt")


def test_save_is_atomic(tmp_path, pair):
    src, _ = pair
    path = save_weights(src, tmp_path / "w.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]  # no temporary left behind
    assert path.stat().st_size > 0


def test_a_runs_reported_weights_are_what_fine_tuning_starts_from(tmp_path):
    """eval, predict and export use a run's moving average where it kept one; so does --init-weights
    (deepres.load_weights): one rule, in one place."""
    from deepres.models.weights import read_state_dict
    from deepres.train.checkpoint import FORMAT, reported_weights

    model, ema = deepres.create_model("resnet20").state_dict(), deepres.create_model("resnet20").state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in ema.items()}
    ckpt = {"format": FORMAT, "model": model, "ema": ema}
    torch.save(ckpt, tmp_path / "last.pt")
    loaded = read_state_dict(tmp_path / "last.pt")
    assert all(torch.equal(loaded[k], ema[k]) for k in ema) and reported_weights(ckpt) is ema
    torch.save({**ckpt, "ema": None}, tmp_path / "plain.pt")  # no moving average: the weights themselves
    assert all(torch.equal(read_state_dict(tmp_path / "plain.pt")[k], model[k]) for k in model)
