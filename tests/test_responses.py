"""Layer responses (Fig. 7): the std of each 3x3 layer's output after BN and before the ReLU or the
addition, measured by hooks and checked against the same layers run by hand."""

import numpy as np
import pytest
import torch

from deepres.analysis.responses import layer_responses, response_layers
from deepres.data import load_dataset
from deepres.data.pipeline import Pipeline
from deepres.errors import ConfigError
from deepres.models import create_model

CIFAR_BATCH, IMAGENET_BATCH = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 64, 64)


def test_every_3x3_layer_in_forward_order():
    names = [n for n, _ in response_layers(create_model("resnet20"), CIFAR_BATCH)]
    assert len(names) == 19  # the stem and 18 in the blocks, as the paper's Fig. 7 for 20 layers
    assert names[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert names[-1] == "layer3.2.conv2"
    assert len(response_layers(create_model("plain56"), CIFAR_BATCH)) == 55
    # ResNet-18's 7x7 stem is not a 3x3 layer; its B projections (1x1) are skipped
    assert len(response_layers(create_model("resnet18", shortcut="B"), IMAGENET_BATCH)) == 16


def test_layers_are_paired_with_the_bn_their_output_enters():
    """Pairing follows the data, not the order of registration: in a pre-activation block (bn1,
    conv1, bn2, conv2) conv1 feeds bn2 and conv2 feeds the addition, not the next block's bn1."""
    model = create_model("preact_resnet110")
    layers = dict(response_layers(model, CIFAR_BATCH))
    blocks = [name for name, m in model.named_modules() if hasattr(m, "conv2") and hasattr(m, "bn2")]
    assert len(blocks) == 54
    for b in blocks:
        block = model.get_submodule(b)
        assert layers[f"{b}.conv1"] is block.bn2 and f"{b}.conv2" not in layers
    resnet = create_model("resnet20")
    for name, bn in response_layers(resnet, CIFAR_BATCH):  # post-activation: conv1 -> bn1, conv2 -> bn2
        assert bn is resnet.get_submodule(name.replace("conv", "bn"))


def test_a_net_without_bn_after_3x3_is_a_clear_error():
    with pytest.raises(ConfigError, match="no 3x3 convolution followed by a BN"):
        response_layers(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), CIFAR_BATCH)


def test_stds_equal_the_layers_run_by_hand():
    torch.manual_seed(0)
    test = load_dataset("cifar10-sample").require("test")
    images = test.images[:96]
    split = type(test)(images, test.labels[:96])
    model = create_model("resnet20").eval()
    for bn in model.modules():  # non-trivial running statistics, as a trained net has
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.bias.data.uniform_(-0.5, 0.5)
    pipeline = Pipeline(augment="cifar").fit(split)

    stds = layer_responses(model, split, pipeline, batch_size=40)  # batches of 40, 40, 16

    with torch.no_grad():
        x = pipeline.eval_batch(torch.from_numpy(images))
        stem = model.bn1(model.conv1(x))
        block = model.layer1[0]
        first = block.bn1(block.conv1(torch.relu(stem)))  # after BN, before the block's ReLU
        second = block.bn2(block.conv2(torch.relu(first)))  # after BN, before the addition
    expected = [stem.double().std(unbiased=False).item(), first.double().std(unbiased=False).item(),
                second.double().std(unbiased=False).item()]  # fmt: skip
    np.testing.assert_allclose([s for _, s in stds[:3]], expected, rtol=1e-4)
    assert min(first.min().item(), second.min().item()) < 0  # pre-activation values: not clipped by ReLU
    assert model.training is False and len(stds) == 19


def test_limit_counts_images():
    test = load_dataset("cifar10-sample").require("test")
    model = create_model("plain20").eval()
    pipeline = Pipeline(augment="cifar").fit(test)
    a = layer_responses(model, test, pipeline, batch_size=50, limit=50)
    b = layer_responses(model, type(test)(test.images[:50], test.labels[:50]), pipeline)
    np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-6)
