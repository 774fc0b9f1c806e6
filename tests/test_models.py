"""Every network builds, has the paper's shape, and keeps the surface backbones rely on."""

import json

import pytest
import torch
import torch.nn.functional as F

import deepres
from conftest import cli
from deepres.models.registry import get_entry, list_models

# Big nets get a small input: the architecture, not the resolution, is under test here.
SMALL_INPUT = {"imagenet": 64, "cifar": 32}


@pytest.mark.parametrize("name", deepres.list_models())
def test_every_model_builds_and_classifies(name):
    family = get_entry(name).family
    # Training mode: BN normalises with batch statistics, as the fresh running statistics of a
    # 1001-layer net would not (its untrained eval-mode activations overflow).
    model = deepres.create_model(name, num_classes=7)
    x = torch.randn(2, 3, SMALL_INPUT[family], SMALL_INPUT[family])
    with torch.no_grad():
        out = model(x)
    assert out.shape == (x.shape[0], 7)
    assert torch.isfinite(out).all()


def test_default_class_counts_follow_the_family():
    assert deepres.create_model("resnet18").fc.out_features == 1000
    assert deepres.create_model("resnet20").fc.out_features == 10


def test_grayscale_input_and_any_class_count():
    model = deepres.create_model("resnet20", in_chans=1, num_classes=3).eval()
    assert model.conv1.in_channels == 1
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_list_models_pattern():
    assert deepres.list_models("resnet1*") == [
        "resnet18",
        "resnet18d",
        "resnet101",
        "resnet101d",
        "resnet110",
        "resnet152",
        "resnet152d",
        "resnet1202",
    ]
    assert set(deepres.list_models("plain*")) == {
        "plain18",
        "plain34",
        "plain20",
        "plain32",
        "plain44",
        "plain56",
        "plain110",
    }


def test_unknown_model_and_option_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet21'"):
        deepres.create_model("resnet21")
    with pytest.raises(ValueError, match="unknown option.*shortcutt"):
        deepres.create_model("resnet20", shortcutt="B")
    with pytest.raises(ValueError, match="unknown shortcut 'D'"):
        deepres.create_model("resnet20", shortcut="D")


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "resnet18", "resnet50"])
def test_shortcut_a_is_parameter_free_b_and_c_project(name):
    plain = _params(deepres.create_model(name, shortcut="none"))
    a, b, c = (_params(deepres.create_model(name, shortcut=s)) for s in "ABC")
    assert a == plain  # identity + zero padding: nothing to learn
    assert plain < b < c  # B projects only where the shape changes, C everywhere


def test_shortcut_a_subsamples_and_zero_pads():
    from deepres.models.blocks import PadShortcut

    x = torch.randn(2, 16, 8, 8)
    y = PadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_plain_nets_have_no_shortcuts():
    model = deepres.create_model("plain20")
    assert all(not getattr(m, "residual", False) for m in model.modules())
    # Same layers as ResNet-20 with option A: parameter-for-parameter identical shapes.
    res = deepres.create_model("resnet20")
    assert [p.shape for p in model.parameters()] == [p.shape for p in res.parameters()]


def test_v1_and_v1_5_share_shapes_but_not_outputs():
    torch.manual_seed(0)
    v1 = deepres.create_model("resnet50").eval()
    v15 = deepres.create_model("resnet50", stride_in_3x3=True).eval()
    assert {k: v.shape for k, v in v1.state_dict().items()} == {k: v.shape for k, v in v15.state_dict().items()}
    v15.load_state_dict(v1.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(v1(x), v15(x), atol=1e-3)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize(
    "name, size, channels, strides",
    [
        ("resnet50", 224, [256, 512, 1024, 2048], [4, 8, 16, 32]),
        ("resnet18", 224, [64, 128, 256, 512], [4, 8, 16, 32]),
        ("resnet20", 32, [16, 32, 64], [1, 2, 4]),
        ("preact_resnet164", 32, [64, 128, 256], [1, 2, 4]),
        ("vgg19", 64, [64, 128, 256, 512, 512], [2, 4, 8, 16, 32]),
    ],
)
def test_stage_outputs_have_the_declared_shapes_and_strides(name, size, channels, strides):
    model = deepres.create_model(name).eval()
    assert [f["num_chs"] for f in model.feature_info] == channels
    assert [f["reduction"] for f in model.feature_info] == strides
    with torch.no_grad():
        outs = model.forward_stages(torch.randn(1, 3, size, size))
    assert [o.shape[1] for o in outs] == channels
    assert [size // o.shape[-1] for o in outs] == strides


def test_forward_is_features_then_head():
    model = deepres.create_model("resnet18").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 2, 2)
        assert torch.equal(model.forward_head(feats), model(x))
        assert model.forward_head(feats, pre_logits=True).shape == (2, 512)


@pytest.mark.parametrize(
    "name",
    ["resnet20", "plain20", "resnet50", "preact_resnet164", "se_resnet20", "resnet50d", "wrn28_10", "vgg19"],
)
def test_models_script_with_torchscript(name):
    model = deepres.create_model(name).eval()
    size = 32 if get_entry(name).family == "cifar" else 64
    x = torch.randn(2, 3, size, size)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))
        for a, b in zip(scripted.forward_stages(x), model.forward_stages(x), strict=True):
            torch.testing.assert_close(a, b)


def test_model_runs_under_torch_compile():
    model = deepres.create_model("resnet20").eval()
    x = torch.randn(4, 3, 32, 32)
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_he_initialisation_and_zero_init_residual():
    model = deepres.create_model("resnet56")
    conv = model.layer2[1].conv1  # 3x3, 32 -> 32: fan_out = 9 * 32
    expected_std = (2.0 / (9 * 32)) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.1
    assert torch.all(model.layer1[0].bn2.weight == 1)
    zeroed = deepres.create_model("resnet56", zero_init_residual=True)
    assert all(torch.all(b.bn2.weight == 0) for stage in (zeroed.layer1, zeroed.layer2, zeroed.layer3) for b in stage)
    assert torch.all(zeroed.bn1.weight == 1)  # only the last BN of each residual branch


def test_preact_blocks_apply_nothing_after_the_addition():
    from deepres.models.blocks import BlockOptions, PreActBasicBlock

    block = PreActBasicBlock(16, 16, 1, BlockOptions(shortcut="A")).eval()
    torch.nn.init.zeros_(block.conv2.weight)  # F(x) = 0, so y must equal x exactly, negatives included
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(block(x), x)


# --- torchvision compatibility -----------------------------------------------------------------------
def _bn(state, prefix, x):
    return F.batch_norm(
        x,
        state[prefix + ".running_mean"],
        state[prefix + ".running_var"],
        state[prefix + ".weight"],
        state[prefix + ".bias"],
        False,
        0.0,
        1e-5,
    )


def torchvision_resnet_reference(state, x, layers, bottleneck):
    """An independent functional forward with torchvision's semantics, read from its state-dict names.

    torchvision puts a bottleneck's stride on the 3x3 (``conv2``) and its projection is
    ``downsample.0`` (1x1 conv, stride s) + ``downsample.1`` (BN).
    """
    x = F.relu(_bn(state, "bn1", F.conv2d(x, state["conv1.weight"], stride=2, padding=3)))
    x = F.max_pool2d(x, 3, 2, 1)
    for i, n in enumerate(layers):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            stride = 2 if (i > 0 and j == 0) else 1
            if bottleneck:
                out = F.relu(_bn(state, p + ".bn1", F.conv2d(x, state[p + ".conv1.weight"])))
                out = F.relu(
                    _bn(state, p + ".bn2", F.conv2d(out, state[p + ".conv2.weight"], stride=stride, padding=1))
                )
                out = _bn(state, p + ".bn3", F.conv2d(out, state[p + ".conv3.weight"]))
            else:
                out = F.relu(_bn(state, p + ".bn1", F.conv2d(x, state[p + ".conv1.weight"], stride=stride, padding=1)))
                out = _bn(state, p + ".bn2", F.conv2d(out, state[p + ".conv2.weight"], padding=1))
            if p + ".downsample.0.weight" in state:
                x = _bn(state, p + ".downsample.1", F.conv2d(x, state[p + ".downsample.0.weight"], stride=stride))
            x = F.relu(out + x)
    x = x.mean((2, 3))
    return F.linear(x, state["fc.weight"], state["fc.bias"])


def _randomised_state(model):
    """Random weights and BN statistics, so that equality is not an accident of the initialisation."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = v
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(v.shape, generator=g) * (0.1 if v.dim() > 1 else 0.5)
    return state


@pytest.mark.parametrize(
    "name, layers, bottleneck", [("resnet18", (2, 2, 2, 2), False), ("resnet50", (3, 4, 6, 3), True)]
)
def test_v1_5_outputs_equal_torchvision_semantics_for_the_same_weights(name, layers, bottleneck):
    model = deepres.create_model(name, stride_in_3x3=True).eval()
    state = _randomised_state(model)
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x), torchvision_resnet_reference(state, x, layers, bottleneck), rtol=1e-4, atol=1e-4
        )


def test_parameter_names_are_torchvisions():
    keys = deepres.create_model("resnet50").state_dict().keys()
    # torchvision's resnet50 state dict: 53 convs, 53 BNs x 5 entries, fc weight and bias.
    assert len(keys) == 320
    for key in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.num_batches_tracked",
        "layer3.5.conv3.weight",
        "layer4.2.bn3.bias",
        "fc.weight",
        "fc.bias",
    ]:
        assert key in keys
    assert "layer1.0.downsample.0.weight" in deepres.create_model("resnet152").state_dict()
    assert len(deepres.create_model("resnet18").state_dict()) == 122


def test_deepres_models_describes_each_net_from_its_spec():
    """`deepres models` says what a name builds (the paper's CIFAR nets: option A, 3 stages of 16-32-64;
    plain nets: no shortcut), what it is checked against, and which pretrained weights ship."""
    rows = {r["model"]: r for r in json.loads(cli("models", "--format", "json").stdout)}
    assert rows["resnet56"] | {"pretrained": "-"} == {
        "model": "resnet56", "family": "cifar", "block": "basic", "blocks": "9-9-9", "widths": "16-32-64",
        "shortcut": "A", "extras": "-", "checked against": "He et al. 2015, Table 6", "pretrained": "-",
    }  # fmt: skip
    assert rows["plain20"]["shortcut"] == "none (plain)" and rows["resnet20"]["pretrained"] == "cifar10"
    assert rows["resnext50_32x4d"]["block"] == "bottleneck 32x4d" and rows["resnet50"]["blocks"] == "3-4-6-3"
    assert rows["resnet50d"]["extras"] == "avg-down, deep stem, stride in 3x3" and rows["resnet18d"]["extras"] == (
        "avg-down, deep stem"
    )
    assert rows["vgg19"]["blocks"] == "16 convs" and rows["preact_resnet164"]["block"] == "pre-act bottleneck"
    assert list(rows) == list_models()  # every registered net, once
    result = cli("models", "nosuchnet*")
    assert result.returncode == 2 and result.stderr.strip() == (
        "deepres models: error: no model matches 'nosuchnet*'; `deepres models` lists them all"
    )
