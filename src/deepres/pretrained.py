"""Pretrained weights of the paper's nets, trained by deepres itself and shipped in the package.

A net is named ``NET:TAG`` (``resnet20:cifar10``). Each is one safetensors file in the store
(``deepres/weights/`` in the package; ``DEEPRES_PRETRAINED`` names another), holding the weights a
run reported, the preprocessing it was trained with (the per-pixel mean image, or mean and std), the
top-1 class it gives each test image (a record a later evaluation must match exactly), and,
in its metadata, everything a deepres checkpoint says about the net and its ``pretrained_cfg``: the
test error measured at packaging, the recipe, seed, data checksum and source run. ``index.json``
beside the files names each file and its sha256, which is checked on every load.

``package(run_dir, tag)`` makes an entry from a finished run directory (``tools/ship_pretrained.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from .errors import DeepresError, WeightsError
from .io import sha256, write_bytes_atomic, write_text_atomic

STORE = Path(__file__).parent / "weights"
STORE_VARIABLE = "DEEPRES_PRETRAINED"
INDEX = "index.json"
PIPELINE_TENSORS = ("mean", "std")  # the pipeline's tensors, stored beside the weights as pipeline.<name>
# Each test image's top-1 class as packaged (int16, the test split's order): a slice re-evaluated
# later must give exactly these, and the recorded test error is recomputed from them.
TEST_PREDICTIONS = "test.top1"


def store() -> Path:
    return Path(os.environ.get(STORE_VARIABLE) or STORE)


def _index(folder: Path) -> dict:
    path = folder / INDEX
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path}: not valid JSON ({e})") from None


def list_pretrained() -> list[str]:
    """The pretrained nets there are, as ``NET:TAG``."""
    return sorted(_index(store()))


def is_pretrained_name(target: str) -> bool:
    """``NET:TAG`` (and not an existing file or folder of that name)."""
    net, sep, tag = str(target).partition(":")
    return bool(sep and net and tag and "/" not in target) and not Path(target).exists()


def _entry(name: str, folder: Path | None = None) -> tuple[Path, dict]:
    folder = folder or store()
    index = _index(folder)
    if name not in index:
        there = ", ".join(sorted(index)) or f"none in {folder}"
        raise DeepresError(f"no pretrained net {name!r}; there are: {there}")
    return folder, index[name]


def load_pretrained(name: str, folder: Path | None = None) -> dict:
    """The pretrained net ``name`` (``NET:TAG``) as a deepres checkpoint dict (the fields eval,
    predict and export read), with its ``pretrained_cfg``. Its sha256 is checked first. ``folder``:
    another store than ``store()``."""
    from safetensors import safe_open

    from .train.checkpoint import FORMAT

    folder, entry = _entry(name, folder)
    path = folder / entry["file"]
    if not path.is_file():
        raise WeightsError(f"{name}: its file {path} is missing")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise WeightsError(f"{name}: {path} has sha256 {digest}, expected {entry['sha256']}: a damaged file")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["deepres"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    pipeline = dict(meta["pipeline"])
    for key in PIPELINE_TENSORS:
        pipeline[key] = tensors.get(f"pipeline.{key}")
    cfg = dict(meta["cfg"], mean=pipeline["mean"], std=pipeline["std"])
    return {
        "format": FORMAT, "model_name": meta["model_name"], "model_options": meta["model_options"],
        "in_chans": meta["in_chans"], "classes": meta["classes"], "pipeline": pipeline, "recipe": meta["recipe"],
        "model": weights, "ema": None, "step": meta["step"], "epoch": meta["epoch"], "pretrained_cfg": cfg,
        "test_predictions": tensors.get(TEST_PREDICTIONS),
    }  # fmt: skip


def pretrained_model(net: str, tag: str) -> nn.Module:
    """The trained net in eval mode, with ``model.pretrained_cfg``."""
    from .train.checkpoint import model_from_checkpoint

    name = f"{net}:{tag}"
    ckpt = load_pretrained(name)
    model, _, _ = model_from_checkpoint(ckpt, name)
    model.pretrained_cfg = ckpt["pretrained_cfg"]
    return model


def package(
    run: str | os.PathLike, tag: str, folder: str | os.PathLike | None = None, source: str | None = None
) -> str:
    """Ship the final weights of the finished run directory ``run`` as ``NET:TAG`` in ``folder`` (the
    store): its safetensors file and its line in index.json. Returns the name. ``source`` names the
    run in the cfg (say where its logs are committed; default: ``run``)."""
    from safetensors.torch import save

    from .train.checkpoint import load_checkpoint, reported_weights
    from .train.rundir import RunDir

    run, folder = Path(run), Path(folder) if folder is not None else store()
    rd = RunDir(run)
    if not rd.finished:
        raise DeepresError(f"{run}: not a finished run (no {RunDir.TEST})")
    ckpt = load_checkpoint(run / RunDir.LAST)  # the final weights: the test error the run reports is theirs
    test, recipe = rd.test(), ckpt["recipe"]
    data = Path(str(recipe["data"])).expanduser()
    pipeline = {k: v for k, v in ckpt["pipeline"].items() if k not in PIPELINE_TENSORS}
    size = ckpt["pipeline"].get("crop") or (ckpt["pipeline"].get("image_size") or [0])[0]
    answers, labels = _test_predictions(ckpt, name=str(run))
    test_error = 100 * (answers != labels).sum().item() / len(labels)
    cfg = {
        "normalize": pipeline["normalize"],
        "input": "RGB in [0, 1], then minus mean (the per-pixel mean image, C x H x W) for pixel-mean, "
        "else (x - mean) / std per channel",
        "input_size": size,
        "classes": list(ckpt["classes"]),
        "test_error": test_error,  # of these weights in fp32, centre crop: what loading them gives
        "test_images": len(labels),
        "test_split": test["test"].get("split", "test"),
        "run_test_error": test["test"]["top1_error"],  # as the run measured it (its precision, its test mode)
        "recipe": recipe["name"],
        "seed": recipe["seed"],
        "data": data.name,
        "data_sha256": sha256(data) if data.is_file() else None,
        "images_trained": ckpt["step"] * recipe["batch_size"],
        "source_run": source or str(run),
    }
    meta = {"model_name": ckpt["model_name"], "model_options": ckpt["model_options"], "in_chans": ckpt["in_chans"],
            "classes": ckpt["classes"], "pipeline": pipeline, "recipe": recipe, "step": ckpt["step"],
            "epoch": ckpt["epoch"], "cfg": cfg}  # fmt: skip
    tensors = {f"model.{k}": v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in reported_weights(ckpt).items()}  # fmt: skip
    for key in PIPELINE_TENSORS:
        if ckpt["pipeline"].get(key) is not None:
            tensors[f"pipeline.{key}"] = torch.as_tensor(ckpt["pipeline"][key]).float().contiguous()
    tensors[TEST_PREDICTIONS] = answers.to(torch.int16)
    name, file = f"{ckpt['model_name']}:{tag}", f"{ckpt['model_name']}-{tag}.safetensors"
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / file, save(tensors, metadata={"deepres": json.dumps(meta)}))
    index = _index(folder)
    index[name] = {"file": file, "sha256": sha256(folder / file)}
    write_text_atomic(folder / INDEX, json.dumps(dict(sorted(index.items())), indent=1) + "\n")
    return name


def _test_predictions(ckpt: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-1 class of each test image, the labels) for a checkpoint's reported weights in fp32 on
    its run's final test split."""
    from .data.dataset import ImageSet
    from .evaluate import predictions
    from .train.checkpoint import model_from_checkpoint
    from .train.parts import checkpoint_splits

    model, pipeline, _ = model_from_checkpoint(ckpt, name)
    _, _, test, _, _ = checkpoint_splits(ckpt, name)
    if not isinstance(test, ImageSet):
        raise DeepresError(f"{name}: its data {ckpt['recipe']['data']} has no in-memory split to test on")
    return predictions(model, test, pipeline), torch.from_numpy(test.labels).long()
