"""Every network of the paper and its best-known descendants, built from declarative specs."""

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from .registry import create_model, get_entry, list_models, model_spec
from .resnet import ResNet, ResNetSpec
from .vgg import VGG, VGGSpec
from .weights import WeightsError, load_weights, save_weights

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResNet",
    "ResNetSpec",
    "VGG",
    "VGGSpec",
    "WeightsError",
    "create_model",
    "get_entry",
    "list_models",
    "load_weights",
    "model_spec",
    "save_weights",
]
