"""VGG (Simonyan & Zisserman, 2015), the paper's reference point for complexity (Fig. 3)."""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError

# Output channels of each 3x3 conv; "M" is a 2x2 max-pool.
VGG_LAYOUTS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


@dataclass(frozen=True)
class VGGSpec:
    layout: str = "vgg19"
    batch_norm: bool = False
    head_drop_rate: float = 0.5
    num_classes: int = 1000
    in_chans: int = 3

    def __post_init__(self) -> None:
        if self.layout not in VGG_LAYOUTS:
            raise ConfigError(f"unknown VGG layout {self.layout!r}; expected one of {sorted(VGG_LAYOUTS)}")

    @property
    def input_size(self) -> int:
        return 224


class VGG(nn.Module):
    """VGG with torchvision's parameter names (features.N, classifier.N)."""

    __jit_ignored_attributes__ = ["spec", "feature_info"]

    def __init__(self, spec: VGGSpec):
        super().__init__()
        self.spec = spec
        self.default_input_size = spec.input_size
        layers: list[nn.Module] = []
        cin, reduction = spec.in_chans, 1
        self.feature_info = []
        stage_ends = []
        for item in VGG_LAYOUTS[spec.layout]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                reduction *= 2
                stage_ends.append(len(layers) - 1)
                self.feature_info.append(
                    {"module": f"features.{len(layers) - 1}", "num_chs": cin, "reduction": reduction}
                )
                continue
            layers.append(nn.Conv2d(cin, int(item), 3, padding=1))
            if spec.batch_norm:
                layers.append(nn.BatchNorm2d(int(item)))
            layers.append(nn.ReLU(inplace=True))
            cin = int(item)
        self.stage_ends = stage_ends
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.num_features = 4096
        p = spec.head_drop_rate
        self.classifier = nn.Sequential(
            nn.Linear(cin * 49, 4096),
            nn.ReLU(True),
            nn.Dropout(p),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p),
            nn.Linear(4096, spec.num_classes),
        )
        self.logits_index = len(self.classifier) - 1
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    @torch.jit.export
    def forward_stages(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.stage_ends:
                outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x).flatten(1)
        for i, layer in enumerate(self.classifier):
            if not pre_logits or i < self.logits_index:
                x = layer(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
