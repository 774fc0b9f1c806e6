"""Layer responses (the paper's Sec. 4.2, Fig. 7): the standard deviation of each 3x3 layer's
output after its BN and before the nonlinearity (ReLU) or the residual addition."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data import FileSet, ImageSet
from ..data.loader import eval_batches, eval_file_batches
from ..data.pipeline import Pipeline
from ..errors import ConfigError


def response_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """(name, BN) of every 3x3 convolution followed by a BN, in forward order.

    Modules register in forward order in post-activation nets (conv1, bn1, conv2, bn2, shortcut),
    so each 3x3 convolution's BN is the next BN registered after it.
    """
    layers: list[tuple[str, nn.BatchNorm2d]] = []
    waiting: str | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            waiting = name if module.kernel_size == (3, 3) else None
        elif isinstance(module, nn.BatchNorm2d) and waiting is not None:
            layers.append((waiting, module))
            waiting = None
    if not layers:
        raise ConfigError(f"{type(model).__name__}: no 3x3 convolution followed by a BN to measure")
    return layers


class _Moments:
    """Running count, sum and sum of squares of every element a layer outputs (float64)."""

    def __init__(self) -> None:
        self.n, self.s, self.ss = 0, 0.0, 0.0

    def __call__(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        # Runs before the in-place ReLU that follows the BN, so it sees the pre-activation values.
        y = output.detach().double()
        self.n += y.numel()
        self.s += y.sum().item()
        self.ss += (y * y).sum().item()

    @property
    def std(self) -> float:
        mean = self.s / max(self.n, 1)
        return max(self.ss / max(self.n, 1) - mean * mean, 0.0) ** 0.5


@torch.no_grad()
def layer_responses(
    model: nn.Module, split: ImageSet | FileSet, pipeline: Pipeline, batch_size: int = 500, limit: int = 0
) -> list[tuple[str, float]]:
    """(layer name, std of its response over ``split``) for each 3x3 layer, in forward order.

    The std is over every element (images, channels, positions) of the BN output, in fp32 eval mode
    (BN uses its running statistics, as at test time). ``limit``: only the first ``limit`` images.
    """
    layers = response_layers(model)
    moments = {name: _Moments() for name, _ in layers}
    handles = [bn.register_forward_hook(moments[name]) for name, bn in layers]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        if isinstance(split, ImageSet):
            batches, cropped = eval_batches(split, batch_size), False
        else:
            batches, cropped = eval_file_batches(split, batch_size, pipeline.resize, pipeline.crop, 0), True
        for images, _ in batches:
            if limit:
                images = images[: limit - seen]
            model(pipeline.eval_batch(images, cropped))
            seen += len(images)
            if limit and seen >= limit:
                break
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [(name, m.std) for name, m in moments.items()]
