"""Residual blocks and shortcuts of He et al. (2015) and their best-known descendants.

Every block takes the same constructor arguments and owns its behaviour: its ``expansion``, the
shortcut it needs, and how its residual branch is zero-initialised. Parameter names follow
torchvision (conv1/bn1/conv2/bn2/conv3/bn3/downsample.0/downsample.1) so its checkpoints load.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

SHORTCUT_OPTIONS = ("A", "B", "C", "none")


@dataclass(frozen=True)
class BlockOptions:
    """What a block needs to know beyond its input/output shape."""

    shortcut: str = "B"  # A, B, C (paper, Sec. 3.3 / 4.1) or "none" for plain nets
    stride_in_3x3: bool = False  # bottleneck only: torchvision "v1.5" places the stride on the 3x3
    groups: int = 1  # ResNeXt cardinality
    base_width: int = 64  # bottleneck width per group (64 = the paper, 128 = Wide ResNet-50-2)
    se: bool = False  # squeeze-and-excitation on the residual branch
    avg_down: bool = False  # ResNet-D: average-pool before a stride-1 projection
    drop_rate: float = 0.0  # dropout between the convs of a basic block (Wide ResNets)


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option A: identity with stride subsampling and zero-padded extra channels; no parameters."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        if cout < cin:
            raise ConfigError(f"shortcut A cannot reduce channels ({cin} -> {cout}); use B or C")
        self.stride = stride
        self.extra = cout - cin

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class Projection(nn.Sequential):
    """Options B/C: a 1x1 convolution (+BN). Not one of the paper's counted weight layers."""

    counts_as_layer = False


def make_shortcut(opts: BlockOptions, cin: int, cout: int, stride: int, norm: bool = True) -> nn.Module | None:
    """The shortcut module of a block, or None for a parameter-free identity.

    ``norm`` is False for pre-activation blocks, whose projection sees already-normalised input.
    """
    shape_changes = stride != 1 or cin != cout
    if opts.shortcut == "A":
        return PadShortcut(cin, cout, stride) if shape_changes else None
    if opts.shortcut == "B" and not shape_changes:
        return None
    if opts.shortcut not in ("B", "C"):
        raise ConfigError(f"unknown shortcut option {opts.shortcut!r}; expected one of {SHORTCUT_OPTIONS}")
    layers: list[nn.Module] = []
    if opts.avg_down and stride > 1:
        # ResNet-D: the 1x1 projection no longer discards 3/4 of the input.
        layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
        stride = 1
    layers.append(conv1x1(cin, cout, stride))
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return Projection(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): channel gates from globally pooled features."""

    counts_as_layer = False

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(F.relu(self.fc1(s), inplace=True))
        return x * torch.sigmoid(s)


def _optional_se(opts: BlockOptions, channels: int) -> nn.Module | None:
    return SqueezeExcite(channels) if opts.se else None


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; y = relu(F(x) + shortcut(x)) (or relu(F(x)) for plain nets)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, opts: BlockOptions):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(opts.drop_rate) if opts.drop_rate > 0 else None
        self.conv2 = conv3x3(planes, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = _optional_se(opts, cout)
        self.residual = opts.shortcut != "none"
        self.downsample = make_shortcut(opts, cin, cout, stride) if self.residual else None

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.drop is not None:
            out = self.drop(out)
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4). The paper strides the first 1x1; "v1.5" the 3x3."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, opts: BlockOptions):
        super().__init__()
        width = int(planes * opts.base_width / 64) * opts.groups
        cout = planes * self.expansion
        s1, s3 = (1, stride) if opts.stride_in_3x3 else (stride, 1)
        self.conv1 = conv1x1(cin, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3, opts.groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.se = _optional_se(opts, cout)
        self.residual = opts.shortcut != "none"
        self.downsample = make_shortcut(opts, cin, cout, stride) if self.residual else None

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class PreActBasicBlock(nn.Module):
    """Pre-activation (He et al., 2016): BN -> ReLU -> conv inside F, nothing after the addition."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, opts: BlockOptions):
        super().__init__()
        cout = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop = nn.Dropout(opts.drop_rate) if opts.drop_rate > 0 else None
        self.conv2 = conv3x3(planes, cout)
        self.relu = nn.ReLU(inplace=True)
        self.se = _optional_se(opts, cout)
        self.residual = opts.shortcut != "none"
        self.downsample = make_shortcut(opts, cin, cout, stride, norm=False) if self.residual else None

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        # A projection sees the pre-activated input; an identity carries x itself.
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.relu(self.bn2(out))
        if self.drop is not None:
            out = self.drop(out)
        out = self.conv2(out)
        if self.se is not None:
            out = self.se(out)
        return out + shortcut if self.residual else out


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: (BN -> ReLU -> conv) x3 with 1x1, 3x3, 1x1 (x4) convolutions."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, opts: BlockOptions):
        super().__init__()
        width = int(planes * opts.base_width / 64) * opts.groups
        cout = planes * self.expansion
        s1, s3 = (1, stride) if opts.stride_in_3x3 else (stride, 1)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv1x1(cin, width, s1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3, opts.groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, cout)
        self.relu = nn.ReLU(inplace=True)
        self.se = _optional_se(opts, cout)
        self.residual = opts.shortcut != "none"
        self.downsample = make_shortcut(opts, cin, cout, stride, norm=False) if self.residual else None

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.se is not None:
            out = self.se(out)
        return out + shortcut if self.residual else out


BLOCKS: dict[tuple[str, bool], type[nn.Module]] = {
    ("basic", False): BasicBlock,
    ("bottleneck", False): Bottleneck,
    ("basic", True): PreActBasicBlock,
    ("bottleneck", True): PreActBottleneck,
}
