"""Evaluation the paper's ways: single centre crop, 10-crop, and fully-convolutional multi-scale
testing (shorter side in {224, 256, 384, 480, 640}, scores averaged). Top-1 and top-5 error."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .choices import TEST_MODES
from .data.augment import resize_short, to_float
from .data.dataset import FileSet, ImageSet
from .data.loader import SINGLE, Shard, eval_batches, eval_file_batches
from .data.pipeline import Pipeline
from .inference import inference_fn

PAPER_SCALES = (224, 256, 384, 480, 640)


def ten_crops(x: Tensor, crop: int) -> list[Tensor]:
    """The four corner crops, the centre crop, and their mirror images."""
    h, w = x.shape[-2:]
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), ((h - crop) // 2, (w - crop) // 2)]
    crops = [x[..., t : t + crop, left : left + crop] for t, left in corners]
    return crops + [c.flip(-1) for c in crops]


def default_scales(input_size: int) -> tuple[int, ...]:
    """The paper's test scales, proportionally for nets trained at another input size (e.g. CIFAR)."""
    return tuple(round(s * input_size / 224) for s in PAPER_SCALES)


class Evaluator:
    """Scores of a model on batches, in one of the paper's test modes."""

    def __init__(
        self,
        model: nn.Module,
        pipeline: Pipeline,
        mode: str = "center",
        flip: bool = False,
        precision: str = "auto",
        channels_last: bool = True,
        scales: tuple[int, ...] | None = None,
        compile: bool = False,
    ):
        if mode not in TEST_MODES:
            raise ValueError(f"unknown test mode {mode!r}; expected one of {TEST_MODES}")
        self.pipeline, self.mode, self.flip, self.channels_last = pipeline, mode, flip, channels_last
        size = pipeline.crop or pipeline.image_size[0] or 224
        self.scales = scales or default_scales(size)
        if mode == "multi-scale":
            self.flip = True  # the paper's dense multi-scale testing averages mirror images too
        self.device = next(model.parameters()).device
        self.forward = inference_fn(model, precision, compile)

    def _logits(self, x: Tensor) -> Tensor:
        x = x.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        return self.forward(x)

    def _probs(self, x: Tensor) -> Tensor:
        p = self._logits(x).softmax(1)
        if self.flip:
            p = (p + self._logits(x.flip(-1)).softmax(1)) / 2
        return p

    @torch.no_grad()
    def log_probs(self, images: Tensor, cropped: bool = False) -> Tensor:
        """Log of the class probabilities averaged over the mode's views, for a uint8 (N, H, W, C)
        batch. ``cropped``: the images already are the centre view (streamed data)."""
        p = self.pipeline
        images = images.to(self.device)  # uint8: on a GPU, the views and normalisation are made there
        if self.mode == "center":
            probs = self._probs(p.eval_batch(images, cropped))
        elif self.mode == "ten-crop":
            x = to_float(images)
            crop = p.crop or x.shape[-1]
            if p.resize:
                x = resize_short(x, p.resize)  # ImageNet: crops of the image resized to 256
            elif p.pad:
                x = F.pad(x, (p.pad,) * 4)  # CIFAR: crops of the zero-padded image, as in training
            probs = torch.stack([self._logits(p.normalize_batch(c)).softmax(1) for c in ten_crops(x, crop)]).mean(0)
        else:  # multi-scale: the whole image at each scale, fully convolutional, plus mirror images
            x = to_float(images)
            probs = torch.stack([self._probs(p.normalize_batch(resize_short(x, s))) for s in self.scales]).mean(0)
        return probs.clamp_min(1e-12).log()


def evaluate(
    model: nn.Module,
    split: ImageSet | FileSet,
    pipeline: Pipeline,
    mode: str = "center",
    flip: bool = False,
    batch_size: int = 500,
    precision: str = "auto",
    channels_last: bool = True,
    shard: Shard = SINGLE,
    workers: int = 0,
    reduce=None,
    compile: bool = False,
) -> dict:
    """Top-1/top-5 error (%) and mean cross-entropy of ``model`` on ``split``.

    ``reduce`` sums a tensor across processes (distributed runs: each rank takes a share).
    """
    was_training = model.training
    model.eval()
    ev = Evaluator(model, pipeline, mode, flip, precision, channels_last, compile=compile)
    totals = torch.zeros(4, dtype=torch.float64)  # n, top-1 wrong, top-5 wrong, loss sum
    try:
        if isinstance(split, ImageSet):
            batches, cropped = eval_batches(split, batch_size, shard), False
        else:
            # Streamed: workers deliver the centre view; other modes need whole images, one at a time.
            crop = 0 if mode == "multi-scale" else pipeline.crop
            resize = pipeline.resize if mode != "multi-scale" else 0
            if mode == "ten-crop":
                crop = 0
            batches = eval_file_batches(split, batch_size if crop else 1, resize, crop, workers, shard)
            cropped = mode == "center"
        for images, labels in batches:
            log_probs = ev.log_probs(images, cropped)
            labels = labels.to(log_probs.device)
            top5 = log_probs.topk(min(5, log_probs.shape[1]), 1).indices
            totals += torch.tensor(
                [
                    len(labels),
                    (top5[:, 0] != labels).sum().item(),
                    (~(top5 == labels[:, None]).any(1)).sum().item(),
                    F.nll_loss(log_probs, labels, reduction="sum").item(),
                ],
                dtype=torch.float64,
            )
    finally:
        model.train(was_training)
    if reduce is not None:
        totals = reduce(totals)
    n = max(totals[0].item(), 1)
    return {
        "n": int(totals[0].item()),
        "top1_error": 100 * totals[1].item() / n,
        "top5_error": 100 * totals[2].item() / n,
        "loss": totals[3].item() / n,
        "mode": mode,
        "flip": flip,
    }


@torch.no_grad()
def split_log_probs(model: nn.Module, split: ImageSet, pipeline: Pipeline, precision: str = "fp32",
                    batch_size: int = 500) -> Tensor:  # fmt: skip
    """Each image's class log-probabilities (centre crop), in the split's order. Leaves the model in
    eval mode."""
    model.eval()
    ev = Evaluator(model, pipeline, "center", False, precision)
    return torch.cat([ev.log_probs(images) for images, _ in eval_batches(split, batch_size)])


def predictions(model: nn.Module, split: ImageSet, pipeline: Pipeline, precision: str = "fp32",
                batch_size: int = 500) -> Tensor:  # fmt: skip
    """Each image's top-1 class (centre crop), in the split's order: a per-image record of what a
    trained net answers. Leaves the model in eval mode."""
    return split_log_probs(model, split, pipeline, precision, batch_size).argmax(1)


def predict_probs(model: nn.Module, pipeline: Pipeline, image: np.ndarray, precision: str = "auto") -> Tensor:
    """Class probabilities for one decoded image of any size (H, W, C uint8)."""
    x = pipeline.image_to_batch(image)
    device = next(model.parameters()).device
    return inference_fn(model, precision)(x.to(device, memory_format=torch.channels_last)).softmax(1)[0]
