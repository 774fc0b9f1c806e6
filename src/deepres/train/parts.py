"""What a training run is made of, built from a recipe: the data and its splits, the pipeline, the
model, optimiser, loss, loader, lr schedule and EMA.

Building is separate from the loop (``trainer.py``) that receives the parts: a test or a benchmark
builds them, may change one (a loss that fails on purpose, a model of its own), and hands them to a
``Trainer``. The order of the steps below is the order in which they draw from the seeded global
random generators (the model's initialisation above all), so it is part of what a run computes.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from ..data import DataBundle, ImageSet, load_dataset, stratified_split
from ..data.dataset import FileSet, describe_change, fingerprint
from ..data.loader import FileLoader, MemoryLoader
from ..data.pipeline import Pipeline
from ..data.registry import NAMED
from ..errors import DeepresError
from ..hardware import resolve_precision, usable_cores
from ..models.registry import create_model
from .distributed import Dist, convert_sync_batchnorm
from .recipe import Recipe
from .schedule import LRSchedule


@dataclass
class Parts:
    recipe: Recipe
    dist: Dist
    precision: str  # resolved for this machine ("auto" never)
    bundle: DataBundle
    train_set: ImageSet | FileSet
    val_set: ImageSet | FileSet | None  # read every epoch: curves, best.pt
    test_set: ImageSet | FileSet | None  # the final test
    test_split: str  # the name of the split the final test reads
    data_fingerprint: str
    pipeline: Pipeline
    model: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: Callable[[Tensor, Tensor], Tensor]
    loader: MemoryLoader | FileLoader
    schedule: LRSchedule
    ema: nn.Module | None  # torch's AveragedModel of ``model``
    notes: list[str] = field(default_factory=list)  # for the run's log

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def memory_format(self) -> torch.memory_format:
        return memory_format(self.recipe)


def memory_format(recipe: Recipe) -> torch.memory_format:
    return torch.channels_last if recipe.channels_last else torch.contiguous_format


def split_data(bundle: DataBundle, recipe: Recipe):
    """(train, val or None, test or None, name of the split the final test uses, a note for the log).

    ``val`` is read every epoch (curves, best.pt); the final test reads the data's own test split,
    else its own val split (like ImageNet, whose test labels are not public: the paper reports on its
    val set). ``val_split`` holds images out of train for validation; it never replaces a held-out
    set the data brings: with the data's own val and test, it is not used."""
    train = bundle.require("train")
    own_val, test = bundle.splits.get("val"), bundle.splits.get("test")
    if own_val is not None and test is not None:
        note = f"the data has its own val and test splits: val_split={recipe.val_split} not used"
        return train, own_val, test, "test", note if recipe.val_split else ""
    if not recipe.val_split:
        return train, own_val, test if test is not None else own_val, "test" if test is not None else "val", ""
    train_idx, val_idx = stratified_split(train.labels, recipe.val_split, recipe.val_seed)
    train, val = train.subset(train_idx), train.subset(val_idx)
    if own_val is not None:
        note = (
            f"validation (curves, best.pt) on {len(val):,} images held out of train; "
            f"the final test on the data's own val split ({len(own_val):,} images)"
        )
        return train, val, own_val, "val", note
    return train, val, test if test is not None else val, "test" if test is not None else "val", ""


def checkpoint_splits(ckpt: dict, origin: str, data: str | None = None):
    """``split_data`` for the run a checkpoint comes from: its recipe's data and split, or ``data``
    (all of its training images, its own val and test), which must have the checkpoint's classes."""
    recipe = Recipe.from_dict(ckpt["recipe"], f"{origin} recipe")
    if data:
        recipe = recipe.replace(data=data, val_split=0)
    elif recipe.data not in NAMED and not os.path.exists(os.path.expanduser(recipe.data)):
        # A shipped net, or a run moved to another machine: the data path it recorded is not here.
        raise DeepresError(f"{origin}: the data it was trained on, {recipe.data}, is not here; pass --data "
                           f"(a folder or archive with its classes, or one of: {', '.join(NAMED)})")  # fmt: skip
    bundle = load_dataset(recipe.data)
    if bundle.classes != list(ckpt["classes"]):
        raise DeepresError(f"{recipe.data}: its {len(bundle.classes)} classes are not the {len(ckpt['classes'])} "
                           "the checkpoint was trained on")  # fmt: skip
    return split_data(bundle, recipe)


def build_parts(recipe: Recipe, dist: Dist | None = None, checkpoint: dict | None = None, origin: str = "") -> Parts:
    """The parts of a run of ``recipe`` (resolved). ``checkpoint``: the state a resumed run restores
    later (it fixes the pipeline and must have been trained on the same data); ``origin`` names it."""
    r = recipe
    dist = dist or Dist()
    torch.set_num_threads(r.threads or max(1, usable_cores() // dist.local_world))
    # Resolved per segment: a run resumed on another machine uses that machine's fast precision.
    precision = resolve_precision(r.precision, dist.device)
    if dist.device.type == "cuda":
        # Batches of one shape: cuDNN may time its algorithms once and keep the fastest. (Its choice can
        # differ from run to run, so on a GPU a resumed run agrees in its metrics rather than its bits.)
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(r.seed)
    np.random.seed(r.seed % 2**32)
    random.seed(r.seed)
    notes = []

    budget = int(r.memory_budget_gb * 2**30) or None
    bundle = load_dataset(r.data, budget, r.skip_bad_images)
    train_set, val_set, test_set, test_split, note = split_data(bundle, r)
    notes += [note] if note else []
    if bundle.skipped:
        notes.append(f"skipped {bundle.skipped:,} unreadable files of {r.data} (--skip-bad-images)")
    data_fingerprint = fingerprint(bundle)
    if checkpoint is not None and checkpoint.get("data", data_fingerprint) != data_fingerprint:
        raise DeepresError(
            f"{origin}: {r.data} is not the data the run started with "
            f"({describe_change(checkpoint['data'], data_fingerprint)}): an exact resume is impossible; "
            "restore that data or start a new run"
        )
    if checkpoint is not None:
        pipeline = Pipeline.from_state(checkpoint["pipeline"])
    else:
        pipeline = Pipeline.from_settings(r).fit(train_set, seed=r.seed, origin=r.data)

    model = create_model(r.model, num_classes=len(bundle.classes), in_chans=bundle.channels, **dict(r.model_options))
    if r.init_weights and checkpoint is None:
        notes.append(_init_weights(model, r.init_weights, r.init_skip_mismatch))
    if r.sync_bn and dist.world > 1:
        model = convert_sync_batchnorm(model)
    model.to(dist.device, memory_format=memory_format(r))
    optimizer = _optimizer(model, r)
    criterion = nn.CrossEntropyLoss(label_smoothing=r.label_smoothing)
    if isinstance(train_set, ImageSet):
        loader = MemoryLoader(train_set, r.batch_size, r.seed, dist.shard, dist.device)
    else:
        loader = FileLoader(train_set, r.batch_size, r.seed, pipeline, r.workers, dist.shard)
    if loader.steps_per_epoch < 1:
        raise DeepresError(f"--batch-size {r.batch_size}: larger than the training set")
    schedule = LRSchedule(r, loader.steps_per_epoch)
    if schedule.total < 1:
        raise DeepresError(
            f"--epochs {r.epochs:g}: less than one step ({loader.steps_per_epoch} steps of {r.batch_size} "
            "images make an epoch)"
        )
    ema = None
    if r.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(r.ema_decay), use_buffers=True)
    return Parts(
        r, dist, precision, bundle, train_set, val_set, test_set, test_split, data_fingerprint,
        pipeline, model, optimizer, criterion, loader, schedule, ema, notes,
    )  # fmt: skip


def _init_weights(model: nn.Module, path: str, skip_mismatch: bool) -> str:
    """Start from other weights (fine-tuning): a state dict, a deepres checkpoint (the weights it
    reports) or a pretrained net (``NET:TAG``). Strict unless ``skip_mismatch``, which keeps the fresh
    layers that do not fit (e.g. a new classifier). Returns the line for the log."""
    from ..models.weights import load_state_dict_checked, read_state_dict
    from ..pretrained import is_pretrained_name, load_pretrained

    state = load_pretrained(path)["model"] if is_pretrained_name(path) else read_state_dict(path)
    report = load_state_dict_checked(model, state, strict=not skip_mismatch, origin=f"--init-weights {path}")
    kept = sum(len(v) for v in report.values())
    return f"initialised from {path}" + (f" ({kept} keys did not fit and stay fresh)" if kept else "")


def _optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if r.decay_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": r.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if r.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov and r.momentum > 0)
    return torch.optim.AdamW(groups, lr=r.lr)
