"""Batches for training and evaluation, sharded over processes.

In memory: uint8 images are indexed straight from one tensor, no workers (they would compete with
the model for the cores). Streamed: worker processes decode files and, for ImageNet-style
augmentation, do the geometric part per image with the batch pipeline's own function and draws;
colour and normalisation stay whole-batch ops in the main process.

An epoch's order is a pure function of (seed, epoch), and each global batch is split into equal
contiguous parts, one per rank, so N processes see exactly the batches one process would.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DeepresError
from .augment import batch_draws, center_view, scale_crop_flip, to_float, to_uint8
from .dataset import FileSet, ImageSet
from .folder import IMAGE_ERRORS, to_8bit


@functools.lru_cache(maxsize=2)
def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of an epoch's ``n`` images. Cached: the loader and the trainer's alternating flips
    ask for the same epoch's order (callers index it, never change it)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    def part(self, items: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of a global batch (sizes equal when world divides it)."""
        k = len(items) // self.world
        return items[self.rank * k : (self.rank + 1) * k]


SINGLE = Shard()  # one process


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` of training images may live on ``device`` beside the model: always on the
    CPU (they are there already); on a GPU, when they take at most half of its free memory."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= free // 2


class MemoryLoader:
    """Training batches of an in-memory split: uint8 (b, H, W, C) images and int64 labels.

    On a GPU the split lives in its memory where it fits (CIFAR-10's 45k images take 138 MB), so a
    batch is an index into it and augmentation runs there too: no copy from the host per step.
    """

    cropped = False  # geometric augmentation is left to the batch pipeline

    def __init__(
        self, split: ImageSet, batch_size: int, seed: int, shard: Shard = SINGLE, device: torch.device | None = None
    ):
        if batch_size % shard.world:
            raise DeepresError(f"--batch-size {batch_size} must be divisible by the {shard.world} processes")
        if batch_size > len(split):
            raise DeepresError(f"--batch-size {batch_size} is larger than the training set ({len(split)} images)")
        device = torch.device(device or "cpu")
        home = device if fits_on(device, split.images.nbytes) else torch.device("cpu")
        self.images = torch.from_numpy(split.images).to(home)
        self.labels = torch.from_numpy(split.labels).to(home)
        self.batch_size, self.seed, self.shard = batch_size, seed, shard
        self.steps_per_epoch = len(split) // batch_size  # drop the last partial batch: fixed shapes

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = epoch_permutation(len(self.labels), self.seed, epoch).to(self.images.device)  # once an epoch
        for i in range(start, self.steps_per_epoch):
            idx = self.shard.part(perm[i * self.batch_size : (i + 1) * self.batch_size])
            yield self.images[idx], self.labels[idx]


def eval_batches(split: ImageSet, batch_size: int, shard: Shard = SINGLE):
    """(uint8 images, labels) over this rank's interleaved share of an in-memory split, in order."""
    idx = torch.arange(shard.rank, len(split), shard.world)
    images, labels = torch.from_numpy(split.images), torch.from_numpy(split.labels)
    for i in range(0, len(idx), batch_size):
        j = idx[i : i + batch_size]
        yield images[j], labels[j]


# --- streamed files ------------------------------------------------------------------------------------
def _open(path: Path, channels: int) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
    except IMAGE_ERRORS as e:
        raise DeepresError(f"{path}: not a readable image ({e})") from None
    return to_8bit(im, channels)


def _as_array(im: Image.Image) -> np.ndarray:
    a = np.array(im, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on PIL's read-only view
    return a[..., None] if a.ndim == 2 else a


def _decode(path: Path, channels: int) -> torch.Tensor:
    """One file as a uint8 (1, H, W, C) batch."""
    return torch.from_numpy(_as_array(_open(path, channels)))[None]


def decode_eval(path: Path, channels: int, resize: int, crop: int) -> np.ndarray:
    """Shorter side to ``resize``, central ``crop`` square (both 0: as is): the batch pipeline's own
    evaluation resize, applied to one image."""
    return center_view(_decode(path, channels), resize, crop)[0].numpy()


def decode_train(path: Path, channels: int, crop: int, scale: tuple[int, int], u: torch.Tensor) -> np.ndarray:
    """Scale augmentation of one image (shorter side random in ``scale``, random ``crop`` square,
    random flip) by the in-memory path's own function, with the draws ``u`` (4) of its batch row."""
    x = scale_crop_flip(to_float(_decode(path, channels)), crop, scale, u[None])
    return to_uint8(x)[0].numpy()


class _FileDataset(torch.utils.data.Dataset):
    """Decodes one file per item. A training item is (index, the geometric draws of its batch row),
    so an image's random crop depends on (seed, step, position in the global batch) only, as in
    memory, whichever worker or rank decodes it."""

    def __init__(self, split: FileSet, scale_aug: bool, crop: int, resize: int, scale: tuple[int, int]):
        self.split, self.scale_aug, self.crop, self.resize, self.scale = split, scale_aug, crop, resize, scale

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, tuple[float, ...]]):
        index, draws = key
        path = self.split.paths[index]
        if self.scale_aug:
            a = decode_train(path, self.split.channels, self.crop, self.scale, torch.tensor(draws))
        else:
            a = decode_eval(path, self.split.channels, self.resize, self.crop)
        return torch.from_numpy(a), int(self.split.labels[index])


def _worker_ignores_stop_signals(_: int) -> None:
    # Ctrl-C reaches the terminal's whole process group: the main process alone stops the run (at a
    # step, with a checkpoint) and then ends its workers; a worker killed first would make the
    # DataLoader fail with a traceback instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _batches(dataset: _FileDataset, keys: list, batch_size: int, workers: int):
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=keys, num_workers=workers, worker_init_fn=_worker_ignores_stop_signals
    )
    try:
        yield from loader
    except DeepresError as e:
        # Raised in a worker: the DataLoader re-raises it with the worker's traceback as its message.
        raise DeepresError(str(e).strip().splitlines()[-1].removeprefix("deepres.errors.DeepresError: ")) from None
    except RuntimeError as e:
        if "stack expects each tensor to be equal size" not in str(e):
            raise
        raise DeepresError(
            "the images differ in size: train them with --augment imagenet --crop N (random crops of one size)"
        ) from None


class FileLoader:
    """Training batches of a streamed split, decoded by worker processes.

    With ImageNet-style augmentation the workers also do the scale augmentation and crop
    (``cropped``), with the draws the batch pipeline would use in memory; otherwise they decode the
    images as they are and the batch pipeline augments.
    """

    def __init__(self, split: FileSet, batch_size: int, seed: int, pipeline, workers: int, shard: Shard = SINGLE):
        if batch_size % shard.world:
            raise DeepresError(f"--batch-size {batch_size} must be divisible by the {shard.world} processes")
        self.cropped = pipeline.augment == "imagenet"
        scale = (pipeline.scale_min, pipeline.scale_max)
        self.dataset = _FileDataset(split, self.cropped, pipeline.crop, pipeline.resize, scale)
        self.batch_size, self.seed, self.shard, self.workers = batch_size, seed, shard, workers
        self.draws_per_image, self.scale_draws = pipeline.draws_per_image, pipeline.SCALE_DRAWS
        self.steps_per_epoch = len(split) // batch_size

    def _draws(self, step: int) -> list[tuple[float, ...]]:
        """This rank's rows of the scale augmentation's draws (``Pipeline.SCALE_DRAWS``) of a step."""
        if not self.cropped:
            return [()] * (self.batch_size // self.shard.world)
        u = self.shard.part(batch_draws(self.seed, step, self.batch_size, self.draws_per_image))
        return [tuple(row) for row in u[:, self.scale_draws].tolist()]

    def epoch(self, epoch: int, start: int = 0):
        """The batches of ``epoch`` from its step ``start``; the training step of its step s is
        epoch * steps_per_epoch + s, as the trainer counts."""
        perm = epoch_permutation(len(self.dataset), self.seed, epoch)
        keys = [
            (int(i), u)
            for s in range(start, self.steps_per_epoch)
            for i, u in zip(
                self.shard.part(perm[s * self.batch_size : (s + 1) * self.batch_size]),
                self._draws(epoch * self.steps_per_epoch + s),
                strict=True,
            )
        ]
        yield from _batches(self.dataset, keys, self.batch_size // self.shard.world, self.workers)


def eval_file_batches(split: FileSet, batch_size: int, resize: int, crop: int, workers: int, shard: Shard = SINGLE):
    ds = _FileDataset(split, False, crop, resize, (0, 0))
    keys = [(i, ()) for i in range(shard.rank, len(split), shard.world)]
    yield from _batches(ds, keys, batch_size, workers)
