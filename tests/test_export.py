"""Exported models compute what the PyTorch model computes: ONNX Runtime within 1e-4 (fp32),
TorchScript and safetensors exactly."""

import json
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import cli
from deepres import create_model, load_weights
from deepres.export import export_model


def with_trained_statistics(model, size, seed=0):
    """BN running statistics measured on data, as training leaves them (fresh ones are 0 and 1), and
    non-trivial BN scales, so the comparison does not pass on a degenerate net."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, size, size, generator=g))
    return model.eval()


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


@pytest.mark.parametrize(
    "name, size",
    [("resnet20", 32), ("plain20", 32), ("resnet18", 64), ("resnet50", 64), ("resnext50_32x4d", 64),
     ("preact_resnet18", 64), ("se_resnet20", 32), ("resnet50d", 64)],
)  # fmt: skip
def test_onnx_runtime_matches_pytorch(name, size, tmp_path):
    model = with_trained_statistics(create_model(name), size)
    path = export_model(model, tmp_path / f"{name}.onnx", "onnx", (1, 3, size, size))
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))  # batch 4 through a dynamic axis
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_onnx(path, x)
    scale = np.abs(expected).max()
    assert got.shape == expected.shape and scale > 0.1
    # 1e-4 absolute for logits up to 1 (the trained checkpoint's test below is the absolute case).
    # Random 50-layer nets on noise give logits of ~2.5, where PyTorch's own fp32 result is 1.2e-4
    # away from the float64 truth (ONNX Runtime's 0.7e-4): the bound scales with the logits there.
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, scale)
    info = json.loads(path.with_name(path.name + ".json").read_text())
    assert info["input_shape"] == ["batch", 3, size, size]


def test_torchscript_and_safetensors_exports_are_exact(tmp_path):
    model = with_trained_statistics(create_model("resnet32"), 32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        scripted = torch.jit.load(str(export_model(model, tmp_path / "m.ts", "torchscript", (1, 3, 32, 32))))
        assert torch.equal(scripted(x), expected)
        fresh = create_model("resnet32").eval()
        load_weights(fresh, export_model(model, tmp_path / "m.safetensors", "safetensors", (1, 3, 32, 32)))
        assert torch.equal(fresh(x), expected)


def test_export_command_for_a_bare_model(tmp_path):
    out = tmp_path / "r20.onnx"
    result = cli("export", "resnet20", "--format", "onnx", "--out", out)
    assert result.returncode == 0, result.stderr
    assert run_onnx(out, torch.zeros(3, 3, 32, 32)).shape == (3, 10)


def test_export_rejects_what_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    result = cli("export", bogus)
    assert result.returncode != 0 and result.stderr.count("\n") == 1 and "notes.pt" in result.stderr
    assert not (tmp_path / "notes.onnx").exists()


def test_onnx_export_of_option_a_says_nothing(tmp_path):
    """Option A's strided shortcut slices cannot be constant-folded, and torch calls the exporter deprecated:
    torch warns of both on every export, which tells a user nothing. Those (and only those) are silenced."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_model(create_model("resnet20"), tmp_path / "r20.onnx", "onnx", (1, 3, 32, 32))
    assert [str(w.message) for w in caught] == []
