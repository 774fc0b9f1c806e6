"""Pretrained nets: a real trained run shipped into a store (as tools/ship_pretrained.py does), then
loaded through the API and the command line; every net the package ships loads, its checksum holds,
and it gives exactly its recorded test error."""

import json
import shutil

import pytest
import torch

import deepres
from conftest import TINY, cli
from deepres.data import load_dataset
from deepres.errors import DeepresError
from deepres.pretrained import STORE, STORE_VARIABLE, load_pretrained, package


@pytest.fixture(scope="module")
def shipped(tiny_cifar, tmp_path_factory):
    """(store, run): a one-epoch ResNet-20 on the tiny CIFAR slice, shipped as resnet20:tiny."""
    root = tmp_path_factory.mktemp("pretrained")
    run = root / "run"
    done = cli("train", *TINY, "--epochs", "1", "--data", tiny_cifar, "--precision", "fp32", "--out", run)
    assert done.returncode == 0, done.stderr
    store = root / "store"
    assert package(run, "tiny", store) == "resnet20:tiny"
    return store, run


@pytest.fixture
def in_store(shipped, monkeypatch):
    monkeypatch.setenv(STORE_VARIABLE, str(shipped[0]))
    return shipped


def test_a_shipped_net_loads_with_its_cfg(in_store, tiny_cifar):
    from deepres.train.checkpoint import load_checkpoint

    store, run = in_store
    assert deepres.list_pretrained() == ["resnet20:tiny"]
    model = deepres.create_model("resnet20", pretrained="tiny")
    assert not model.training
    cfg = model.pretrained_cfg
    assert cfg["normalize"] == "pixel-mean" and cfg["mean"].shape == (3, 32, 32) and cfg["std"] is None
    assert cfg["input_size"] == 32 and len(cfg["classes"]) == 10 and cfg["seed"] == 0
    assert cfg["recipe"] == "cifar-fast" and cfg["source_run"] == str(run) and cfg["data"] == tiny_cifar.name
    assert cfg["images_trained"] == 8 * 64 and cfg["test_images"] == 200  # 8 steps of 64; 20 test images a class
    last = load_checkpoint(run / "last.pt")
    assert all(torch.equal(v, last["model"][k]) for k, v in model.state_dict().items())
    assert torch.equal(cfg["mean"], last["pipeline"]["mean"])
    # the per-image record: one answer per test image, the recorded error recomputed from it
    answers = load_pretrained("resnet20:tiny")["test_predictions"]
    labels = torch.from_numpy(load_dataset(tiny_cifar).require("test").labels)
    assert answers.shape == (200,) and 100 * (answers != labels).sum().item() / 200 == cfg["test_error"]
    index = json.loads((store / "index.json").read_text())
    assert set(index) == {"resnet20:tiny"} and len(index["resnet20:tiny"]["sha256"]) == 64
    # shipped from the store's run, named by where its logs are committed
    logs = "results/x/runs/resnet20-s0"
    other = package(run, "tiny", store.parent / "other", source=logs)
    assert load_pretrained(other, store.parent / "other")["pretrained_cfg"]["source_run"] == logs


def test_eval_predict_export_and_fine_tuning_take_a_pretrained_name(in_store, tiny_cifar, cifar_sample, tmp_path):
    cfg = load_pretrained("resnet20:tiny")["pretrained_cfg"]
    done = cli("eval", "resnet20:tiny", "--data", tiny_cifar, "--precision", "fp32", "--format", "json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["top1_error_%"] == round(cfg["test_error"], 2) and row["images"] == cfg["test_images"]

    image = tmp_path / "cat.png"
    from PIL import Image

    Image.fromarray(cifar_sample.splits["test"].images[0]).save(image)
    done = cli("predict", "resnet20:tiny", image, "--top", "2", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert [r["class"] in cfg["classes"] for r in json.loads(done.stdout)] == [True, True]

    done = cli("export", "resnet20:tiny", "--format", "safetensors", "--out", tmp_path / "r20.safetensors")
    assert done.returncode == 0, done.stderr and (tmp_path / "r20.safetensors").is_file()

    tuned = tmp_path / "tuned"
    done = cli("train", *TINY, "--epochs", "1", "--data", tiny_cifar, "--init-weights", "resnet20:tiny",
                   "--out", tuned)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "initialised from resnet20:tiny" in (tuned / "log.txt").read_text()


def test_reproduce_responses_measures_pretrained_nets(in_store, tiny_cifar, tmp_path):
    """Fig. 7 from the shipped NET:TAG nets, nothing trained: the nets not shipped are named."""
    from deepres.analysis.responses import layer_responses
    from deepres.data import load_dataset
    from deepres.train.checkpoint import model_from_checkpoint

    out, store = tmp_path / "results", tmp_path / "runs"
    args = ["--pretrained", "tiny", "--data", tiny_cifar, "--out", out, "--runs", store]
    done = cli("reproduce", "responses", *args)
    assert done.returncode == 0, done.stderr
    assert not store.exists()  # nothing trained
    cfg = load_pretrained("resnet20:tiny")["pretrained_cfg"]
    report = (out / "responses" / "report.md").read_text()
    assert f"| resnet20:tiny | cifar-fast | 0 | 0.00 | {cfg['test_error']:.2f} |" in report
    assert "**Not shipped**: plain20:tiny, plain56:tiny, resnet56:tiny." in report and "Logs:" not in report
    assert "| resnet20 responds more weakly than plain20 | not shipped | - |" in report
    stds = json.loads((out / "responses" / "responses.json").read_text())
    model, pipeline, _ = model_from_checkpoint(load_pretrained("resnet20:tiny"), "resnet20:tiny")
    measured = dict(layer_responses(model, load_dataset(tiny_cifar).require("test"), pipeline))
    assert list(stds) == ["resnet20"] and stds["resnet20"] == pytest.approx(list(measured.values()), rel=1e-6)

    done = cli("reproduce", "cifar", *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--pretrained: cifar reports on nets it trains; only responses measures pretrained nets" in done.stderr


def test_a_damaged_or_unknown_net_is_a_one_line_error(in_store, tmp_path, monkeypatch):
    store, _ = in_store
    with pytest.raises(DeepresError, match=r"no pretrained net 'resnet56:tiny'; there are: resnet20:tiny"):
        deepres.create_model("resnet56", pretrained="tiny")
    with pytest.raises(DeepresError, match="the pretrained net is built as it was trained"):
        deepres.create_model("resnet20", pretrained="tiny", num_classes=100)
    damaged = tmp_path / "store"
    shutil.copytree(store, damaged)
    weights = damaged / "resnet20-tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the last tensor
    weights.write_bytes(bytes(data))
    monkeypatch.setenv(STORE_VARIABLE, str(damaged))
    done = cli("eval", "resnet20:tiny")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "resnet20-tiny.safetensors has sha256" in done.stderr and "a damaged file" in done.stderr


SHIPPED = sorted(json.loads((STORE / "index.json").read_text())) if (STORE / "index.json").is_file() else []


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_net_gives_its_recorded_test_error(name, cifar10_lossless):
    """Each net the package ships: its recorded error is that of its per-image record on the whole
    pixel-exact test set."""
    ckpt = load_pretrained(name)
    cfg, answers = ckpt["pretrained_cfg"], ckpt["test_predictions"]
    test = cifar10_lossless.require("test")
    assert len(answers) == cfg["test_images"] == 10_000
    assert 100 * (answers != torch.from_numpy(test.labels)).sum().item() / 10_000 == cfg["test_error"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_net_gives_its_recorded_answers_on_the_embedded_sample(name, cifar_sample):
    """Re-evaluated in fp32 on the 1,000 test images embedded in the package (pixel-exact, their
    places in the test set recorded), each shipped net gives exactly its recorded answers, on any
    machine (the whole set would cost minutes a net), save where its two best classes are tied to
    within float rounding: another CPU's kernels may break such a tie the other way."""
    from deepres.data.sample import sample_index
    from deepres.evaluate import split_log_probs
    from deepres.train.checkpoint import model_from_checkpoint

    ckpt = load_pretrained(name)
    model, pipeline, _ = model_from_checkpoint(ckpt, name)
    scores = split_log_probs(model, cifar_sample.require("test"), pipeline)
    answers = ckpt["test_predictions"][torch.from_numpy(sample_index("test"))].long()
    best = scores.topk(2, dim=1).values
    clear = best[:, 0] - best[:, 1] > 1e-4
    assert torch.equal(scores.argmax(1)[clear], answers[clear]) and (~clear).sum() <= 3


def test_predict_prints_every_probability_to_four_significant_digits(cifar10_lossless, tmp_path):
    """A confident net's last classes get probabilities far below 1e-4: printed to four significant
    digits, as the net computes them in-process, never rounded to 0."""
    from PIL import Image

    from deepres.evaluate import predict_probs
    from deepres.train.checkpoint import model_from_checkpoint

    image = cifar10_lossless.require("test").images[0]
    Image.fromarray(image).save(tmp_path / "x.png")
    done = cli("predict", "resnet20:cifar10", tmp_path / "x.png", "--top", "10", "--precision", "fp32",
               "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = {r["class"]: r["probability"] for r in json.loads(done.stdout)}
    model, pipeline, classes = model_from_checkpoint(load_pretrained("resnet20:cifar10"), "resnet20:cifar10")
    probs = predict_probs(model, pipeline, image, "fp32").tolist()
    assert min(probs) < 1e-4  # the case this is about
    assert all(printed[c] == pytest.approx(p, rel=1e-3) and printed[c] > 0 for c, p in zip(classes, probs, strict=True))
