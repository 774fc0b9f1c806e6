"""Checkpoints: everything to resume a run exactly or to use its model, written atomically and read
without unpickling arbitrary objects (only tensors and plain containers)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..data.pipeline import Pipeline
from ..errors import DeepresError, WeightsError
from ..io import torch_bytes, write_bytes_atomic
from ..models.registry import create_model
from ..models.weights import load_state_dict_checked, read_checkpoint_file
from .rundir import RunDir

FORMAT = "deepres-checkpoint"
VERSION = 1
# The types of the fields that eval, predict, export and resume read (a crafted file may lie).
FIELDS = {"model_name": str, "model_options": dict, "in_chans": int, "classes": list, "pipeline": dict,
          "recipe": dict, "model": dict, "ema": (dict, type(None)), "step": int, "epoch": int}  # fmt: skip


def save_checkpoint(path: Path, state: dict) -> None:
    write_bytes_atomic(path, torch_bytes({"format": FORMAT, "version": VERSION, **state}))


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    obj = read_checkpoint_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise WeightsError(
            f"{path}: not a deepres checkpoint (for a plain state dict use deepres.load_weights(model, path))"
        )
    for key, kind in FIELDS.items():
        if key in obj and not isinstance(obj[key], kind):
            raise WeightsError(f"{path}: damaged deepres checkpoint: {key!r} is a {type(obj[key]).__name__}")
    for key in ("model", "ema"):
        if isinstance(obj.get(key), dict) and not all(isinstance(v, torch.Tensor) for v in obj[key].values()):
            raise WeightsError(f"{path}: damaged deepres checkpoint: {key!r} holds values that are not tensors")
    if isinstance(obj.get("classes"), list) and not all(isinstance(c, str) for c in obj["classes"]):
        raise WeightsError(f"{path}: damaged deepres checkpoint: 'classes' holds names that are not strings")
    return obj


def find_checkpoint(target: str | os.PathLike, which: str = "best") -> Path:
    """A checkpoint file, or the ``best.pt`` (else ``last.pt``) of a run directory."""
    path = Path(target)
    if path.is_dir():
        return RunDir(path).checkpoint(which)
    if not path.exists():
        raise DeepresError(f"{path}: no such checkpoint or run directory")
    return path


def load_target(target: str | os.PathLike, which: str = "best") -> tuple[dict, str]:
    """(checkpoint, its name for messages) of what eval, predict and export are pointed at: a
    checkpoint file, a run directory (its ``best.pt``, else ``last.pt``), or a pretrained net
    ``NET:TAG`` (``deepres.list_pretrained()``)."""
    from ..pretrained import is_pretrained_name, load_pretrained

    if is_pretrained_name(str(target)):
        return load_pretrained(str(target)), str(target)
    path = find_checkpoint(target, which)
    return load_checkpoint(path), str(path)


def reported_weights(ckpt: dict) -> dict:
    """The weights a run reports (validation, test, exports, fine-tuning): the moving average's where
    it kept one."""
    return ckpt["ema"] if ckpt.get("ema") else ckpt["model"]


def model_from_checkpoint(
    ckpt: dict, origin: str = "checkpoint", ema: bool = True
) -> tuple[nn.Module, Pipeline, list[str]]:
    """(model with the checkpoint's weights, its preprocessing, its class names)."""
    try:
        model = create_model(
            ckpt["model_name"], num_classes=len(ckpt["classes"]), in_chans=ckpt["in_chans"], **ckpt["model_options"]
        )
        state = reported_weights(ckpt) if ema else ckpt["model"]
        load_state_dict_checked(model, state, strict=True, origin=origin)
        if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
            raise DeepresError(f"{origin}: holds weights that are not finite numbers (NaN or inf): a diverged run")
        pipeline = Pipeline.from_state(ckpt["pipeline"])
    except KeyError as e:
        raise DeepresError(f"{origin}: incomplete deepres checkpoint (no {e.args[0]!r})") from None
    except (TypeError, ValueError) as e:  # a pipeline or model option of the wrong kind
        raise DeepresError(f"{origin}: damaged deepres checkpoint ({e})") from None
    return model.eval(), pipeline, list(ckpt["classes"])
