"""Trustworthy training: exact resume, crash-safe checkpoints under kill -9, signals, numerical
faults, full disks, on real CIFAR-10 images. Signals and kill -9 hit real `deepres train` processes."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import (
    PACE_STEPS,
    TINY,
    assert_same_run,
    cli,
    final_weights,
    missing,
    paced_train_cmd,
    python_cli,
    train_cmd,
    wait_for,
)
from deepres.train.checkpoint import load_checkpoint

# Per precision: the data, extra flags and the steps an epoch then has. bf16 is emulated (about 10x
# slower) on CPUs without native support, so its runs train on 64 images of a smaller slice (2 steps
# of 32 an epoch, not 8 of 64), with few held-out and test images to evaluate.
SETTINGS = {"fp32": ("tiny_cifar", [], 8), "bf16": ("micro_cifar", ["--val-split", "96", "--batch-size", "32"], 2)}


@pytest.fixture(scope="module")
def reference_runs(micro_cifar, tiny_run, tmp_path_factory):
    """Uninterrupted runs, fp32 and bf16, to compare interrupted ones against."""
    out = tmp_path_factory.mktemp("ref") / "bf16"
    done = cli("train", *TINY, *SETTINGS["bf16"][1], "--data", micro_cifar, "--out", out, "--precision", "bf16")
    assert done.returncode == 0, done.stderr[-2000:]
    return {"fp32": tiny_run, "bf16": out}


@pytest.mark.parametrize("precision, sig", [("fp32", signal.SIGINT), ("bf16", signal.SIGTERM)])
def test_signal_stops_at_a_step_checkpoints_and_resumes_exactly(request, reference_runs, tmp_path, precision, sig):
    data, extra, steps = SETTINGS[precision]
    out = tmp_path / "run"
    cmd = paced_train_cmd(request.getfixturevalue(data), out, *extra, "--precision", precision)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Stop it in its second epoch: the first is logged, and every step of the second sleeps first.
    wait_for(lambda: (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"resume with: deepres train --resume {out}" in err and "Traceback" not in err
    state = load_checkpoint(out / "last.pt")
    assert state["step"] > state["epoch"] * steps or state["epoch"] == 3  # mid-epoch position recorded
    resumed = cli("train", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming resnet20" in resumed.stdout
    assert_same_run(reference_runs[precision], out)  # bit for bit, in fp32 and in bf16 on CPU


def test_a_run_with_weight_averaging_resumes_exactly(tiny_cifar, tmp_path):
    """With an EMA of the weights (which the validation and test evaluate), a run stopped in its
    second epoch and resumed ends with the same averaged weights and numbers as one never stopped."""
    from deepres.train.recipe import load_recipe
    from deepres.train.trainer import Interrupted, Trainer

    tiny = {"val_split": 128, "batch_size": 64, "epochs": 3, "warmup": 1, "eval_batch_size": 128}  # TINY's
    recipe = load_recipe("cifar-fast").replace(data=str(tiny_cifar), precision="fp32", ema_decay=0.9, **tiny)
    Trainer.create(recipe, tmp_path / "whole", quiet=True).run()
    stopped = Trainer.create(recipe, tmp_path / "stopped", quiet=True)
    step = stopped.train_step

    def stop_at_12(x, y, i):
        stopped.stop_signal = signal.SIGINT if i == 11 else None
        return step(x, y, i)

    stopped.train_step = stop_at_12
    with pytest.raises(Interrupted):
        stopped.run()
    stopped.release()
    assert load_checkpoint(tmp_path / "stopped" / "last.pt")["step"] == 12  # mid-epoch 2 (8 steps an epoch)
    Trainer.create(None, resume=tmp_path / "stopped", quiet=True).run()
    averaged = [load_checkpoint(tmp_path / run / "last.pt")["ema"] for run in ("whole", "stopped")]
    assert all(torch.equal(averaged[0][k], averaged[1][k]) for k in averaged[0])
    assert_same_run(tmp_path / "whole", tmp_path / "stopped")  # raw weights, val errors (of the EMA), test


def on_machine(bf16_native: bool, paced: bool = False) -> list[str]:
    """`deepres` as run on a CPU with (or without) native bf16, whatever this one has."""
    fake = f"import deepres.hardware as h; h.cpu_has_fast_bf16 = lambda: {bf16_native}"
    return python_cli(fake, *[PACE_STEPS] * paced)


def test_resume_on_another_machine_resolves_auto_precision_again(micro_cifar, tmp_path):
    """Started where bf16 is native, resumed where it is emulated: the resumed segment runs in fp32
    (emulated bf16 would crawl), and the run records which precision each segment and epoch used."""
    out = tmp_path / "run"
    # bf16 is emulated here unless the CPU has it: the bf16 settings' few images keep it short.
    cmd = [*on_machine(True, paced=True), "train", *TINY, *SETTINGS["bf16"][1], "--data", micro_cifar, "--out", out]
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").read_text().count("\n") >= 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    stopped_at = load_checkpoint(out / "last.pt")["step"]
    resumed = subprocess.run([*on_machine(False), "train", "--resume", str(out), "--threads", "1"],
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert 'precision = "auto"' in (out / "recipe.toml").read_text()  # as asked, not as first resolved
    segments = json.loads((out / "env.json").read_text())["segments"]
    assert [(s["step"], s["precision"]) for s in segments] == [(0, "bf16"), (stopped_at, "fp32")]
    assert segments[1]["threads"] == 1  # a machine field the resume changed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["precision"] == "bf16" and rows[-1]["precision"] == "fp32" and len(rows) == 3
    log = (out / "log.txt").read_text().splitlines()
    assert "| bf16 channels_last |" in log[0] and any(line.startswith("resuming") and "| fp32 " in line for line in log)


def checkpoint_id(path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns  # every atomic write renames a new file into place


def test_kill_9_at_random_moments_never_loses_a_loadable_checkpoint(tiny_cifar, reference_runs, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(0)
    # A checkpoint at (almost) every step, so that kills land during writes too.
    cmd = train_cmd(tiny_cifar, out, "--precision", "fp32", "--checkpoint-every", "0.0001")
    kills = 0
    finished = False
    while kills < 4 and not finished:
        before = checkpoint_id(out / "last.pt")
        log = tmp_path / f"stderr-{kills}.txt"
        with log.open("w") as err:  # a file, not a pipe: a full pipe would stall the trainer
            proc = subprocess.Popen([*cmd[:3], "train", "--resume", str(out)] if before else cmd,
                                    stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        # Kill at a random moment after this process has made progress (written a checkpoint of its
        # own), so the test neither depends on the machine's speed nor kills before training starts.
        wait_for(lambda: checkpoint_id(out / "last.pt") != before or proc.poll() is not None)  # noqa: B023
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:  # finished before the kill
            assert proc.returncode == 0, log.read_text()[-2000:]
            finished = True
            break
        proc.kill()
        proc.wait()
        kills += 1
        load_checkpoint(out / "last.pt")  # always loadable, whatever the moment of the kill
    if not finished:
        done = cli("train", "--resume", out)
        assert done.returncode == 0, done.stderr[-2000:]
    assert kills >= 3
    assert not list(out.glob(".*.tmp"))  # temporaries of writers killed mid-write are cleaned on resume
    assert_same_run(reference_runs["fp32"], out)


def test_non_finite_loss_stops_naming_the_step(tiny_cifar, tmp_path):
    result = cli("train", *TINY, "--data", tiny_cifar, "--out", tmp_path / "run", "--lr", "1e30",
                     "--precision", "fp32")  # fmt: skip
    assert result.returncode == 2
    assert "the loss became nan at step" in result.stderr or "the loss became inf at step" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "run" / "last.pt").exists()  # nothing good to keep: no checkpoint was written


def test_non_finite_loss_keeps_the_last_good_checkpoint(tiny_cifar, tmp_path):
    """A healthy first epoch, then a learning rate that blows up: last.pt is still the healthy one."""
    out = tmp_path / "run"
    first = cli("train", *TINY, "--data", tiny_cifar, "--out", out, "--precision", "fp32",
                    "--epochs", "3", "--schedule", "step",
                    "--milestones", "1", "--gamma", "1e31")  # fmt: skip
    assert first.returncode == 2 and "the loss became" in first.stderr
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_nan_policy_skip_continues(tiny_cifar, tmp_path):
    """--nan-policy skip: a step whose loss is not finite (one, as a bf16 overflow makes it) is
    skipped and counted, and the run goes on. (A run that diverges for good stops: test_bad_input.)"""
    from deepres.train.parts import build_parts
    from deepres.train.recipe import load_recipe
    from deepres.train.trainer import Trainer

    recipe = load_recipe("cifar-fast").replace(
        data=str(tiny_cifar), val_split=128, batch_size=64, epochs=2, warmup=1, eval_batch_size=128,
        nan_policy="skip", precision="fp32",
    )  # fmt: skip
    parts = build_parts(recipe.resolved())
    loss, calls = parts.criterion, []

    def one_nan_step(logits, y):
        calls.append(1)
        return loss(logits, y) * (float("nan") if len(calls) == 3 else 1.0)

    parts.criterion = one_nan_step
    Trainer(parts, tmp_path / "run", quiet=True).run()
    out = tmp_path / "run"
    assert json.loads((out / "test.json").read_text())["skipped_steps"] == 1
    assert "step 3: non-finite loss; step skipped (1 so far)" in (out / "log.txt").read_text()
    assert all(torch.isfinite(v).all() for v in final_weights(out).values() if v.is_floating_point())


def test_full_disk_keeps_the_previous_checkpoint(tiny_cifar, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        missing("cannot mount a small tmpfs here (needs root)")
    try:
        out = disk / "run"
        # Each checkpoint of ResNet-20 (+ momentum) is ~2.2 MB: the second cannot be written beside the first.
        result = cli("train", *TINY, "--data", tiny_cifar, "--out", out, "--precision", "fp32")
        assert result.returncode == 2
        assert "no space left on the device writing" in result.stderr and "Traceback" not in result.stderr
        assert load_checkpoint(out / "last.pt")["epoch"] == 1
        assert not list(out.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)])


def test_atomic_write_keeps_the_old_file_on_enospc(tmp_path):
    import errno

    from deepres.errors import DeepresError
    from deepres.io import atomic_write

    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(DeepresError, match="no space left on the device writing .*f.bin; the previous version is kept"):
        with atomic_write(path) as f:
            f.write(b"new, partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_larger_than_memory_dataset_streams(tmp_path, cifar10):
    """A CIFAR-style image folder over the memory budget trains from disk through workers."""
    from PIL import Image

    for split, images, labels in (
        ("train", cifar10.splits["train"].images[:300], cifar10.splits["train"].labels[:300]),
        ("test", cifar10.splits["test"].images[:100], cifar10.splits["test"].labels[:100]),
    ):
        for i, (img, y) in enumerate(zip(images, labels, strict=True)):
            d = tmp_path / "c10" / split / cifar10.classes[y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i}.png")
    result = cli("train", "--data", tmp_path / "c10", "--memory-budget-gb", "0.0001", "--epochs", "1",
                     "--batch-size", "50", "--val-split", "0", "--workers", "1", "--out", tmp_path / "run")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "test.json").read_text())["test"]["n"] == 100


def test_threads_follow_the_cores_the_process_may_use():
    """Under `taskset` (or a cpuset) training takes one thread per usable core, not per machine core:
    two threads on one core would run a step several times slower."""
    import shutil

    if shutil.which("taskset") is None:
        missing("taskset is not installed")
    code = "from deepres.hardware import usable_cores; print(usable_cores())"
    pinned = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True)
    assert pinned.returncode == 0 and pinned.stdout.strip() == "1", pinned.stderr
