"""Shared fixtures and helpers: the real CIFAR-10 archives from ../shared/data (decoded once per
session), small real datasets written as files, and a real `deepres` process."""

import contextlib
import http.server
import io
import json
import os
import pickle
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"  # JPEG q75: image-folder paths
LOSSLESS_ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-lossless.tar.xz"  # the official pickles
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tests never touch the user's cache; decoded data is shared within the session."""
    cache = tmp_path_factory.mktemp("deepres-cache")
    os.environ["DEEPRES_CACHE"] = str(cache)
    os.environ["DEEPRES_DATA"] = str(cache / "datasets")
    return cache


# Set by .ci/run: there, a test that lacks its data or tools fails instead of skipping, so CI never
# skips silently. Elsewhere (a clone without ../shared/) such tests skip, naming what they need.
REQUIRE_ALL = os.environ.get("DEEPRES_TESTS_REQUIRE_ALL") == "1"


def missing(reason: str) -> None:
    """Skip (or, in CI, fail) a test whose data or tool is not on this machine."""
    (pytest.fail if REQUIRE_ALL else pytest.skip)(reason)


@pytest.fixture(scope="session")
def cifar10():
    """All 60,000 images of the JPEG copy: for what needs the whole set or an image-folder archive."""
    if not CIFAR_ARCHIVE.is_file():
        missing(f"needs the real CIFAR-10 archive at {CIFAR_ARCHIVE}")
    from deepres.data import load_dataset

    return load_dataset(CIFAR_ARCHIVE)


@pytest.fixture(scope="session")
def cifar_sample():
    """The 5,000 + 1,000 real CIFAR-10 images embedded in the package: slices come from here, so the
    tests that need no more than that run on any machine."""
    from deepres.data import load_dataset

    return load_dataset("cifar10-sample")


@pytest.fixture(scope="session")
def cifar10_lossless(tmp_path_factory):
    """The pixel-exact CIFAR-10, loaded as a user's own download would be (its own cache folder, so
    the tests of the decode-once cache see only the JPEG copy's entry)."""
    if not LOSSLESS_ARCHIVE.is_file():
        missing(f"needs the pixel-exact CIFAR-10 archive at {LOSSLESS_ARCHIVE}")
    from deepres.data import load_dataset

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPRES_CACHE", str(tmp_path_factory.mktemp("lossless-cache")))
        return load_dataset(LOSSLESS_ARCHIVE)


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run `deepres ...` in a real subprocess."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "deepres.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=full_env,
    )


def cli(*args, cwd=None, env=None, timeout=None):
    """Run `deepres ...` in this process: the command's ``main``, as the `deepres` script runs it, with
    what it prints captured. For tests where the process itself is not the point (signals, kill -9
    and torchrun keep ``run_cli``); it spares each call an interpreter's start-up and torch's import.
    Returns what ``run_cli`` does (exit code, stdout, stderr)."""
    import subprocess

    from deepres.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        for key, value in (env or {}).items():
            mp.setenv(key, str(value))
        if cwd is not None:
            mp.chdir(cwd)
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help, or a flag of the wrong kind
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture
def loopback_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):  # requests are not what the tests read on stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# --- real data in small files, and helpers the test modules share ---------------------------------------
def write_cifar10_pickles(root, images, labels, test_images, test_labels, classes):
    """The official cifar-10-batches-py layout: five data batches, a test batch, batches.meta."""
    root.mkdir(parents=True)
    flat = lambda x: x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    for i, (xs, ys) in enumerate(zip(np.array_split(images, 5), np.array_split(labels, 5), strict=False), 1):
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"batch_label": b"x", b"labels": ys.tolist(), b"data": flat(xs)}, f, protocol=2)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"labels": test_labels.tolist(), b"data": flat(test_images)}, f, protocol=2)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in classes]}, f, protocol=2)
    return root


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_folder(root, sizes=((32, 32),), per_class=3, classes=("cat", "dog"), splits=("train", "test"), fmt="PNG"):
    rng = np.random.default_rng(0)
    for split in splits:
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                w, h = sizes[i % len(sizes)]
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i}.{fmt.lower()}", fmt)
    return root


# A small real-data run: 640 training images (128 held out for validation), batches of 64.
TINY = ["--recipe", "cifar-fast", "--val-split", "128", "--batch-size", "64", "--epochs", "3", "--warmup", "1",
        "--eval-batch-size", "128"]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_cifar(cifar_sample, tmp_path_factory):
    tr, te = cifar_sample.splits["train"], cifar_sample.splits["test"]
    root = tmp_path_factory.mktemp("tiny") / "cifar-10-batches-py"
    i, j = stratified(tr.labels, 64), stratified(te.labels, 20)  # 64 / 20 images of every class
    return write_cifar10_pickles(root, tr.images[i], tr.labels[i], te.images[j], te.labels[j], cifar_sample.classes)


@pytest.fixture(scope="session")
def micro_cifar(cifar_sample, tmp_path_factory):
    """16 / 5 images of every class: for runs in emulated bf16 (about 10x slower than fp32 on CPUs without it)."""
    tr, te = cifar_sample.splits["train"], cifar_sample.splits["test"]
    root = tmp_path_factory.mktemp("micro") / "cifar-10-batches-py"
    i, j = stratified(tr.labels, 16), stratified(te.labels, 5)
    return write_cifar10_pickles(root, tr.images[i], tr.labels[i], te.images[j], te.labels[j], cifar_sample.classes)


@pytest.fixture(scope="session")
def tiny_run(tiny_cifar, tmp_path_factory):
    """One uninterrupted fp32 run of TINY: what interrupted, resumed or in-process runs must equal."""
    out = tmp_path_factory.mktemp("tiny-run") / "fp32"
    done = cli("train", *TINY, "--data", tiny_cifar, "--out", out, "--precision", "fp32")
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def stratified(labels, k):
    return np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(10)])


def train_cmd(data, out, *extra):
    return [sys.executable, "-m", "deepres.cli", "train", *TINY, "--data", str(data), "--out", str(out), *extra]


# Python that makes every training step of `deepres train` sleep first: the numbers are the same, but
# a signal sent when an epoch has been logged lands in the next epoch however fast the machine is
# (a tiny bf16 run on a native-bf16 CPU otherwise finished before the signal arrived).
PACE_STEPS = ("import time; from deepres.train.trainer import Trainer as T; step = T.train_step; "
              "T.train_step = lambda self, *a: (time.sleep(0.2), step(self, *a))[1]")  # fmt: skip


def python_cli(*prelude):
    """The `deepres` command in a Python that first runs `prelude` (statements that patch it)."""
    run = "import sys; from deepres.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", "; ".join([*prelude, run])]


def paced_train_cmd(data, out, *extra):
    return [*python_cli(PACE_STEPS), *train_cmd(data, out, *extra)[3:]]


def final_weights(run):
    from deepres.train.checkpoint import load_checkpoint

    return load_checkpoint(run / "last.pt")["model"]


def assert_same_run(a, b):
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"
    drop = {"seconds", "elapsed", "images_per_second"}
    rows = lambda r: [{k: v for k, v in json.loads(x).items() if k not in drop}
                      for x in (r / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    assert rows(a) == rows(b)
    ta, tb = (json.loads((r / "test.json").read_text())["test"] for r in (a, b))
    assert ta["top1_error"] == tb["top1_error"] and ta["loss"] == tb["loss"]


def wait_for(predicate, timeout=120):
    t0 = time.time()
    while not predicate():
        if time.time() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.05)


def load_bench():
    """benchmarks/bench.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench
