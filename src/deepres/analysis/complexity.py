"""Parameters, weight layers and multiply-adds, counted by running the real modules.

A forward pass on the ``meta`` device (shapes only, no arithmetic) with hooks on every convolution
and linear layer gives the multiply-adds, so the count is right for any option of any spec.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from ..models.registry import PaperFigure, create_model, get_entry


@dataclass(frozen=True)
class Complexity:
    name: str
    input_size: int
    weight_layers: int  # convolutions and fully-connected layers, as the paper counts depth
    params: int
    macs: int  # multiply-adds of one image
    paper: PaperFigure | None = None

    @staticmethod
    def _deviation(ours: float, paper: float | None) -> float | None:
        return None if paper is None else 100.0 * (ours - paper) / paper

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def macs_g(self) -> float:
        return self.macs / 1e9

    def params_deviation(self) -> float | None:
        return self._deviation(self.params_m, self.paper and self.paper.params_m)

    def macs_deviation(self) -> float | None:
        return self._deviation(self.macs_g, self.paper and self.paper.macs_g)

    def params_match(self) -> bool | None:
        """Whether our count, rounded to the paper's precision, equals the paper's figure."""
        if self.paper is None or self.paper.params_m is None:
            return None
        decimals = len(repr(self.paper.params_m).split(".")[1])
        return round(self.params_m, decimals) == self.paper.params_m


def _counted_layers(model: nn.Module) -> set[nn.Module]:
    """Conv/linear modules that count as weight layers: not inside shortcuts or SE gates."""
    skip: set[int] = set()
    for m in model.modules():
        if getattr(m, "counts_as_layer", True) is False:
            skip.update(id(s) for s in m.modules())
    return {m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in skip}


def _passthrough(x: torch.Tensor) -> torch.Tensor:
    return x


def count(model: nn.Module, input_size: int | None = None, in_chans: int | None = None) -> tuple[int, int, int]:
    """(weight layers, parameters, multiply-adds per image) of ``model`` at ``input_size``."""
    size = input_size or getattr(model, "default_input_size", 224)
    chans = in_chans or model.spec.in_chans
    macs = 0

    def conv_hook(m: nn.Conv2d, inp, out) -> None:
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += out[0].numel() * k

    def linear_hook(m: nn.Linear, inp, out) -> None:
        nonlocal macs
        macs += out[0].numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    # BatchNorm keeps its input's shape and adds no multiply-adds counted here, yet on the meta device
    # its shape function is slow Python (3/4 of a ResNet-110's count): it passes its input through.
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        for m in norms:
            m.forward = _passthrough
        with torch.no_grad():
            model(torch.zeros(1, chans, size, size, device=device))
    finally:
        model.train(was_training)
        for m in norms:
            del m.forward
        for h in hooks:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    return len(_counted_layers(model)), params, macs


def complexity(name: str, input_size: int | None = None, **options) -> Complexity:
    """Complexity of a registered network with options, counted once per process: even on the meta
    device a forward pass through ResNet-1202 takes seconds, and reports ask for the same nets again."""
    key = (name, input_size, tuple(sorted(options.items())))
    try:
        hash(key)
    except TypeError:  # an unhashable option value (a list): counted afresh
        return _complexity.__wrapped__(*key)
    return _complexity(*key)


@functools.cache
def _complexity(name: str, input_size: int | None, options: tuple) -> Complexity:
    options = dict(options)
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        model = create_model(name, **options)
    size = input_size or model.default_input_size
    layers, params, macs = count(model, size)
    # The paper's figure only applies to the paper's configuration at its native input.
    paper = get_entry(name).paper if not options and size == model.default_input_size else None
    return Complexity(name, size, layers, params, macs, paper)


def summary_rows(names: list[str], input_size: int | None = None, **options) -> list[dict]:
    rows = []
    for name in names:
        c = complexity(name, input_size, **options)
        paper = c.paper
        pdev, mdev = c.params_deviation(), c.macs_deviation()
        rows.append(
            {
                "model": name,
                "layers": c.weight_layers,
                "input": c.input_size,
                "params_M": round(c.params_m, 3),
                "paper_params_M": paper.params_m if paper else None,
                "params_dev_%": None if pdev is None else round(pdev, 2),
                "params_match": {None: None, True: "yes", False: "NO"}[c.params_match()],
                "mult_adds_G": round(c.macs_g, 4),
                "paper_mult_adds_G": paper.macs_g if paper else None,
                "mult_adds_dev_%": None if mdev is None else round(mdev, 2),
                "source": paper.source if paper else "",
            }
        )
    return rows
