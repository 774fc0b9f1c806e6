"""Export a network for use outside deepres: ONNX (for ONNX Runtime and friends), TorchScript (for
C++/libtorch) or safetensors (weights only). Exports of a trained checkpoint include its input
normalisation, so they take plain RGB in [0, 1]; a JSON file beside the export says the input shape,
the class names and what the graph expects."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import DeepresError
from .io import write_bytes_atomic, write_text_atomic

FORMATS = {"onnx": ".onnx", "torchscript": ".ts", "safetensors": ".safetensors"}
ONNX_OPSET = 17


class Normalized(nn.Module):
    """``model((x - mean) / std)``: the preprocessing a checkpoint was trained with, inside the graph."""

    def __init__(self, model: nn.Module, mean: Tensor | None, std: Tensor | None) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.zeros(1) if mean is None else mean.float().clone())
        self.register_buffer("std", torch.ones(1) if std is None else std.float().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean) / self.std)


def onnx_bytes(model: nn.Module, example: Tensor) -> bytes:
    """The model as an ONNX graph (opset 17, dynamic batch size), via the TorchScript-based exporter,
    which needs only the onnx package (not onnxscript) and gives ONNX Runtime a plain, fully folded graph."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise DeepresError("ONNX export needs the onnx package: pip install 'deepres[export]'") from None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Option A's shortcut subsamples with strided slices, which the exporter cannot constant-fold;
        # it warns about each, on every export, which tells a user nothing.
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        # The TorchScript-based exporter is chosen on purpose (see above); torch's notices that it is
        # deprecated are for its own callers, and the export tests fail the day it is gone.
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            (example,),
            buf,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    return buf.getvalue()


def torchscript_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(model.eval()), buf)
    return buf.getvalue()


def export_model(
    model: nn.Module, path: str | os.PathLike, fmt: str, input_shape: tuple[int, ...], meta: dict | None = None
) -> Path:
    """Write ``model`` to ``path`` in ``fmt`` (atomically) and its description to ``path`` + '.json'."""
    from .models.weights import save_weights

    if fmt not in FORMATS:
        raise DeepresError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    path = Path(path)
    model = model.float().eval()
    with torch.no_grad():
        if fmt == "onnx":
            write_bytes_atomic(path, onnx_bytes(model, torch.zeros(1, *input_shape[1:])))
        elif fmt == "torchscript":
            write_bytes_atomic(path, torchscript_bytes(model))
        else:
            save_weights(model, path)
    info = {"format": fmt, "input_shape": ["batch", *input_shape[1:]], **(meta or {})}
    write_text_atomic(path.with_name(path.name + ".json"), json.dumps(info, indent=2) + "\n")
    return path


def export_checkpoint(ckpt: dict, path: str | os.PathLike, fmt: str, origin: str, raw: bool = False) -> Path:
    """Export a trained deepres checkpoint; unless ``raw``, with its normalisation in the graph."""
    from .train.checkpoint import model_from_checkpoint

    model, pipeline, classes = model_from_checkpoint(ckpt, origin)
    side = pipeline.eval_size or pipeline.image_size[0]
    if not side:
        raise DeepresError(f"{origin}: the checkpoint does not record its input size")
    shape = (1, ckpt["in_chans"], side, pipeline.eval_size or pipeline.image_size[1])
    normalized = not raw and fmt != "safetensors" and pipeline.normalize != "none"
    if normalized:
        model = Normalized(model, pipeline.mean, pipeline.std)
    meta = {
        "model": ckpt["model_name"],
        "model_options": ckpt["model_options"],
        "classes": classes,
        "input": "RGB (or gray) in [0, 1], NCHW float32" if normalized else "normalized NCHW float32",
        "preprocessing": {"normalize": pipeline.normalize, "resize": pipeline.resize, "crop": pipeline.crop},
    }
    return export_model(model, path, fmt, shape, meta)
