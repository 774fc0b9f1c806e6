"""Bad input a user can cause: one line naming the file or flag and what was expected, a non-zero
exit, no traceback (unless --debug), and nothing written."""

import gzip
import json
import tarfile

import pytest
import torch

from conftest import cli, idx_bytes, make_folder


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    err = result.stderr.strip()
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith("deepres ") and "error:" in err
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture
def out(tmp_path):
    return tmp_path / "run"


def train(*args, out):
    return cli("train", "--epochs", "1", "--out", out, *args)


def test_missing_data_path(out):
    assert_one_line_error(train("--data", "no/such/data", out=out), "no/such/data: no such file or folder")
    assert not out.exists()


def test_truncated_archive(tmp_path, out):
    whole = tmp_path / "whole.tar.xz"
    with tarfile.open(whole, "w:xz") as tf:
        tf.add(make_folder(tmp_path / "pets", per_class=40), "pets")
    cut = tmp_path / "cifar.tar.xz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert_one_line_error(train("--data", cut, out=out), "cifar.tar.xz: truncated or corrupt archive")


def test_corrupt_pickle(tmp_path, out):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        (root / name).write_bytes(b"\x80\x02}q\x00(garbage")
    assert_one_line_error(train("--data", root, out=out), "data_batch_1: not a CIFAR pickle batch")


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x00\x00\x08\x04" + b[4:], "not an IDX file of 3-d unsigned bytes (magic 00000804"),
    (lambda b: b[:-100], "expected 7856 bytes for dimensions [10, 28, 28], found 7756"),
])  # fmt: skip
def test_corrupt_idx(tmp_path, out, damage, message):
    root = tmp_path / "mnist"
    root.mkdir()
    images = idx_bytes(torch.zeros(10, 28, 28, dtype=torch.uint8).numpy())
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(damage(images)))
    (root / "train-labels-idx1-ubyte").write_bytes(idx_bytes(torch.zeros(10, dtype=torch.uint8).numpy()))
    assert_one_line_error(train("--data", root, out=out), "train-images-idx3-ubyte.gz: " + message)


def test_unreadable_image_fails_naming_it_unless_skipped(tmp_path, out):
    root = make_folder(tmp_path / "pets", per_class=4)
    (root / "train" / "dog" / "2.png").write_bytes(b"not a png at all")
    assert_one_line_error(train("--data", root, "--val-split", "0", "--batch-size", "4", out=out),
                          "train/dog/2.png is not a readable image", "--skip-bad-images true")  # fmt: skip
    ok = train("--data", root, "--val-split", "0", "--batch-size", "4", "--skip-bad-images", "true", out=out)
    assert ok.returncode == 0, ok.stderr[-1500:]


def test_empty_class_folder(tmp_path, out):
    root = make_folder(tmp_path / "pets")
    (root / "test" / "bird").mkdir()
    assert_one_line_error(train("--data", root, out=out), "class folder test/bird/ has no images")


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet21"], "unknown model 'resnet21'"),
    (["--recipe", "cifar-slow"], "unknown recipe 'cifar-slow'"),
    (["--set", "learning_rate=0.1"], "unknown recipe field 'learning_rate'"),
    (["--batch-size", "12.5"], "--batch-size '12.5': expected a int"),
    (["--batch-size", "0"], "batch_size=0: expected a number >= 1"),
    (["--label-smoothing", "1.5"], "label_smoothing=1.5: expected a number in [0, 1)"),
    (["--precision", "fp8"], "precision='fp8': expected one of auto, bf16, fp32"),
    (["--model-options", "shortcut=D"], "unknown shortcut 'D'"),
    (["--batch-size", "100000"], "--batch-size 100000 is larger than the training set"),
])  # fmt: skip
def test_bad_recipe_values(args, message, out):
    assert_one_line_error(train(*args, out=out), message)
    assert not (out / "last.pt").exists()


def test_wrong_md5_download(tmp_path, loopback_server):
    www, url = loopback_server
    (www / "c.tar.gz").write_bytes(b"pretend archive")
    result = cli("download", "cifar10", "--url", f"{url}/c.tar.gz", "--md5", "0" * 32, "--dir", tmp_path / "d")
    assert_one_line_error(result, "does not match the expected 00000000000000000000000000000000")
    assert not (tmp_path / "d" / "c.tar.gz").exists()


def test_checkpoint_errors(tmp_path):
    run = tmp_path / "run"
    done = cli("train", "--epochs", "0.2", "--out", run)  # 7 steps of the default recipe
    assert done.returncode == 0, done.stderr[-1500:]
    # Not a checkpoint at all
    (tmp_path / "notes.pt").write_text("hello")
    assert_one_line_error(cli("eval", tmp_path / "notes.pt"), "notes.pt: not a PyTorch checkpoint")
    # A state dict, not a deepres checkpoint
    torch.save({"w": torch.zeros(1)}, tmp_path / "state.pt")
    assert_one_line_error(cli("predict", tmp_path / "state.pt", tmp_path / "notes.pt"), "not a deepres checkpoint")
    # A run directory without checkpoints, and resuming one
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("eval", tmp_path / "empty"), "no best.pt or last.pt")
    assert_one_line_error(cli("train", "--resume", tmp_path / "empty"), "no last.pt in it")
    # Another class count: a 2-class dataset for a 10-class checkpoint
    pets = make_folder(tmp_path / "pets")
    assert_one_line_error(cli("eval", run, "--data", pets), "its 2 classes are not the 10")
    # Weights of another model to start from
    assert_one_line_error(
        cli("train", "--epochs", "1", "--model", "resnet32", "--init-weights", run / "last.pt", "--out",
                tmp_path / "ft"),
        "does not match model resnet32", "missing (layer1.3.conv1.weight",
    )  # fmt: skip
    # ... which fine-tunes when told to keep fresh the layers that do not fit
    ft = cli(
        "train",
        "--epochs",
        "1",
        "--model",
        "resnet20",
        "--data",
        pets,
        "--val-split",
        "0",
        "--batch-size",
        "3",
        "--init-weights",
        run / "last.pt",
        "--init-skip-mismatch",
        "true",
        "--out",
        tmp_path / "ft2",
    )
    assert ft.returncode == 0, ft.stderr[-1500:]
    assert "2 keys did not fit" in (tmp_path / "ft2" / "log.txt").read_text()
    # A run directory that already holds a run
    assert_one_line_error(cli("train", "--epochs", "1", "--out", run), "already holds a run")
    assert json.loads((run / "test.json").read_text())["test"]["n"] == 1000  # untouched


def test_resume_takes_no_recipe_flags(tmp_path):
    result = cli("train", "--resume", tmp_path, "--lr", "0.5", "--threads", "1")
    assert_one_line_error(result, "--resume continues a run with its own recipe: drop --lr (only --precision")


def test_debug_shows_the_traceback(out):
    result = cli("--debug", "train", "--data", "no/such/data", "--out", out)
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_archive_escaping_paths_are_refused(tmp_path, out):
    import io

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tf:
        info = tarfile.TarInfo("../../outside.png")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"data"))
    assert_one_line_error(train("--data", evil, out=out), "points outside the archive's folder")
