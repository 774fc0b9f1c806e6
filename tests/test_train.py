"""End to end on real data: train ResNet-20 on a slice of the real CIFAR-10, then evaluate,
predict and plot from its run directory, all through the command line."""

import json
import os
import tomllib

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from conftest import cli, missing, stratified, write_cifar10_pickles


@pytest.fixture(scope="module")
def cifar_slice(cifar_sample, tmp_path_factory):
    """5,000 real training and 1,000 real test images (the embedded sample), as official-format pickles."""
    tr, te = cifar_sample.splits["train"], cifar_sample.splits["test"]
    i, j = stratified(tr.labels, 500), stratified(te.labels, 100)
    root = tmp_path_factory.mktemp("slice") / "cifar-10-batches-py"
    return write_cifar10_pickles(root, tr.images[i], tr.labels[i], te.images[j], te.labels[j], cifar_sample.classes)


@pytest.fixture(scope="module")
def trained_run(cifar_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r20"
    result = cli(
        "train",
        "--recipe",
        "cifar-fast",
        "--data",
        cifar_slice,
        "--val-split",
        "500",
        "--epochs",
        "2",
        "--warmup",
        "1",
        "--out",
        out,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_training_learns_real_cifar(trained_run):
    out, result = trained_run
    test = json.loads((out / "test.json").read_text())
    # 4,500 training images, 2 epochs: far from the 90 % of chance (63.7 % in fp32; 4 epochs gave 56 %).
    assert test["test"]["n"] == 1000 and test["test"]["top1_error"] < 75
    assert "test error" in result.stdout


def test_run_directory_holds_everything(trained_run):
    out, _ = trained_run
    assert {"recipe.toml", "env.json", "metrics.jsonl", "last.pt", "best.pt", "test.json", "log.txt"} <= {
        p.name for p in out.iterdir()
    }
    recipe = tomllib.loads((out / "recipe.toml").read_text())
    assert recipe["epochs"] == 2 and recipe["model"] == "resnet20" and recipe["name"] == "cifar-fast"
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["cores"] >= 1 and "cpu" in env
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 3))
    assert {"train_loss", "train_error", "val_error", "lr", "seconds", "step"} <= set(rows[0])
    assert rows[-1]["train_error"] < rows[0]["train_error"]
    assert len(list(out.glob(".*tmp"))) == 0  # no half-written files


def test_eval_command(trained_run):
    out, _ = trained_run
    result = cli("eval", out, "--which", "last", "--split", "val", "--ten-crop", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["mode"] == "ten-crop" and rows[0]["images"] == 500  # the held-out split of the run's recipe
    test = json.loads((out / "test.json").read_text())["test"]
    center = json.loads(cli("eval", out / "last.pt", "--format", "json").stdout)[0]
    assert center["images"] == 1000 and center["top1_error_%"] == pytest.approx(test["top1_error"], abs=0.01)


def test_predict_command(trained_run, cifar10, tmp_path):
    out, _ = trained_run
    paths = []
    for k in range(2):
        img = cifar10.splits["test"].images[np.flatnonzero(cifar10.splits["test"].labels == 6)[k]]  # frogs
        Image.fromarray(img).resize((96, 96)).save(tmp_path / f"frog{k}.png")
        paths.append(tmp_path / f"frog{k}.png")
    result = cli("predict", out, *paths, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 10 and [r["rank"] for r in rows[:5]] == [1, 2, 3, 4, 5]
    assert sum(r["probability"] for r in rows[:5]) <= 1.0001
    assert rows[0]["probability"] >= rows[1]["probability"]
    bad = cli("predict", out, tmp_path / "missing.png")
    assert bad.returncode == 2 and "missing.png: no such file" in bad.stderr


def test_exported_checkpoint_includes_its_preprocessing(trained_run, cifar10, tmp_path):
    """An ONNX export of a trained run takes plain RGB in [0, 1] and gives deepres's own scores."""
    from deepres.train.checkpoint import load_checkpoint, model_from_checkpoint

    out, _ = trained_run
    onnx_path = tmp_path / "r20.onnx"
    result = cli("export", out, "--format", "onnx", "--out", onnx_path)
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "r20.onnx.json").read_text())
    assert info["classes"] == cifar10.classes and info["input_shape"] == ["batch", 3, 32, 32]

    model, pipeline, _ = model_from_checkpoint(load_checkpoint(out / "best.pt"))
    images = torch.from_numpy(cifar10.splits["test"].images[:16])  # real test images, uint8 NHWC
    with torch.no_grad():
        expected = model(pipeline.eval_batch(images)).numpy()
    plain = (images.permute(0, 3, 1, 2).float() / 255).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": plain})[0]
    assert np.abs(got - expected).max() <= 1e-4


def test_plot_command(trained_run, tmp_path):
    out, _ = trained_run
    png = tmp_path / "curves.png"
    result = cli("plot", out, out, "--label", "a", "--label", "b", "--out", png)
    assert result.returncode == 0, result.stderr
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_default_train_uses_the_embedded_sample(tmp_path):
    result = cli("train", "--epochs", "0.2", "--out", tmp_path / "run", cwd=tmp_path)  # 7 steps
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cifar10-sample" in result.stdout
    assert json.loads((tmp_path / "run" / "test.json").read_text())["test"]["n"] == 1000


def test_streamed_image_folder_trains(tmp_path):
    """Mixed-size photos stream from disk through worker processes, ImageNet-style."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / "photos" / split / c).mkdir(parents=True)
            for i in range(8):
                size = (40 + 8 * (i % 3), 36)
                Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
                    tmp_path / "photos" / split / c / f"{i}.jpg"
                )
    result = cli(
        "train",
        "--model",
        "resnet18",
        "--data",
        tmp_path / "photos",
        "--augment",
        "imagenet",
        "--crop",
        "32",
        "--resize",
        "36",
        "--scale-min",
        "36",
        "--scale-max",
        "44",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "1",
        "--val-split",
        "0",
        "--out",
        tmp_path / "run",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    test = json.loads((tmp_path / "run" / "test.json").read_text())["test"]
    assert test["split"] == "val" and test["n"] == 16


# The code the paper-schedule runs still in flight started with: whatever is restructured since, the
# in-memory training path must compute exactly what it computed then, so that they resume unchanged.
RUNS_IN_FLIGHT_BEGAN_WITH = "f31e441d4d4619d8164f4f1cee610d61163ae926"


def test_training_numerics_unchanged_since_the_runs_in_flight_began(tiny_cifar, tmp_path):
    """The same short run (the paper's recipe, both lr drops) by that commit's code and by this one,
    side by side on this machine: the same weights, bit for bit."""
    import subprocess
    import sys

    from conftest import ROOT, final_weights

    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", RUNS_IN_FLIGHT_BEGAN_WITH, "src"],
                             capture_output=True)  # fmt: skip
    if archive.returncode != 0:
        missing(f"no git history holding {RUNS_IN_FLIGHT_BEGAN_WITH[:7]} (a shallow clone or an sdist)")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    args = ["train", "--recipe", "cifar-paper", "--data", str(tiny_cifar), "--val-split", "128", "--batch-size", "64"]
    args += ["--iterations", "20", "--milestones", "8,14", "--eval-batch-size", "128", "--precision", "fp32"]
    args += ["--threads", "1"]  # the two runs side by side, one core each
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = [subprocess.Popen([sys.executable, "-m", "deepres.cli", *args, "--out", str(out)], text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**env, "PYTHONPATH": str(code)})
             for code, out in ((old / "src", tmp_path / "then"), (ROOT / "src", tmp_path / "now"))]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-1500:]
    then, now = final_weights(tmp_path / "then"), final_weights(tmp_path / "now")
    assert then.keys() == now.keys() and all(torch.equal(then[k], now[k]) for k in then)


@pytest.mark.parametrize("flip", ["random", "alternate"])
def test_alternating_flips_show_each_image_both_ways_every_two_epochs(tiny_cifar, tmp_path, flip):
    """Through the real loader, draws and pipeline (no padding, so the flip is the only change): with
    alternating flips every image is flipped in exactly one of two consecutive epochs, half of them in
    the first; with random flips (the paper's) about half keep their flip from one epoch to the next."""
    from deepres.train.parts import build_parts
    from deepres.train.recipe import load_recipe
    from deepres.train.trainer import Trainer

    recipe = load_recipe("cifar-paper").replace(data=str(tiny_cifar), val_split=0, batch_size=64, epochs=3,
                                                milestones=[], pad=0, flip=flip, precision="fp32")  # fmt: skip
    trainer = Trainer(build_parts(recipe.resolved()), tmp_path / "run", quiet=True)
    steps, pipeline = trainer.loader.steps_per_epoch, trainer.pipeline

    def flipped(epoch: int) -> dict[bytes, bool]:  # each image seen (by its pixels): mirrored or not
        seen = {}
        for s, (x, _) in enumerate(trainer.loader.epoch(epoch)):
            out = pipeline.train_batch(x, trainer.draws(epoch * steps + s))
            same, mirrored = pipeline.eval_batch(x), pipeline.eval_batch(x.flip(2))
            for i in range(len(x)):
                assert torch.equal(out[i], same[i]) or torch.equal(out[i], mirrored[i])
                seen[x[i].numpy().tobytes()] = not torch.equal(out[i], same[i])
        return seen

    epochs = [flipped(e) for e in range(3)]
    for a, b in zip(epochs[:-1], epochs[1:], strict=True):
        both = a.keys() & b.keys()  # an epoch's last partial batch is dropped: other images each epoch
        kept = sum(a[k] == b[k] for k in both) / len(both)
        assert len(both) > 400 and (kept == 0.0 if flip == "alternate" else 0.35 < kept < 0.65), kept
    assert 0.4 < sum(epochs[0].values()) / len(epochs[0]) < 0.6


def test_a_trainer_built_in_process_from_its_parts_trains_as_deepres_train_does(tiny_cifar, tiny_run, tmp_path):
    """The parts are built apart from the loop: a test builds them, hands them to a Trainer, and
    drives single steps through the public call the benchmark uses; the run equals the CLI's."""
    from conftest import assert_same_run
    from deepres.train.parts import build_parts
    from deepres.train.recipe import load_recipe
    from deepres.train.trainer import Trainer

    recipe = load_recipe("cifar-fast").replace(
        data=str(tiny_cifar), val_split=128, batch_size=64, epochs=3, warmup=1, eval_batch_size=128, precision="fp32"
    )
    parts = build_parts(recipe.resolved())
    assert parts.loader.steps_per_epoch == len(parts.train_set) // 64 and parts.val_set is not parts.test_set
    Trainer(parts, tmp_path / "in-process", quiet=True).run()
    assert_same_run(tmp_path / "in-process", tiny_run)  # `deepres train` with the same flags (TINY)

    # One step at a time, as benchmarks/bench.py drives it: same draws for the same step, the loss moves.
    trainer = Trainer(build_parts(recipe.resolved()), tmp_path / "steps", quiet=True)
    assert torch.equal(trainer.draws(5), trainer.draws(5)) and not torch.equal(trainer.draws(5), trainer.draws(6))
    x, y = next(iter(trainer.loader.epoch(0)))
    losses = [trainer.train_step(x, y, 0)[0][1].item() / len(y) for _ in range(8)]
    assert losses[-1] < losses[0]


def test_fig6_axis_ends_at_the_papers_20_percent_unless_a_curve_ends_above(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepres.analysis.curves import Panel, plot_panels, plot_runs

    def run(name: str, errors: list[float]) -> str:
        folder = tmp_path / name
        folder.mkdir()
        rows = [
            {"epoch": i + 1, "step": 100 * (i + 1), "train_error": e, "val_error": e + 1} for i, e in enumerate(errors)
        ]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(folder)

    long_run = run("long", [90.0, 40.0, 20.0, 12.0, 9.0, 7.0, 6.0, 5.0, 4.5, 4.0, 3.8, 3.5])
    short_run = run("short", [90.0, 70.0])
    fig, ax = plt.subplots()
    plot_runs([long_run], tmp_path / "unused.png", ax=ax, y_top=20.0)
    assert ax.get_ylim() == (0, 20.0)  # the first epochs run off the axis, as in the paper's figure
    ax.clear()
    plot_runs([long_run, short_run], tmp_path / "unused.png", ax=ax, y_top=20.0)
    assert ax.get_ylim()[1] == pytest.approx(71.0 * 1.15)  # a short run's end stays on the axis
    ax.clear()
    plot_runs([long_run], tmp_path / "unused.png", ax=ax)
    assert ax.get_ylim()[1] == 100  # no y_top: every validation point fits (the first is 91 %)
    plt.close(fig)

    # A panel's own y_top wins over the figure's (the shortcuts figure: an ImageNet-style net beside CIFAR nets).
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    panels = [Panel("cifar", [long_run], ["a"]), Panel("imagenet", [long_run], ["a"], y_top=40.0)]
    assert plot_panels(panels, tmp_path / "panels.png", y_top=20.0).is_file()
    assert [ax.get_ylim() for ax in closed[0].axes] == [(0, 20.0), (0, 40.0)]
