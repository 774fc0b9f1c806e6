"""Bad input and faults, as a careless or hostile user makes them: each case is one line naming what
it does and the one-line error it must give (exit 2, no traceback, nothing written). Cases whose
right answer is a result rather than an error (a 16-bit image decoded right, a held-out set kept)
follow the table, with real files and, where the process is the point, real processes."""

import gzip
import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import cli, idx_bytes, load_bench, make_folder, missing, write_cifar10_pickles
from deepres.cli import main

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
QUICK = ["--epochs", "1", "--batch-size", "4", "--val-split", "0"]


# --- builders: each makes one bad thing under tmp (a pytest tmp_path) and returns it ---------------
def cifar(tmp, labels=None, test_labels=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(20) % 10 if labels is None else labels
    test_labels = np.arange(10) if test_labels is None else test_labels
    return write_cifar10_pickles(tmp / "cifar-10-batches-py", images, labels, images[:10], test_labels, CLASSES)


def cifar_text_labels(tmp):
    root = cifar(tmp)
    batch = pickle.loads((root / "data_batch_1").read_bytes(), encoding="bytes")
    batch[b"labels"] = ["cat"] * len(batch[b"labels"])
    (root / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    return root


def idx(tmp, n=10, label=3):
    root = tmp / "mnist"
    root.mkdir()
    (root / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((n, 28, 28), np.uint8)))
    (root / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(n, label, np.uint8)))
    return root


def tar_of(tmp, folder, name="pets.tar", mode="w"):
    path = tmp / name
    with tarfile.open(path, mode) as tf:
        tf.add(folder, arcname=folder.name)
    return path


def damaged_member_header(tmp):
    path = tar_of(tmp, make_folder(tmp / "pets", per_class=20))
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as tf:
        middle = tf.getmembers()[40].offset
    data[middle + 148 : middle + 156] = b"99999999"  # the header's checksum field
    path.write_bytes(bytes(data))
    return path


def gzip_crc_failure(tmp):
    path = tar_of(tmp, make_folder(tmp / "pets", per_class=20), "pets.tar.gz", "w:gz")
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path.write_bytes(bytes(data))
    return path


def empty_tar_gz(tmp):
    (tmp / "empty.tar.gz").write_bytes(gzip.compress(b""))
    return tmp / "empty.tar.gz"


def with_fifo(tmp):
    root = make_folder(tmp / "pets", per_class=4)
    os.mkfifo(root / "train" / "cat" / "pipe.png")
    return root


def with_device_link(tmp):
    root = make_folder(tmp / "pets", per_class=4)
    os.symlink("/dev/zero", root / "train" / "cat" / "zero.png")
    return root


def checkpoint(tmp, **changes):
    """A real deepres checkpoint (ResNet-20, no training) with some fields replaced."""
    from deepres import create_model
    from deepres.train.checkpoint import FORMAT

    state = {"format": FORMAT, "version": 1, "model_name": "resnet20", "model_options": {}, "in_chans": 3,
             "classes": CLASSES, "pipeline": {"augment": "cifar", "normalize": "none"}, "recipe": {},
             "model": create_model("resnet20").state_dict(), "ema": None}  # fmt: skip
    state.update(changes)
    torch.save(state, tmp / "c.pt")
    return tmp / "c.pt"


def nan_weights(tmp):
    from deepres import create_model

    weights = create_model("resnet20").state_dict()
    weights["fc.weight"][0, 0] = float("nan")
    return checkpoint(tmp, model=weights)


def image(tmp):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp / "x.png")
    return tmp / "x.png"


def file(tmp, name="notes.txt", data=b"hello"):
    (tmp / name).write_bytes(data)
    return tmp / name


# (case, argv from the builders, fragments the one-line error must contain)
BAD_INPUT = [
    ("tar member header", lambda t: ["train", "--data", damaged_member_header(t), *QUICK], ["corrupt archive: the member header at byte"]),
    ("gzip CRC", lambda t: ["train", "--data", gzip_crc_failure(t), *QUICK], ["pets.tar.gz: truncated or corrupt archive"]),
    ("empty .tar.gz", lambda t: ["train", "--data", empty_tar_gz(t), *QUICK], ["empty.tar.gz: truncated or corrupt archive (ReadError: file could not be opened successfully)"]),
    ("CIFAR label 99", lambda t: ["train", "--data", cifar(t, labels=np.full(20, 99)), *QUICK], ["train label 99 is not a class index (expected 0 to 9"]),
    ("CIFAR label -1", lambda t: ["train", "--data", cifar(t, test_labels=np.full(10, -1)), *QUICK], ["test label -1 is not a class index"]),
    ("CIFAR text labels", lambda t: ["train", "--data", cifar_text_labels(t), *QUICK], ["data_batch_1: CIFAR batch whose data or labels are not numbers"]),
    ("IDX label 12", lambda t: ["train", "--data", idx(t, label=12), *QUICK], ["train label 12 is not a class index"]),
    ("IDX of no images", lambda t: ["train", "--data", idx(t, n=0), *QUICK], ["the train split has no images"]),
    ("mixed sizes", lambda t: ["train", "--data", make_folder(t / "p", sizes=((32, 32), (40, 48)), per_class=4), *QUICK], ["images differ in size (32x32, 40x48)", "--crop N"]),
    ("FIFO in a folder", lambda t: ["train", "--data", with_fifo(t), *QUICK], ["train/cat/pipe.png is not a readable image"]),
    ("link to /dev/zero", lambda t: ["train", "--data", with_device_link(t), *QUICK], ["train/cat/zero.png is not a readable image"]),
    ("--out is a file", lambda t: ["train", *QUICK, "--out", file(t)], ["--out", "notes.txt: exists and is not a folder"]),
    ("--out name too long", lambda t: ["train", *QUICK, "--out", t / ("x" * 300)], ["--out", "cannot write a run directory there (File name too long)"]),
    ("export --out a folder", lambda t: ["export", "resnet20", "--format", "safetensors", "--out", t], ["a folder; expected the name of a file to write"]),
    ("eval --batch-size 0", lambda t: ["eval", checkpoint(t), "--batch-size", "0"], ["argument --batch-size: expected a number >= 1, got 0"]),
    ("eval --batch-size -4", lambda t: ["eval", checkpoint(t), "--batch-size", "-4"], ["argument --batch-size: expected a number >= 1, got -4"]),
    ("eval, its data moved", lambda t: ["eval", checkpoint(t, recipe={"data": str(t / "gone.tar.xz")})], ["c.pt: the data it was trained on, ", "gone.tar.xz, is not here; pass --data", "cifar10"]),
    ("predict --top -3", lambda t: ["predict", checkpoint(t), image(t), "--top", "-3"], ["argument --top: expected a number >= 1"]),
    ("predict --top 0", lambda t: ["predict", checkpoint(t), image(t), "--top", "0"], ["argument --top: expected a number >= 1"]),
    ("export --input-size -5", lambda t: ["export", "resnet20", "--input-size", "-5"], ["argument --input-size: expected a number >= 1"]),
    ("export --num-classes 0", lambda t: ["export", "resnet20", "--num-classes", "0"], ["argument --num-classes: expected a number >= 1"]),
    ("summary --input-size -1", lambda t: ["summary", "resnet20", "--input-size", "-1"], ["argument --input-size: expected a number >= 1"]),
    ("--memory-budget-gb nan", lambda t: ["train", *QUICK, "--memory-budget-gb", "nan"], ["memory_budget_gb=nan: expected a finite number"]),
    ("--gamma nan", lambda t: ["train", *QUICK, "--gamma", "nan"], ["gamma=nan: expected a finite number"]),
    ("--warmup-lr nan", lambda t: ["train", *QUICK, "--warmup-lr", "inf"], ["warmup_lr=inf: expected a finite number"]),
    ("checkpoint classes an int", lambda t: ["predict", checkpoint(t, classes=7), image(t)], ["c.pt: damaged deepres checkpoint: 'classes' is a int"]),
    ("checkpoint pipeline odd", lambda t: ["predict", checkpoint(t, pipeline={"colour": 1}), image(t)], ["damaged deepres checkpoint"]),
    ("checkpoint NaN weights", lambda t: ["predict", nan_weights(t), image(t)], ["holds weights that are not finite numbers"]),
    ("--recipe a binary file", lambda t: ["train", "--recipe", file(t, "r.toml", b"\xff\xfe\x00\x81")], ["--recipe", "r.toml: not a text file"]),
    ("--data ~nosuchuser", lambda t: ["train", "--data", "~nosuchuser9/x", *QUICK], ["~nosuchuser9/x: no such user's home folder"]),
    ("--epochs under a step", lambda t: ["train", "--data", make_folder(t / "p", per_class=4), "--batch-size", "4", "--val-split", "0", "--epochs", "0.01"], ["--epochs 0.01: less than one step (2 steps of 4 images"]),
    ("--model-options of a wrong type", lambda t: ["train", *QUICK, "--model-options", "widths=abc"], ["model 'resnet20': option widths='abc' is not a tuple of whole numbers"]),
    ("--init-weights a folder", lambda t: ["train", *QUICK, "--init-weights", t], ["a folder, not a weights file"]),
    ("--flip sideways", lambda t: ["train", *QUICK, "--flip", "sideways"], ["flip", "sideways", "random, alternate"]),
    ("--flip alternate, imagenet crops", lambda t: ["train", *QUICK, "--flip", "alternate", "--augment", "imagenet", "--crop", "24", "--scale-min", "32", "--scale-max", "40"], ["flip='alternate' needs augment cifar or flip (got augment='imagenet')"]),
]  # fmt: skip


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, fragments):
    (tmp_path / "in").mkdir()
    args = [str(a) for a in argv(tmp_path / "in")]
    if args[0] == "train" and "--out" not in args:
        args += ["--out", str(tmp_path / "run")]
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as e:  # argparse: a flag of the wrong kind
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err and err.startswith("deepres ") and "error:" in err, err
    for f in fragments:
        assert f in err, (f, err)
    assert not (tmp_path / "run").exists()  # nothing written, not even an empty run directory


# --- right answers, not errors -------------------------------------------------------------------------
def test_16_bit_images_keep_their_picture(tmp_path):
    """PIL's own convert clips 16-bit grey to 255: every pixel white. They are rescaled instead."""
    from deepres.data import load_dataset

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "d" / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 65536, (32, 32), dtype=np.uint16)).save(
                    tmp_path / "d" / split / c / f"{i}.png"
                )
    b = load_dataset(tmp_path / "d")
    first = np.asarray(Image.open(tmp_path / "d" / "train" / "a" / "0.png"), dtype=np.float64)
    assert b.channels == 1
    np.testing.assert_allclose(b.splits["train"].images[0, ..., 0], np.rint(first * 255 / 65535), atol=0)


def test_a_folders_own_val_split_is_the_final_test(tmp_path):
    """train/ + val/ with a recipe that holds out part of train (imagenet-quarter): the held-out part
    selects, the folder's own val/ is what the run reports."""
    root = make_folder(tmp_path / "pets", per_class=12, splits=("train", "val"))
    out = tmp_path / "run"
    done = cli("train", "--data", root, "--recipe", "imagenet-quarter", "--crop", "28", "--resize", "32",
                   "--scale-min", "32", "--scale-max", "40", "--val-split", "4", "--batch-size", "4", "--epochs", "1",
                   "--warmup", "0.5", "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stderr[-1500:]
    test = json.loads((out / "test.json").read_text())["test"]
    assert test["split"] == "val" and test["n"] == 24  # all of val/, none of train/
    log = (out / "log.txt").read_text()
    assert "validation (curves, best.pt) on 4 images held out of train; the final test on the data's own val" in log


def test_a_warm_up_longer_than_the_run_is_shortened_and_said(tmp_path):
    out = tmp_path / "run"
    done = cli(
        "train",
        "--data",
        make_folder(tmp_path / "pets", per_class=4),
        "--batch-size",
        "4",
        "--val-split",
        "0",
        "--epochs",
        "1",
        "--out",
        out,
    )  # fmt: skip  (sample: warmup 3 epochs)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "warmup=3 epochs is not shorter than the run (1 epochs)" in done.stdout
    assert "warmup = 0.2" in (out / "recipe.toml").read_text()  # a fifth of the run, stored with it


def test_skipped_images_are_counted(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=4)
    (root / "train" / "cat" / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "run"
    done = cli("train", "--data", root, *QUICK, "--skip-bad-images", "true", "--out", out)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "skipped 1 unreadable files" in (out / "log.txt").read_text()
    assert json.loads((out / "test.json").read_text())["skipped_images"] == 1


def test_non_utf8_file_names_train(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=4)
    os.rename(root / "train" / "cat" / "0.png", os.fsdecode(os.fsencode(root / "train" / "cat") + b"/caf\xe9.png"))
    out = os.fsencode(tmp_path) + b"/r\xe9sum\xe9"
    cmd = [sys.executable, "-m", "deepres.cli", "train", "--data", root, *QUICK, "--out", out]
    done = subprocess.run(cmd, capture_output=True)  # bytes: the output names the run as it is on disk
    assert done.returncode == 0, done.stderr[-1500:]
    assert b"run directory " + out in done.stdout and b"caf\xe9.png" not in done.stderr
    with open(out + b"/test.json") as f:
        assert json.load(f)["test"]["n"] == 8


def test_diverging_run_under_nan_policy_skip_keeps_no_nan_checkpoint(tmp_path):
    """An lr of 1e6 overflows the weights through finite losses; every later step is then skipped.
    The run stops (exit 2) instead of saving NaN weights and reporting a 0.00 % training error."""
    out = tmp_path / "run"
    done = cli("train", "--data", make_folder(tmp_path / "pets", per_class=8), *QUICK, "--lr", "1e6",
                   "--nan-policy", "skip", "--out", out)  # fmt: skip
    assert done.returncode == 2, done.stderr[-1500:]
    assert "the run diverged" in done.stderr and "Traceback" not in done.stderr
    assert not (out / "test.json").exists()
    if (out / "last.pt").exists():
        state = torch.load(out / "last.pt", weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_resume_on_changed_data_is_refused(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=12)
    out = tmp_path / "run"
    first = cli("train", "--data", root, "--val-split", "0", "--batch-size", "4", "--epochs", "2", "--out", out,
                    "--checkpoint-every", "0.00001", "--set", "eval_every=1")  # fmt: skip
    assert first.returncode == 0, first.stderr[-1500:]
    ckpt = torch.load(out / "last.pt", weights_only=True)
    ckpt["step"], ckpt["epoch"], ckpt["epoch_step"] = 3, 0, 3  # as if stopped early in the first epoch
    torch.save(ckpt, out / "last.pt")
    (root / "train" / "dog" / "0.png").unlink()
    again = cli("train", "--resume", out)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert "is not the data the run started with (train: 24 -> 23 images)" in again.stderr


def test_two_trainings_on_one_run_directory(tmp_path):
    """The second is refused while the first runs; the first finishes untouched."""
    out = tmp_path / "run"
    root = make_folder(tmp_path / "pets", per_class=200)
    cmd = [sys.executable, "-m", "deepres.cli", "train", "--data", str(root), "--val-split", "0", "--batch-size", "4",
           "--epochs", "2", "--out", str(out)]  # fmt: skip
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / ".lock").exists() and time.time() - t0 < 60:
        time.sleep(0.05)
    second = cli("train", "--data", root, "--val-split", "0", "--batch-size", "4", "--epochs", "2", "--out", out)
    assert second.returncode == 2 and "in use by another deepres training (pid" in second.stderr, second.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-1500:]
    assert json.loads((out / "test.json").read_text())["test"]["n"] == 400


@pytest.mark.parametrize("started_ignoring_it", [False, True])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, started_ignoring_it):
    """Also in a process started with SIGINT ignored, as a shell without job control starts `cmd &`
    (the loops that train the reports): `kill -INT` must stop it before training begins too."""
    out = tmp_path / "run"
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if started_ignoring_it else None
    proc = subprocess.Popen([sys.executable, "-m", "deepres.cli", "train", "--epochs", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore)  # fmt: skip
    time.sleep(1.0)  # importing torch, loading the data: before the first step
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 128 + signal.SIGINT), err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    if proc.returncode == 130:  # stopped before training: no run directory left behind
        assert not out.exists()


def test_bench_without_onnxruntime_leaves_its_column_out(monkeypatch, capsys):
    bench = load_bench()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on `pip install -e .`
    monkeypatch.setattr(bench, "PEAK", {"fp32": 100.0, "bf16": 100.0})
    rows = bench.bench_inference(["resnet18"], [1], 1, quick=True)
    assert "onnxruntime is not installed" in capsys.readouterr().out
    assert rows[0]["deepres img/s"] > 0 and not any("onnxruntime" in k for k in rows[0])


def test_read_only_places(tmp_path):
    """A run directory or a cache on a read-only mount: one line naming it (needs root to mount)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True).returncode:
        missing("cannot mount a read-only tmpfs here (needs root)")
    try:
        pets = make_folder(tmp_path / "pets", per_class=4)
        result = cli("train", "--data", pets, *QUICK, "--out", ro / "run")
        assert result.returncode == 2 and "cannot write a run directory there (Read-only file system)" in result.stderr
        mixed = tar_of(tmp_path, make_folder(tmp_path / "mixed", sizes=((32, 32), (40, 48)), per_class=4))
        env = {"DEEPRES_CACHE": str(ro / "cache")}
        result = cli("train", "--data", mixed, *QUICK, "--crop", "32", "--out", tmp_path / "r2", env=env)
        assert result.returncode == 2 and "set DEEPRES_CACHE to a writable folder" in result.stderr, result.stderr
        done = cli("train", "--data", pets, *QUICK, "--out", tmp_path / "r3", env=env)  # caching is optional
        assert done.returncode == 0, done.stderr[-1500:]
    finally:
        subprocess.run(["umount", str(ro)])


def test_one_line_even_for_a_multi_line_reason(capsys):
    import deepres.cli as cli

    args = cli.build_parser().parse_args(["models"])
    assert cli.fail(args, "first line\nsecond line", 2) == 2
    assert capsys.readouterr().err == "deepres models: error: first line second line\n"


def test_onnx_export_without_onnx_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as on `pip install -e .`
    assert main(["export", "resnet20", "--out", str(tmp_path / "r.onnx")]) == 2
    assert "ONNX export needs the onnx package: pip install 'deepres[export]'" in capsys.readouterr().err
    assert not (tmp_path / "r.onnx").exists()


def test_ctrl_c_while_streaming_stops_the_run_not_its_workers(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group, DataLoader workers included: the run
    stops at a step with a checkpoint, as in memory, instead of failing on a dead worker."""
    root = make_folder(tmp_path / "mixed", sizes=((32, 32), (40, 48)), per_class=400)  # streamed: mixed sizes
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deepres.cli", "train", "--data", str(root), "--crop", "32", "--val-split", "0",
           "--batch-size", "8", "--epochs", "3", "--workers", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    t0 = time.time()
    while not (out / "log.txt").exists() and time.time() - t0 < 120:
        time.sleep(0.1)
    time.sleep(2.0)  # workers up and decoding
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and err.strip().count("\n") == 0 and "resume with" in err, err
    assert (out / "last.pt").is_file()
