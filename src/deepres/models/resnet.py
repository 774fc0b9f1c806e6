"""One ResNet class, built from a declarative spec. Every named network is one spec."""

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .blocks import BLOCKS, SHORTCUT_OPTIONS, BlockOptions, conv3x3

STEMS = ("imagenet", "cifar", "deep")


@dataclass(frozen=True)
class ResNetSpec:
    """Everything that defines a residual (or plain) network; ``ResNet(spec)`` builds it."""

    block: str = "basic"  # "basic" (two 3x3) or "bottleneck" (1x1, 3x3, 1x1 x4)
    layers: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage (3 or 4 stages)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # base width of each stage, before expansion
    stem: str = "imagenet"  # imagenet: 7x7/2 + max-pool; cifar: 3x3; deep: ResNet-C 3x 3x3 + max-pool
    stem_width: int = 64
    shortcut: str = "B"  # A, B, C as in the paper, or "none" for the plain counterpart
    preact: bool = False  # pre-activation ("v2", He et al. 2016)
    stride_in_3x3: bool = False  # torchvision "v1.5" bottleneck
    groups: int = 1  # ResNeXt cardinality
    base_width: int = 64  # bottleneck width per group
    se: bool = False  # squeeze-and-excitation blocks
    avg_down: bool = False  # ResNet-D shortcut downsampling
    drop_rate: float = 0.0  # dropout inside basic blocks (Wide ResNet)
    head_drop_rate: float = 0.0  # dropout before the classifier
    zero_init_residual: bool = False  # zero the last BN (or conv) of every residual branch
    num_classes: int = 1000
    in_chans: int = 3

    def __post_init__(self) -> None:
        if (self.block, self.preact) not in BLOCKS:
            raise ConfigError(f"unknown block {self.block!r}; expected 'basic' or 'bottleneck'")
        if self.stem not in STEMS:
            raise ConfigError(f"unknown stem {self.stem!r}; expected one of {STEMS}")
        if self.shortcut not in SHORTCUT_OPTIONS:
            raise ConfigError(f"unknown shortcut {self.shortcut!r}; expected one of {SHORTCUT_OPTIONS}")
        if not 3 <= len(self.layers) <= 4 or len(self.widths) != len(self.layers):
            raise ConfigError("a ResNet has 3 or 4 stages, with one width per stage")
        if self.num_classes < 1 or self.in_chans < 1:
            raise ConfigError("num_classes and in_chans must be positive")

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @property
    def residual(self) -> bool:
        return self.shortcut != "none"

    @property
    def input_size(self) -> int:
        """The native input resolution: 32 for CIFAR-style nets, 224 for ImageNet-style ones."""
        return 32 if self.stem == "cifar" else 224


def _make_stem(spec: ResNetSpec) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module, int]:
    """(conv1, bn1, relu, maxpool, reduction) for the spec's stem."""
    w = spec.stem_width
    if spec.stem == "cifar":
        conv1: nn.Module = conv3x3(spec.in_chans, w)
        pool: nn.Module = nn.Identity()
        reduction = 1
    else:
        if spec.stem == "imagenet":
            conv1 = nn.Conv2d(spec.in_chans, w, 7, stride=2, padding=3, bias=False)
        else:  # ResNet-C deep stem: three 3x3 convolutions replace the 7x7
            half = w // 2
            conv1 = nn.Sequential(
                conv3x3(spec.in_chans, half, 2),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                conv3x3(half, half),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                conv3x3(half, w),
            )
        pool = nn.MaxPool2d(3, stride=2, padding=1)
        reduction = 4
    # A pre-activation CIFAR net normalises inside its first block, so its stem is the bare conv.
    if spec.preact and spec.stem == "cifar":
        return conv1, nn.Identity(), nn.Identity(), pool, reduction
    return conv1, nn.BatchNorm2d(w), nn.ReLU(inplace=True), pool, reduction


class ResNet(nn.Module):
    """A residual network (or its plain counterpart) from a :class:`ResNetSpec`.

    Surface shared by every deepres model: ``forward_features`` (last feature map),
    ``forward_head`` (pool + classifier), ``forward_stages`` (each stage's output, see
    ``feature_info`` for channels and strides).
    """

    __jit_ignored_attributes__ = ["spec", "feature_info"]

    def __init__(self, spec: ResNetSpec):
        super().__init__()
        self.spec = spec
        self.default_input_size = spec.input_size
        self.conv1, self.bn1, self.relu, self.maxpool, reduction = _make_stem(spec)

        block = BLOCKS[(spec.block, spec.preact)]
        opts = BlockOptions(
            shortcut=spec.shortcut,
            stride_in_3x3=spec.stride_in_3x3,
            groups=spec.groups,
            base_width=spec.base_width,
            se=spec.se,
            avg_down=spec.avg_down,
            drop_rate=spec.drop_rate,
        )
        cin = spec.stem_width
        self.feature_info = []
        stages: list[nn.Module] = []
        for i, (n, width) in enumerate(zip(spec.layers, spec.widths, strict=False)):
            stride = 1 if i == 0 else 2
            reduction *= stride
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, stride if j == 0 else 1, opts))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append({"module": f"layer{i + 1}", "num_chs": cin, "reduction": reduction})
        # Named layer1..layer4 as in torchvision; 3-stage (CIFAR) nets have no layer4.
        self.layer1, self.layer2, self.layer3 = stages[:3]
        self.layer4: nn.Module | None = stages[3] if len(stages) == 4 else None
        self.num_features = cin
        # Pre-activation nets end with the BN-ReLU that their last block left out.
        self.norm = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True)) if spec.preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(spec.head_drop_rate) if spec.head_drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(cin, spec.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (MSRA) initialisation of every convolution; BN as identity; optional zero-init."""
        if self.fc.weight.is_meta:  # built for its shapes only (complexity counting): no values to set
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.spec.zero_init_residual and self.spec.residual:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    @torch.jit.export
    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The output of every stage (C2-C5 for ImageNet nets, strides in ``feature_info``)."""
        x = self.forward_stem(x)
        outs: list[Tensor] = []
        x = self.layer1(x)
        outs.append(x)
        x = self.layer2(x)
        outs.append(x)
        x = self.layer3(x)
        outs.append(x)
        if self.layer4 is not None:
            x = self.layer4(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.forward_stem(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.layer4 is not None:
            x = self.layer4(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_drop(self.avgpool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
