"""The inference fast path: the machine's fast precision, channels_last, and optionally
``torch.compile`` with inductor's freezing (weights folded into the graph as constants), which pays
when many batches follow its compile time (tens of seconds)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .hardware import resolve_precision


def autocast(precision: str, device: torch.device | str = "cpu"):
    """bf16 autocast when ``precision`` resolves to bf16 on ``device``, else nothing."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_fn(model: nn.Module, precision: str = "auto", compile: bool = False) -> Callable[[Tensor], Tensor]:
    """``fn(x) -> float32 logits`` for ``model`` in eval mode; ``x`` is best given channels_last."""
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)  # once, not on every batch
    net: Callable[[Tensor], Tensor] = model.eval()
    if compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # only affects graphs compiled under no_grad, i.e. inference
        net = torch.compile(model)

    def fn(x: Tensor) -> Tensor:
        with torch.no_grad(), autocast(precision, device):
            return net(x).float()

    return fn
