"""Shared fixtures: the real CIFAR-10 archive from ../shared/data, decoded once per session."""

import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def cifar10():
    if not CIFAR_ARCHIVE.is_file():
        pytest.fail(f"the real CIFAR-10 archive is expected at {CIFAR_ARCHIVE}")
    from deepres.data import load_dataset

    return load_dataset(CIFAR_ARCHIVE)


@pytest.fixture(scope="session")
def cifar10_lossless(tmp_path_factory):
    """The pixel-exact CIFAR-10, loaded as a user's own download would be (its own cache folder, so
    the tests of the decode-once cache see only the JPEG copy's entry)."""
    if not LOSSLESS_ARCHIVE.is_file():
        pytest.fail(f"the pixel-exact CIFAR-10 archive is expected at {LOSSLESS_ARCHIVE}")
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


@pytest.fixture
def loopback_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(www), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
