"""Preprocessing for training and evaluation: which augmentation, which normalisation, at which
size. It is fitted on the training split and stored in every checkpoint, so ``eval`` and
``predict`` see images exactly as training did."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..choices import AUGMENTS, NORMALIZATIONS
from ..errors import ConfigError
from .augment import (
    center_view,
    color_jitter,
    pad_crop_flip,
    pca_lighting,
    random_flip,
    resize_center_crop,
    scale_crop_flip,
    to_float,
)
from .dataset import FileSet, ImageSet


@dataclass
class Pipeline:
    augment: str = "cifar"  # cifar: pad + crop + flip; imagenet: scale + crop + flip (+ colour); flip; none
    pad: int = 4
    crop: int = 0  # network input side for imagenet-style data (0: the images' own size)
    resize: int = 0  # evaluation: shorter side before the centre crop (0: none)
    scale_min: int = 256
    scale_max: int = 480
    jitter: float = 0.0
    lighting: float = 0.0
    normalize: str = "pixel-mean"  # the paper's per-pixel mean subtraction, or per-channel mean/std
    image_size: tuple[int, int] = (0, 0)  # (H, W) of the training images, when they share one size
    mean: Tensor | None = None  # (C, H, W) for pixel-mean, (C, 1, 1) for channel
    std: Tensor | None = None  # (C, 1, 1) for channel

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ConfigError(f"augment={self.augment!r}: expected one of {', '.join(AUGMENTS)}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize={self.normalize!r}: expected one of {', '.join(NORMALIZATIONS)}")
        if self.augment == "imagenet" and not (0 < self.crop <= self.scale_min <= self.scale_max):
            raise ConfigError(
                f"imagenet augmentation needs 0 < crop <= scale_min <= scale_max "
                f"(got crop={self.crop}, scale {self.scale_min}-{self.scale_max})"
            )

    @classmethod
    def from_settings(cls, settings: object) -> Pipeline:
        """The pipeline of a recipe (or any object with the same field names): the settings it shares."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)})

    # --- fitting and storing ---------------------------------------------------------------------
    def fit(self, train: ImageSet | FileSet, sample: int = 2000, seed: int = 0, origin: str = "the data") -> Pipeline:
        """Mean (and std) from the training images: all of them in memory, else a sample."""
        if isinstance(train, FileSet) and len(train.sizes) > 1 and not self.crop:
            shown = ", ".join(f"{w}x{h}" for w, h in train.sizes[:3]) + (", ..." if len(train.sizes) > 3 else "")
            raise ConfigError(
                f"{origin}: its images differ in size ({shown}) and a batch needs one: pass --crop N (centre crops, "
                "after --resize M scales the shorter side; or random crops with --augment imagenet)"
            )
        if isinstance(train, ImageSet):
            images = train.images
            self.image_size = tuple(images.shape[1:3])  # type: ignore[assignment]
        else:
            from .loader import decode_eval

            pick = np.random.default_rng(seed).choice(len(train), min(sample, len(train)), replace=False)
            images = np.stack([decode_eval(train.paths[i], train.channels, self.resize, self.eval_size) for i in pick])
        if self.normalize == "none":
            return self
        x = images.astype(np.float64) / 255.0  # float64 sums: exact enough over 50k images
        if self.normalize == "pixel-mean":
            self.mean = torch.from_numpy(x.mean(0).transpose(2, 0, 1)).float()
        else:
            self.mean = torch.from_numpy(x.mean((0, 1, 2))).float().view(-1, 1, 1)
            self.std = torch.from_numpy(x.std((0, 1, 2))).float().view(-1, 1, 1)
        return self

    def state(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_state(cls, state: dict) -> Pipeline:
        state = dict(state)
        state["image_size"] = tuple(state.get("image_size") or (0, 0))
        return cls(**state)

    # --- sizes ---------------------------------------------------------------------------------------
    @property
    def eval_size(self) -> int:
        """Side of the square the network sees at evaluation (0: the images' own size)."""
        return self.crop

    # The columns of a training batch's draws that the scale augmentation reads (streamed data: the
    # loader hands them to its workers).
    SCALE_DRAWS = slice(3, 7)
    # The column from which each augmentation in ALTERNATING_AUGMENTS reads its flip.
    FLIP_DRAW = {"cifar": 2, "flip": 0}

    @property
    def draws_per_image(self) -> int:
        """Uniform draws a training batch needs per image (see ``train_batch``)."""
        return 13

    # --- batches -------------------------------------------------------------------------------------
    def normalize_batch(self, x: Tensor) -> Tensor:
        if self.normalize == "none" or self.mean is None:
            return x
        mean = self.mean.to(x.device)  # a batch on a GPU: the mean of a few kB goes with it
        if mean.shape[-2:] != x.shape[-2:] and mean.shape[-1] != 1:
            # Per-pixel mean at another input size (multi-scale testing): resample it.
            mean = F.interpolate(mean[None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
        x = x - mean
        return x / self.std.to(x.device) if self.std is not None else x

    def train_batch(self, x: Tensor, u: Tensor, cropped: bool = False) -> Tensor:
        """Augmented, normalised float (N, C, H, W) from uint8 (N, H, W, C) and draws ``u`` (N, 13).

        ``cropped``: the images already are the view training starts from (streamed data, decoded by
        workers): the scale-augmented crop for imagenet augmentation, else the evaluation view.
        """
        if not cropped and self.augment != "imagenet":
            # What the workers decode streamed images to: augmentation starts from the evaluation view.
            x = center_view(x, self.resize, self.crop)
        if not cropped:
            if self.augment == "cifar":
                x = pad_crop_flip(x, self.pad, u[:, 0:3])
            elif self.augment == "flip":
                x = random_flip(x, u[:, 0:1])
        x = to_float(x)
        if self.augment == "imagenet":
            if not cropped:
                x = scale_crop_flip(x, self.crop, (self.scale_min, self.scale_max), u[:, self.SCALE_DRAWS])
            if self.jitter > 0:
                x = color_jitter(x, self.jitter, u[:, 7:10])
            if self.lighting > 0:
                x = pca_lighting(x, self.lighting, u[:, 10:13])
        return self.normalize_batch(x)

    def eval_batch(self, x: Tensor, cropped: bool = False) -> Tensor:
        """Normalised float (N, C, H, W) for evaluation: resize and centre crop where configured."""
        x = to_float(x)
        if not cropped and self.resize:
            x = resize_center_crop(x, self.resize, self.crop)
        elif not cropped and self.crop and self.crop != x.shape[-1]:
            x = resize_center_crop(x, min(x.shape[-2:]), self.crop)
        return self.normalize_batch(x)

    def image_to_batch(self, image: np.ndarray) -> Tensor:
        """One decoded image of any size (H, W, C uint8) as the network's input batch of one."""
        x = to_float(torch.from_numpy(np.array(image, dtype=np.uint8))[None])
        if self.resize:
            x = resize_center_crop(x, self.resize, self.crop)
        elif self.image_size != (0, 0) and tuple(x.shape[-2:]) != self.image_size:
            # Nets trained on small fixed-size images (CIFAR) see the whole image, resized.
            x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
        return self.normalize_batch(x)
