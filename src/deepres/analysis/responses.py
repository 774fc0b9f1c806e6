"""Layer responses (the paper's Sec. 4.2, Fig. 7): the standard deviation of each 3x3 layer's
output after its BN and before the nonlinearity (ReLU) or the residual addition."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..data import FileSet, ImageSet
from ..data.loader import eval_batches, eval_file_batches
from ..data.pipeline import Pipeline
from ..errors import ConfigError


@torch.no_grad()
def response_layers(model: nn.Module, example: Tensor) -> list[tuple[str, nn.BatchNorm2d]]:
    """(name, BN) of every 3x3 convolution whose output goes straight into a BN, in forward order.

    Found by following one forward pass of ``example`` (an input batch): a BN is paired with the
    convolution whose output tensor it receives, whatever order the modules were registered in
    (a pre-activation block registers bn1, conv1, bn2, conv2, and its conv2 feeds the addition).
    """
    produced: dict[int, tuple[str, Tensor]] = {}  # id of a 3x3 conv's output -> (conv name, output)
    layers: list[tuple[str, nn.BatchNorm2d]] = []

    def conv_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            produced[id(output)] = (name, output)  # the tensor is kept, so its id is not reused

        return hook

    def bn_hook(module: nn.BatchNorm2d, inputs: tuple) -> None:
        source = produced.pop(id(inputs[0]), None)
        if source is not None and source[1] is inputs[0]:
            layers.append((source[0], module))

    handles = [
        m.register_forward_hook(conv_hook(name))
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    handles += [m.register_forward_pre_hook(bn_hook) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
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
    layers = response_layers(model, next(_test_views(split, pipeline, 1)))
    moments = {name: _Moments() for name, _ in layers}
    handles = [bn.register_forward_hook(moments[name]) for name, bn in layers]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for x in _test_views(split, pipeline, batch_size):
            if limit:
                x = x[: limit - seen]
            model(x)
            seen += len(x)
            if limit and seen >= limit:
                break
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [(name, m.std) for name, m in moments.items()]


def _test_views(split: ImageSet | FileSet, pipeline: Pipeline, batch_size: int) -> Iterator[Tensor]:
    """The batches of ``split`` as the network sees them at test time (centre view, normalised)."""
    if isinstance(split, ImageSet):
        for images, _ in eval_batches(split, batch_size):
            yield pipeline.eval_batch(images)
    else:
        for images, _ in eval_file_batches(split, batch_size, pipeline.resize, pipeline.crop, 0):
            yield pipeline.eval_batch(images, cropped=True)
