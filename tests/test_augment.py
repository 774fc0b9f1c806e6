"""Batch augmentation and preprocessing: shapes, statistics, determinism, shard invariance."""

import numpy as np
import pytest
import torch

from deepres.data import ImageSet
from deepres.data.augment import (
    color_jitter,
    pad_crop_flip,
    pca_lighting,
    resize_center_crop,
    scale_crop_flip,
    to_float,
)
from deepres.data.pipeline import Pipeline
from deepres.errors import ConfigError


def draws(n, k=13, seed=0):
    return torch.rand(n, k, generator=torch.Generator().manual_seed(seed))


def test_pad_crop_flip_gives_crops_of_the_padded_image(cifar_sample):
    x = torch.from_numpy(cifar_sample.splits["train"].images[:64])
    out = pad_crop_flip(x, 4, draws(64))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (0, 0, 4, 4, 4, 4))
    for i in range(64):  # each output is one of the 9x9 crops of its padded image, maybe mirrored
        found = any(
            torch.equal(out[i], c) or torch.equal(out[i], c.flip(1))
            for dy in range(9)
            for dx in range(9)
            for c in [padded[i, dy : dy + 32, dx : dx + 32]]
        )
        assert found


def test_pad_crop_flip_statistics(cifar_sample):
    x = torch.from_numpy(cifar_sample.splits["train"].images[:4096])
    u = draws(4096)
    out = pad_crop_flip(x, 4, u)
    # Half the images flipped; offsets uniform over 0..8, so the zero border covers on average
    # E|dy-4| = 20/9 rows (and columns) of 32.
    assert abs((u[:, 2] < 0.5).float().mean().item() - 0.5) < 0.03
    zero_rows = (out.reshape(4096, 32, -1) == 0).all(2).sum(1).float().mean().item()
    assert abs(zero_rows - 20 / 9) < 0.25
    assert torch.equal(pad_crop_flip(x[:8], 0, torch.zeros(8, 3) + 0.9), x[:8])  # no pad, no flip: identity


def test_augmentation_is_a_function_of_the_draws_and_shards_cleanly(cifar_sample):
    x = torch.from_numpy(cifar_sample.splits["train"].images[:128])
    u = draws(128)
    whole = pad_crop_flip(x, 4, u)
    halves = torch.cat([pad_crop_flip(x[:64], 4, u[:64]), pad_crop_flip(x[64:], 4, u[64:])])
    assert torch.equal(whole, halves)
    assert torch.equal(whole, pad_crop_flip(x, 4, draws(128)))


def test_to_float_is_channels_last_and_scaled():
    x = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    f = to_float(x)
    assert f.shape == (4, 3, 8, 8) and f.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(f * 255, x.permute(0, 3, 1, 2).float())


def test_scale_crop_flip_and_eval_resize():
    x = torch.rand(6, 3, 64, 48)
    assert scale_crop_flip(x, 40, (48, 96), draws(6, 4)).shape == (6, 3, 40, 40)
    assert resize_center_crop(x, 56, 48).shape == (6, 3, 48, 48)
    # The shorter side at its own length and a full-size crop reproduce the image (or its mirror).
    y = scale_crop_flip(x[:, :, :48, :], 48, (48, 48), torch.tensor([[0.0, 0.0, 0.0, 0.9]] * 6))
    torch.testing.assert_close(y, x[:, :, :48, :], atol=1e-5, rtol=0)


def test_colour_jitter_and_lighting_keep_shapes_and_vary_per_image():
    x = torch.rand(16, 3, 8, 8)
    j = color_jitter(x, 0.4, draws(16, 3))
    assert j.shape == x.shape and j.min() >= 0 and j.max() <= 1
    shift = pca_lighting(x, 0.1, draws(16, 3)) - x
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-6)  # one shift per image
    assert shift[:, :, 0, 0].std(0).min() > 0


def test_pixel_mean_normalisation(cifar_sample):
    train = ImageSet(cifar_sample.splits["train"].images[:5000], cifar_sample.splits["train"].labels[:5000])
    p = Pipeline(normalize="pixel-mean").fit(train)
    assert p.mean.shape == (3, 32, 32) and p.std is None
    batch = p.eval_batch(torch.from_numpy(train.images))
    assert batch.mean(0).abs().max() < 1e-5  # every pixel of the training set now has mean zero
    c = Pipeline(normalize="channel").fit(train)
    b = c.eval_batch(torch.from_numpy(train.images))
    assert torch.allclose(b.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(b.std((0, 2, 3)), torch.ones(3), atol=1e-3)


def test_pipeline_round_trips_through_its_state(cifar_sample):
    p = Pipeline(normalize="pixel-mean").fit(
        ImageSet(cifar_sample.splits["test"].images, cifar_sample.splits["test"].labels)
    )
    q = Pipeline.from_state(p.state())
    x = torch.from_numpy(cifar_sample.splits["test"].images[:32])
    u = draws(32)
    assert torch.equal(p.train_batch(x, u), q.train_batch(x, u))
    assert q.image_size == (32, 32)


def test_image_to_batch_resizes_to_the_training_size(cifar_sample):
    p = Pipeline().fit(ImageSet(cifar_sample.splits["test"].images, cifar_sample.splits["test"].labels))
    assert p.image_to_batch(np.zeros((100, 80, 3), np.uint8)).shape == (1, 3, 32, 32)
    q = Pipeline(augment="imagenet", crop=224, resize=256, normalize="none")
    assert q.image_to_batch(np.zeros((300, 400, 3), np.uint8)).shape == (1, 3, 224, 224)


def test_bad_pipeline_settings():
    with pytest.raises(ConfigError, match="augment='rotate'"):
        Pipeline(augment="rotate")
    with pytest.raises(ConfigError, match="crop <= scale_min"):
        Pipeline(augment="imagenet", crop=300, scale_min=256)


@pytest.mark.parametrize("augment", ["imagenet", "cifar"])
def test_the_same_augmentation_in_memory_and_streamed(cifar_sample, tmp_path, augment):
    """The same recipe and seed make the same augmentation decisions whether the images are in memory
    or streamed from files by workers: the same images, crops, scales and flips, batch by batch (the
    streamed crops are rounded to uint8, at most half a grey level apart)."""
    from PIL import Image

    from deepres.data import load_dataset
    from deepres.data.augment import batch_draws
    from deepres.data.dataset import FileSet
    from deepres.data.loader import FileLoader, MemoryLoader

    images, labels = cifar_sample.splits["train"].images[:48], cifar_sample.splits["train"].labels[:48]
    for i, (a, y) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / "train" / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).resize((40, 36), Image.BICUBIC).save(tmp_path / "train" / str(y) / f"{i}.png")
    in_memory = load_dataset(tmp_path).splits["train"]
    streamed = load_dataset(tmp_path, budget_bytes=1).splits["train"]
    assert isinstance(in_memory, ImageSet) and isinstance(streamed, FileSet)

    pipeline = Pipeline(augment=augment, crop=24, scale_min=24, scale_max=44, normalize="none")
    memory, files = MemoryLoader(in_memory, 16, seed=3), FileLoader(streamed, 16, 3, pipeline, workers=0)
    for epoch in (0, 1):
        batches = zip(memory.epoch(epoch), files.epoch(epoch), strict=True)
        for s, ((xm, ym), (xf, yf)) in enumerate(batches):
            u = batch_draws(3, epoch * memory.steps_per_epoch + s, 16, pipeline.draws_per_image)
            assert torch.equal(ym, yf)
            a, b = pipeline.train_batch(xm, u), pipeline.train_batch(xf, u, files.cropped)
            assert a.shape == b.shape
            assert (a - b).abs().max().item() <= (0.5 if augment == "imagenet" else 0) / 255 + 1e-6


def test_each_augmentation_that_may_alternate_its_flip_says_where_it_reads_the_flip(cifar_sample):
    """``flip = "alternate"`` overwrites one column of the draws: the one each augmentation flips by."""
    from deepres.choices import ALTERNATING_AUGMENTS

    assert set(Pipeline.FLIP_DRAW) == set(ALTERNATING_AUGMENTS)
    x = torch.from_numpy(cifar_sample.splits["train"].images[:8])
    for augment, column in Pipeline.FLIP_DRAW.items():
        pipeline = Pipeline(augment=augment, pad=0, normalize="none")
        u = torch.full((8, 13), 0.9)  # no flip
        assert torch.equal(pipeline.train_batch(x, u), to_float(x))
        u[:, column] = 0.1
        assert torch.equal(pipeline.train_batch(x, u), to_float(x.flip(2)))


def test_batch_ops_run_on_the_batch_device(cifar_sample):
    # On a GPU the images, their augmentation and the evaluation views all live on the GPU. No GPU
    # here: the meta device stands in, and fails any op that mixes in a tensor made on the CPU.
    from deepres.data.loader import MemoryLoader
    from deepres.evaluate import Evaluator
    from deepres.models.registry import create_model

    meta = torch.device("meta")
    train = ImageSet(cifar_sample.splits["train"].images[:256], cifar_sample.splits["train"].labels[:256])
    x, y = next(MemoryLoader(train, 128, seed=0, device=meta).epoch(0))
    assert x.device == y.device == meta and x.shape == (128, 32, 32, 3)
    settings = {"cifar": {}, "flip": {}, "imagenet": {"crop": 24, "scale_min": 28, "scale_max": 40, "jitter": 0.4}}
    for augment, extra in settings.items():
        for normalize in ("pixel-mean", "channel"):
            p = Pipeline(augment=augment, normalize=normalize, lighting=0.1, **extra).fit(train)
            out = p.train_batch(x, draws(128).to(meta))
            assert out.device == meta and out.shape[:2] == (128, 3)
    net = create_model("resnet20").eval().to(meta)
    host = torch.from_numpy(train.images[:4])  # evaluation batches arrive from the host
    for mode in ("center", "ten-crop", "multi-scale"):
        log_probs = Evaluator(net, Pipeline(pad=4).fit(train), mode, precision="fp32").log_probs(host)
        assert log_probs.device == meta and log_probs.shape == (4, 10)
