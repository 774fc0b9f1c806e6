"""Named networks: each is one line of spec. ``create_model`` turns a name and options into modules."""

from __future__ import annotations

import dataclasses
import fnmatch
import typing
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError
from .resnet import ResNet, ResNetSpec
from .vgg import VGG, VGG_LAYOUTS, VGGSpec

Spec = ResNetSpec | VGGSpec

IMAGENET_LAYERS = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_WIDTHS = (16, 32, 64)


@dataclass(frozen=True)
class PaperFigure:
    """A published figure to check a network against: parameters (M) and multiply-adds (G)."""

    params_m: float | None
    macs_g: float | None
    source: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # "imagenet" or "cifar": decides the default class count and native input
    spec: Spec
    paper: PaperFigure | None = None


_REGISTRY: dict[str, ModelEntry] = {}
PAPER = "He et al. 2015"


def register(name: str, family: str, spec: Spec, paper: PaperFigure | None = None) -> None:
    _REGISTRY[name] = ModelEntry(name, family, spec, paper)


def imagenet_spec(depth: int, **kw) -> ResNetSpec:
    block = "basic" if depth < 50 else "bottleneck"
    return ResNetSpec(block=block, layers=IMAGENET_LAYERS[depth], **kw)


def cifar_spec(depth: int, block: str = "basic", **kw) -> ResNetSpec:
    per_block = 2 if block == "basic" else 3
    n, rest = divmod(depth - 2, 3 * per_block)
    if rest:
        raise ConfigError(f"a CIFAR {block} net has {3 * per_block}n+2 layers; {depth} is not")
    kw.setdefault("shortcut", "A")
    kw.setdefault("widths", CIFAR_WIDTHS)
    return ResNetSpec(block=block, layers=(n, n, n), stem="cifar", stem_width=16, num_classes=10, **kw)


# --- The paper's networks -------------------------------------------------------------------------
_TABLE1 = {18: (11.7, 1.8), 34: (21.8, 3.6), 50: (25.6, 3.8), 101: (44.5, 7.6), 152: (60.2, 11.3)}
for _d in IMAGENET_LAYERS:
    _p = _TABLE1.get(_d)
    register(f"resnet{_d}", "imagenet", imagenet_spec(_d), PaperFigure(*_p, f"{PAPER}, Table 1") if _p else None)
register("plain18", "imagenet", imagenet_spec(18, shortcut="none"), PaperFigure(None, 1.8, f"{PAPER}, Table 1"))
register("plain34", "imagenet", imagenet_spec(34, shortcut="none"), PaperFigure(None, 3.6, f"{PAPER}, Fig. 3"))
_TABLE6 = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}
for _d in CIFAR_DEPTHS:
    register(f"resnet{_d}", "cifar", cifar_spec(_d), PaperFigure(_TABLE6[_d], None, f"{PAPER}, Table 6"))
for _d in (20, 32, 44, 56, 110):
    register(f"plain{_d}", "cifar", cifar_spec(_d, shortcut="none"))
register("vgg19", "imagenet", VGGSpec("vgg19"), PaperFigure(143.7, 19.6, f"{PAPER}, Fig. 3 / Table 1 note"))
register("vgg16", "imagenet", VGGSpec("vgg16"), PaperFigure(138.4, 15.5, "Simonyan & Zisserman 2015"))

# --- Descendants: options of the same spec ---------------------------------------------------------
_V2 = "He et al. 2016 (identity mappings)"
for _d in IMAGENET_LAYERS:
    register(f"preact_resnet{_d}", "imagenet", imagenet_spec(_d, preact=True))
register("preact_resnet110", "cifar", cifar_spec(110, preact=True), PaperFigure(1.7, None, _V2))
register(
    "preact_resnet164", "cifar", cifar_spec(164, "bottleneck", preact=True, shortcut="B"), PaperFigure(1.7, None, _V2)
)
register(
    "preact_resnet1001",
    "cifar",
    cifar_spec(1001, "bottleneck", preact=True, shortcut="B"),
    PaperFigure(10.2, None, _V2),
)
# ResNeXt and Wide ResNet follow fb.resnet.torch, with the stride on the 3x3 ("v1.5").
register(
    "resnext50_32x4d",
    "imagenet",
    imagenet_spec(50, groups=32, base_width=4, stride_in_3x3=True),
    PaperFigure(25.0, 4.2, "Xie et al. 2017, Table 1"),
)
register("resnext101_32x8d", "imagenet", imagenet_spec(101, groups=32, base_width=8, stride_in_3x3=True))
register("wide_resnet50_2", "imagenet", imagenet_spec(50, base_width=128, stride_in_3x3=True))
# WRN-d-k counts its projection convs as layers: d = 6n + 4, so WRN-28-10 has n = 4 blocks per stage.
register(
    "wrn28_10",
    "cifar",
    cifar_spec(26, preact=True, shortcut="B", widths=(160, 320, 640)),
    PaperFigure(36.5, None, "Zagoruyko & Komodakis 2016, Table 3"),
)
for _d in (18, 34, 50, 101, 152):
    register(f"se_resnet{_d}", "imagenet", imagenet_spec(_d, se=True))
    # ResNet-D (He et al. 2019, "Bag of tricks"): deep stem, avg-pool shortcut, v1.5 stride.
    register(f"resnet{_d}d", "imagenet", imagenet_spec(_d, stem="deep", avg_down=True, stride_in_3x3=True))
for _d in (20, 56, 110):
    register(f"se_resnet{_d}", "cifar", cifar_spec(_d, se=True))


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, sorted; ``pattern`` is a shell-style wildcard such as ``"resnet*"``."""
    names = sorted(_REGISTRY, key=_natural_key)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def describe(name: str) -> dict:
    """What ``deepres models`` lists for a name, read off its spec (nothing is built): the block,
    blocks and base width per stage, the shortcut, the variant's extras, and the published figures
    ``deepres summary`` checks it against."""
    entry = get_entry(name)
    spec = entry.spec
    row = {"model": name, "family": entry.family}
    checked = entry.paper.source if entry.paper else "-"
    if isinstance(spec, VGGSpec):
        convs = [c for c in VGG_LAYOUTS[spec.layout] if c != "M"]
        widths = "-".join(map(str, dict.fromkeys(convs)))
        return {**row, "block": "VGG conv", "blocks": f"{len(convs)} convs", "widths": widths, "shortcut": "-",
                "extras": "-", "checked against": checked}  # fmt: skip
    block = ("pre-act " if spec.preact else "") + spec.block
    if spec.groups > 1:  # ResNeXt's cardinality x width per group
        block += f" {spec.groups}x{spec.base_width}d"
    elif spec.base_width != 64:  # a wide bottleneck
        block += f" width x{spec.base_width / 64:g}"
    flags = {"SE": spec.se, "avg-down": spec.avg_down, "deep stem": spec.stem == "deep",
             "stride in 3x3": spec.stride_in_3x3 and spec.block == "bottleneck",  # a basic block has no 1x1
             f"dropout {spec.drop_rate:g}": spec.drop_rate > 0}  # fmt: skip
    return {**row, "block": block, "blocks": "-".join(map(str, spec.layers)), "widths": "-".join(map(str, spec.widths)),
            "shortcut": "none (plain)" if spec.shortcut == "none" else spec.shortcut,
            "extras": ", ".join(k for k, on in flags.items() if on) or "-", "checked against": checked}  # fmt: skip


def models_with_paper_figures() -> list[str]:
    """Names with a published figure to check against, in registration order (paper's nets first)."""
    return [name for name, entry in _REGISTRY.items() if entry.paper is not None]


def _natural_key(name: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = [n for n in _REGISTRY if name.lower() in n or n in name.lower()][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `deepres models`"
        raise ConfigError(f"unknown model {name!r}{hint}") from None


def model_spec(name: str, num_classes: int | None = None, in_chans: int | None = None, **options) -> Spec:
    """The spec of a named model with options applied (unknown options raise ConfigError)."""
    spec = get_entry(name).spec
    allowed = {f.name for f in dataclasses.fields(spec)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}; expected some of: {', '.join(sorted(allowed))}"
        )
    if num_classes is not None:
        options["num_classes"] = num_classes
    if in_chans is not None:
        options["in_chans"] = in_chans
    for key in ("layers", "widths"):
        if key in options and isinstance(options[key], (list, tuple)):
            options[key] = tuple(options[key])
    hints = typing.get_type_hints(type(spec))
    for key, value in options.items():
        if not _fits(value, hints[key]):
            raise ConfigError(f"model {name!r}: option {key}={value!r} is not a {_type_name(hints[key])}")
    try:
        return dataclasses.replace(spec, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model {name!r}: {e}") from None


def _fits(value: object, hint: object) -> bool:
    """Whether an option's value has its spec field's type (bool, int, float, str, tuple[int, ...])."""
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(_fits(v, typing.get_args(hint)[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: object) -> str:
    return "tuple of whole numbers" if typing.get_origin(hint) is tuple else getattr(hint, "__name__", str(hint))


BUILDERS: dict[type, Callable[[Spec], nn.Module]] = {ResNetSpec: ResNet, VGGSpec: VGG}


def build(spec: Spec) -> nn.Module:
    return BUILDERS[type(spec)](spec)


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    weights: str | None = None,
    pretrained: str | None = None,
    **options,
) -> nn.Module:
    """Build a registered network.

    ``num_classes`` defaults to 1000 for ImageNet-style nets and 10 for CIFAR ones; ``options`` are
    any :class:`ResNetSpec` (or :class:`VGGSpec`) fields, e.g. ``shortcut="C"``,
    ``stride_in_3x3=True`` (torchvision "v1.5"), ``zero_init_residual=True``, ``se=True``.
    ``weights`` is a state-dict file to load (strictly). ``pretrained`` (e.g. ``"cifar10"``): the net
    deepres trained on that data and ships (``list_pretrained()``), in eval mode, with
    ``model.pretrained_cfg`` (its preprocessing and measured test error).
    """
    if pretrained is not None:
        if num_classes is not None or in_chans is not None or weights is not None or options:
            raise ConfigError(f"create_model({name!r}, pretrained={pretrained!r}): the pretrained net is built as "
                              "it was trained; pass no num_classes, in_chans, weights or options")  # fmt: skip
        from ..pretrained import pretrained_model

        return pretrained_model(name, pretrained)
    model = build(model_spec(name, num_classes, in_chans, **options))
    model.model_name = name
    if weights is not None:
        from .weights import load_weights

        load_weights(model, weights)
    return model
