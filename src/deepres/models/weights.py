"""Weights in and out: .pt/.pth state dicts (plain, nested, DDP-prefixed) and safetensors.

Loading never runs code from the file: PyTorch files are read with ``weights_only=True``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from ..errors import WeightsError
from ..io import torch_bytes, write_bytes_atomic

# Keys under which training scripts commonly nest the state dict.
# Where checkpoints nest their weights, first match wins: a deepres checkpoint keeps its moving
# average under "ema" (None when it kept none) and reports those weights, so they come first.
NESTING_KEYS = ("ema", "state_dict", "model", "model_state_dict", "module")
# Prefixes added by DataParallel/DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    # 8-byte little-endian header length, then the JSON header.
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def require_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: a folder, not a weights file (of a run directory, give its best.pt or last.pt)")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    return path


def read_checkpoint_file(path: str | os.PathLike) -> object:
    """Load a PyTorch file without unpickling arbitrary objects; one-line errors for bad files."""
    path = require_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0][:200]
        raise WeightsError(
            f"{path}: refused to load: it holds objects other than tensors and plain data ({reason})"
        ) from None
    except Exception as e:  # torch raises RuntimeError, EOFError, ValueError... for non-checkpoints
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise WeightsError(f"{path}: not a PyTorch checkpoint or state dict ({reason})") from None


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def extract_state_dict(obj: object, origin: str = "checkpoint") -> dict[str, Tensor]:
    """Find the state dict in a loaded object (nested under 'state_dict'/'model', 'module.' prefixes)."""
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in NESTING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            keys = ", ".join(map(str, list(obj)[:8]))
            raise WeightsError(
                f"{origin}: found no state dict (parameter names -> tensors) in it; top-level keys: {keys or 'none'}"
            )
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{origin}: expected a state dict, found a {type(obj).__name__}")
    state = dict(obj)
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    path = require_file(path)
    if is_safetensors(path):
        try:
            return extract_state_dict(st_load(path.read_bytes()), str(path))
        except WeightsError:
            raise
        except Exception as e:
            raise WeightsError(f"{path}: not a valid safetensors file ({e})") from None
    return extract_state_dict(read_checkpoint_file(path), str(path))


def _listing(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def load_state_dict_checked(
    model: nn.Module, state: Mapping[str, Tensor], strict: bool = True, origin: str = "state dict"
) -> dict[str, list]:
    """Load ``state`` into ``model``. Strict: any mismatch raises one error that lists it all.

    Returns the missing, unexpected and mis-shaped keys (all empty when strict).
    """
    own = model.state_dict()
    # BN's step counter is bookkeeping, absent from many published checkpoints.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    misshaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or misshaped):
        name = getattr(model, "model_name", type(model).__name__)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
        if misshaped:
            shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in misshaped]
            parts.append(f"{len(misshaped)} mis-shaped ({_listing(shapes, 4)})")
        raise WeightsError(f"{origin} does not match model {name}: " + "; ".join(parts), missing, unexpected, misshaped)
    usable = {k: v for k, v in state.items() if k in own and k not in misshaped}
    model.load_state_dict(usable, strict=False)
    return {"missing": missing, "unexpected": unexpected, "misshaped": misshaped}


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> dict[str, list]:
    """Load a weights file (.pt/.pth, nested or prefixed, or .safetensors) into ``model``."""
    return load_state_dict_checked(model, read_state_dict(path), strict, origin=str(path))


def save_weights(model: nn.Module | Mapping[str, Tensor], path: str | os.PathLike) -> Path:
    """Save a state dict atomically: safetensors for a ``.safetensors`` path, else ``torch.save``."""
    path = Path(path)
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        write_bytes_atomic(path, st_save(state))
    else:
        write_bytes_atomic(path, torch_bytes(state))
    return path
