"""Augmentation and preprocessing as whole-batch tensor ops: no per-image Python in the hot loop.

Batches arrive as uint8 (N, H, W, C). Geometric augmentation works on uint8 by index arithmetic;
``to_float`` then gives float (N, C, H, W) in [0, 1] whose memory is already channels-last.
Every random choice is read from ``u``, a tensor of uniform draws with one row per image, made by
``batch_draws`` from (seed, step) for the whole global batch: resuming a run, splitting a batch
over processes, or streaming the images from disk (where the loader's workers apply the geometric
part to one image at a time, with the same functions and the same draws) gives every image exactly
the same augmentation. The ops run on the batch's device (a GPU's, where the model is on one), with
the same draws: a run augments its images the same way on any machine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# ImageNet PCA of RGB pixels (Krizhevsky et al. 2012; as used by fb.resnet.torch).
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
GRAY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114])


def batch_draws(seed: int, step: int, batch_size: int, per_image: int) -> Tensor:
    """Uniform draws in [0, 1) for every image of the global batch of training step ``step``."""
    g = torch.Generator().manual_seed((seed + 1) * 2**32 + step)
    return torch.rand(batch_size, per_image, generator=g)


def alternating_flips(seed: int, epoch: int, images: Tensor, n: int) -> Tensor:
    """Flip draws (below 1/2: flip) for ``images``, indices into a training set of ``n``, in ``epoch``:
    each image has a coin of its own (fixed by the seed) that decides its flip in even epochs, and is
    flipped the other way in odd ones, so every two epochs show each image both ways (airbench's
    alternating flip). A function of (seed, epoch, image) only: resumes and processes agree."""
    coins = torch.rand(n, generator=torch.Generator().manual_seed((seed + 1) * 2**32 - 1))  # no batch_draws seed
    flip = (coins[images] < 0.5) ^ (epoch % 2 == 1)
    return torch.where(flip, 0.25, 0.75)


def _int(u: Tensor, high: int) -> Tensor:
    """Uniform integers in [0, high) from uniform draws in [0, 1)."""
    return (u * high).long().clamp_(max=high - 1)


def pad_crop_flip(x: Tensor, pad: int, u: Tensor, flip: bool = True) -> Tensor:
    """The paper's CIFAR augmentation: zero-pad by ``pad``, random crop of the original size, and a
    random horizontal flip, per image, as one gather over the padded uint8 batch (N, H, W, C).
    Uses 3 draws per image."""
    n, h, w, _ = x.shape
    if pad > 0:
        x = F.pad(x, (0, 0, pad, pad, pad, pad))
    oy = _int(u[:, 0:1], 2 * pad + 1)
    ox = _int(u[:, 1:2], 2 * pad + 1)
    rows = oy + torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device).expand(n, w)
    if flip:
        cols = torch.where(u[:, 2:3] < 0.5, cols.flip(1), cols)
    cols = ox + cols
    return x[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_flip(x: Tensor, u: Tensor) -> Tensor:
    """Horizontal flip of a uint8 (N, H, W, C) batch; 1 draw per image."""
    return torch.where(u[:, 0, None, None, None] < 0.5, x.flip(2), x)


def to_float(x: Tensor) -> Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1], channels-last in memory (a free permute)."""
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(x: Tensor) -> Tensor:
    """Float (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C), rounded: ``to_float``'s inverse."""
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def scale_crop_flip(x: Tensor, crop: int, scale: tuple[int, int], u: Tensor) -> Tensor:
    """ImageNet-style augmentation on a float batch of one image size: the shorter side resized to a
    random length in ``scale``, a random ``crop`` x ``crop`` window, a random flip. One bilinear
    ``grid_sample`` per batch does all three, with an affine map per image. Uses 4 draws per image."""
    n, _, h, w = x.shape
    short = scale[0] + _int(u[:, 0], scale[1] - scale[0] + 1).float()
    window = crop * min(h, w) / short  # the crop's side in source pixels
    x0 = u[:, 1] * (w - window).clamp(min=0)
    y0 = u[:, 2] * (h - window).clamp(min=0)
    sign = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = sign * window / w
    theta[:, 1, 1] = window / h
    theta[:, 0, 2] = (2 * x0 + window) / w - 1
    theta[:, 1, 2] = (2 * y0 + window) / h - 1
    grid = F.affine_grid(theta, [n, x.shape[1], crop, crop], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def resize_short(x: Tensor, short: int) -> Tensor:
    """The one evaluation resize: a float batch's shorter side to ``short`` (bilinear, antialiased)."""
    h, w = x.shape[-2:]
    if min(h, w) == short:
        return x
    f = short / min(h, w)
    return F.interpolate(x, size=(round(h * f), round(w * f)), mode="bilinear", antialias=True, align_corners=False)


def resize_center_crop(x: Tensor, resize: int, crop: int) -> Tensor:
    """Evaluation: shorter side to ``resize`` (0: as is), then the central ``crop`` square (0: all)."""
    if resize:
        x = resize_short(x, resize)
    if not crop:
        return x
    h, w = x.shape[-2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return x[..., top : top + crop, left : left + crop]


def center_view(x: Tensor, resize: int, crop: int) -> Tensor:
    """The evaluation view of a uint8 (N, H, W, C) batch, as uint8: ``resize_center_crop`` (both 0: as is)."""
    if not (resize or crop):
        return x
    return to_uint8(resize_center_crop(to_float(x), resize, crop))


def color_jitter(x: Tensor, strength: float, u: Tensor) -> Tensor:
    """Random brightness, contrast and saturation in [1 - strength, 1 + strength] per image, on a
    float batch in [0, 1]. Uses 3 draws per image."""
    factor = (1 + (u * 2 - 1) * strength).to(x.dtype)[:, :, None, None, None]  # (N, 3, 1, 1, 1)
    x = x * factor[:, 0]
    if x.shape[1] == 3:
        weights = GRAY_WEIGHTS.view(1, 3, 1, 1).to(x.device, x.dtype)
        gray = (x * weights).sum(1, keepdim=True)
        mean = gray.mean((2, 3), keepdim=True)
        x = (x - mean) * factor[:, 1] + mean
        gray = (x * weights).sum(1, keepdim=True)
        x = (x - gray) * factor[:, 2] + gray
    else:
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * factor[:, 1] + mean
    return x.clamp_(0, 1)


def pca_lighting(x: Tensor, std: float, u: Tensor) -> Tensor:
    """AlexNet-style lighting noise along the principal components of ImageNet's RGB pixels.
    Uses 3 draws per image (turned into normal deviates)."""
    if x.shape[1] != 3 or std <= 0:
        return x
    alpha = torch.special.ndtri(u.clamp(1e-6, 1 - 1e-6)) * std
    rgb = (alpha * PCA_EIGVAL.to(u.device)) @ PCA_EIGVEC.T.to(u.device)  # (N, 3)
    return x + rgb.to(x.dtype)[:, :, None, None]
