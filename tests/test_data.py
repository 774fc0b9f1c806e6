"""Every loader on real files: the CIFAR-10 archive, pickles, IDX, image folders and archives,
the decode-once cache, and the download path against a server on 127.0.0.1."""

import gzip
import hashlib
import io
import json
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest

from conftest import FASHION_DIR, LOSSLESS_ARCHIVE, cli, idx_bytes, make_folder, missing, write_cifar10_pickles
from deepres.data import FileSet, ImageSet, load_dataset, stratified_split
from deepres.data.cifar import download_and_extract
from deepres.errors import DeepresError


# --- the real CIFAR-10 -------------------------------------------------------------------------------
def channel_mean_std(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 NHWC images on [0, 1], exact, from each channel's histogram
    (a float copy of 50,000 images would take 1.2 GB and seconds)."""
    levels = np.arange(256) / 255.0
    counts = np.stack([np.bincount(images[..., c].ravel(), minlength=256) for c in range(images.shape[-1])])
    mean = counts @ levels / counts.sum(1)
    var = (counts * (levels - mean[:, None]) ** 2).sum(1) / counts.sum(1)
    return mean, np.sqrt(var)


def test_real_cifar10_archive(cifar10):
    assert cifar10.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    train, test = cifar10.splits["train"], cifar10.splits["test"]
    assert train.images.shape == (50000, 32, 32, 3) and test.images.shape == (10000, 32, 32, 3)
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    # The data README's per-channel mean of this JPEG re-encode: 0.4913 / 0.4821 / 0.4465.
    mean, _ = channel_mean_std(train.images)
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=2e-4)


def test_pixel_exact_cifar10_loads_through_the_pickle_path(cifar10_lossless):
    """The official CIFAR-10 (cifar-10-batches-py in a tar.xz), checked against the published facts
    in ../shared/data/README.md: per-channel mean and std to 8 decimals, class counts, array hashes."""
    b = cifar10_lossless
    assert b.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    train, test = b.splits["train"], b.splits["test"]
    assert train.images.shape == (50000, 32, 32, 3) and test.images.shape == (10000, 32, 32, 3)
    assert np.bincount(train.labels).tolist() == [5000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    mean, std = channel_mean_std(train.images)
    np.testing.assert_allclose(mean, [0.49139968, 0.48215841, 0.44653091], atol=5e-9)
    np.testing.assert_allclose(std, [0.24703223, 0.24348513, 0.26158784], atol=5e-9)
    # sha256 of the NHWC uint8 arrays and uint8 labels, as the data README gives them (ends only).
    for array, (head, tail) in [
        (train.images, ("47af8b02", "8304a")),
        (train.labels, ("2b7cd2f2", "1253")),
        (test.images, ("f9b1e213", "5b04")),
        (test.labels, ("cec8a24a", "d5")),
    ]:
        digest = hashlib.sha256(np.ascontiguousarray(array.astype(np.uint8)).tobytes()).hexdigest()
        assert digest.startswith(head) and digest.endswith(tail)


def test_decoded_once_then_cached(cifar10, isolated_cache):
    from conftest import CIFAR_ARCHIVE

    # One entry of this archive (other tests cache their own data in the same folder).
    cached = [d for d in (isolated_cache / "decoded").iterdir()
              if json.loads((d / "meta.json").read_text())["source"] == str(CIFAR_ARCHIVE)]  # fmt: skip
    assert len(cached) == 1 and (cached[0] / "train.images.npy").is_file()
    again = load_dataset(CIFAR_ARCHIVE)
    assert np.array_equal(again.splits["test"].images, cifar10.splits["test"].images)


def test_embedded_sample():
    b = load_dataset("cifar10-sample")
    assert len(b.splits["train"]) == 5000 and len(b.splits["test"]) == 1000
    assert np.bincount(b.splits["train"].labels).tolist() == [500] * 10


def test_the_embedded_sample_is_the_pixel_exact_cifar10s_images(cifar_sample, cifar10_lossless):
    """Every pixel and label of the sample is the archive's, at the place the sample records."""
    from deepres.data.sample import sample_index, sample_meta
    from deepres.io import sha256

    assert sample_meta()["archive_sha256"] == sha256(LOSSLESS_ARCHIVE)
    for split in ("train", "test"):
        ours, full, index = cifar_sample.require(split), cifar10_lossless.require(split), sample_index(split)
        assert np.array_equal(ours.images, full.images[index]) and np.array_equal(ours.labels, full.labels[index])


def test_stratified_split_is_seeded_and_proportional(cifar10):
    labels = cifar10.splits["train"].labels
    tr, va = stratified_split(labels, 5000, seed=0)
    assert len(tr) == 45000 and len(va) == 5000 and not set(tr) & set(va)
    assert np.bincount(labels[va]).tolist() == [500] * 10
    assert np.array_equal(va, stratified_split(labels, 5000, seed=0)[1])
    assert not np.array_equal(va, stratified_split(labels, 5000, seed=1)[1])
    with pytest.raises(DeepresError, match="val_split=50000"):
        stratified_split(labels, 50000, seed=0)


# --- CIFAR pickles -----------------------------------------------------------------------------------
@pytest.fixture
def small_cifar(cifar_sample, tmp_path):
    tr, te = cifar_sample.splits["train"], cifar_sample.splits["test"]
    return write_cifar10_pickles(
        tmp_path / "cifar-10-batches-py",
        tr.images[:500],
        tr.labels[:500],
        te.images[:100],
        te.labels[:100],
        cifar_sample.classes,
    )


def test_cifar10_pickles(small_cifar, cifar_sample):
    b = load_dataset(small_cifar)
    assert b.classes == cifar_sample.classes
    assert np.array_equal(b.splits["train"].images, cifar_sample.splits["train"].images[:500])
    assert np.array_equal(b.splits["test"].labels, cifar_sample.splits["test"].labels[:100])


def test_cifar100_pickles(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 10)):
        with open(root / split, "wb") as f:
            pickle.dump(
                {
                    b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                    b"fine_labels": rng.integers(0, 100, n).tolist(),
                    b"coarse_labels": rng.integers(0, 20, n).tolist(),
                },
                f,
            )
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f)
    b = load_dataset(root)
    assert len(b.classes) == 100 and b.splits["train"].images.shape == (40, 32, 32, 3)


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_cifar_pickle_never_runs_code(small_cifar, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(small_cifar / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Exploit(), b"labels": []}, f)
    with pytest.raises(DeepresError, match="data_batch_3: not a CIFAR pickle batch.*refusing to load posix.system"):
        load_dataset(small_cifar)
    assert not (tmp_path / "pwned").exists()


def test_corrupt_cifar_pickle(small_cifar):
    data = (small_cifar / "test_batch").read_bytes()
    (small_cifar / "test_batch").write_bytes(data[: len(data) // 2])
    with pytest.raises(DeepresError, match="test_batch: not a CIFAR pickle batch"):
        load_dataset(small_cifar)


# --- IDX ---------------------------------------------------------------------------------------------
@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "fashion-mnist"
    root.mkdir()
    for prefix, n in (("train", 60), ("t10k", 20)):
        (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        )
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(rng.integers(0, 10, n)))
    return root


def test_idx_raw_and_gzipped(idx_dir):
    b = load_dataset(idx_dir)
    assert b.splits["train"].images.shape == (60, 28, 28, 1) and len(b.splits["test"]) == 20
    assert b.classes[0] == "T-shirt/top" and b.channels == 1


def test_idx_wrong_magic(idx_dir):
    path = idx_dir / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x09\x01" + path.read_bytes()[4:])
    with pytest.raises(DeepresError, match="t10k-labels-idx1-ubyte: not an IDX file.*magic 00000901"):
        load_dataset(idx_dir)


def test_idx_wrong_length(idx_dir):
    path = idx_dir / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DeepresError, match="expected 28 bytes for dimensions \\[20\\], found 25"):
        load_dataset(idx_dir)


def test_real_fashion_mnist():
    if not FASHION_DIR.is_dir():
        missing(f"needs Debian's dataset-fashion-mnist in {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
    b = load_dataset("fashion-mnist")
    train = b.splits["train"]
    assert train.images.shape == (60000, 28, 28, 1) and len(b.splits["test"]) == 10000
    assert np.bincount(train.labels).tolist() == [6000] * 10
    # Official uncompressed md5 of the training images (from the data README).
    raw = gzip.decompress((FASHION_DIR / "train-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == "f4a8712d7a061bf5bd6d2ca38dc4d50a"


# --- image folders -------------------------------------------------------------------------------------
def test_image_folder_in_memory(tmp_path):
    root = make_folder(tmp_path / "pets")
    b = load_dataset(root)
    assert b.classes == ["cat", "dog"] and isinstance(b.splits["train"], ImageSet)
    assert b.splits["train"].images.shape == (6, 32, 32, 3)
    assert b.splits["train"].labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_image_folder_without_splits_is_train(tmp_path):
    root = make_folder(tmp_path / "pets", splits=("x",))
    os.rename(root / "x" / "cat", root / "cat")
    os.rename(root / "x" / "dog", root / "dog")
    os.rmdir(root / "x")
    assert list(load_dataset(root).splits) == ["train"]


def test_mixed_sizes_stream_from_disk(tmp_path):
    b = load_dataset(make_folder(tmp_path / "photos", sizes=((40, 30), (64, 48))))
    assert isinstance(b.splits["train"], FileSet) and len(b.splits["train"]) == 6


def test_over_the_memory_budget_streams(tmp_path):
    b = load_dataset(make_folder(tmp_path / "pets"), budget_bytes=1000)
    assert isinstance(b.splits["train"], FileSet)


@pytest.mark.parametrize("kind", ["tar.gz", "tar.xz", "zip"])
def test_image_folder_archives(tmp_path, kind):
    root = make_folder(tmp_path / "pets", fmt="JPEG")
    archive = tmp_path / f"pets.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted(root.rglob("*")):
                zf.write(p, p.relative_to(tmp_path))
    else:
        with tarfile.open(archive, f"w:{kind.split('.')[1]}") as tf:
            tf.add(root, "pets")
    b = load_dataset(archive)
    assert b.classes == ["cat", "dog"] and b.splits["test"].images.shape == (6, 32, 32, 3)


def test_mixed_size_archive_is_extracted_then_streamed(tmp_path):
    root = make_folder(tmp_path / "photos", sizes=((40, 30), (64, 48)))
    with tarfile.open(tmp_path / "photos.tar", "w") as tf:
        tf.add(root, "photos")
    b = load_dataset(tmp_path / "photos.tar")
    assert isinstance(b.splits["train"], FileSet) and all(p.is_file() for p in b.splits["train"].paths)


def test_non_image_file_fails_naming_it_or_is_skipped(tmp_path):
    root = make_folder(tmp_path / "pets")
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DeepresError, match="train/dog/notes.txt is not a readable image \\(and 1 more\\); fix"):
        load_dataset(root)
    b = load_dataset(root, skip_bad=True)
    assert len(b.splits["train"]) == 6 and b.skipped == 2


def test_truncated_image(tmp_path):
    root = make_folder(tmp_path / "pets", fmt="JPEG")
    path = root / "test" / "dog" / "1.jpeg"
    path.write_bytes(path.read_bytes()[:-400])  # the header survives, the pixels do not
    with pytest.raises(DeepresError, match="test/dog/1.jpeg is truncated or corrupt"):
        load_dataset(root)


def test_empty_class_folder(tmp_path):
    root = make_folder(tmp_path / "pets")
    (root / "train" / "bird").mkdir()
    with pytest.raises(DeepresError, match="class folder train/bird/ has no images"):
        load_dataset(root)


def test_missing_path_and_wrong_file():
    with pytest.raises(DeepresError, match="nope: no such file or folder"):
        load_dataset("nope")
    with pytest.raises(DeepresError, match="not a folder or an archive"):
        load_dataset(__file__)


def test_truncated_archive(tmp_path):
    from conftest import CIFAR_ARCHIVE

    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(CIFAR_ARCHIVE.read_bytes()[:300_000])
    with pytest.raises(DeepresError, match="cut.tar.xz: truncated or corrupt archive"):
        load_dataset(cut)


def _tar_with(tmp_path, member: tarfile.TarInfo, data: bytes = b"") -> str:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        tf.addfile(member, io.BytesIO(data) if data else None)
    return path


def test_archive_member_escaping_is_refused(tmp_path):
    info = tarfile.TarInfo("../../escape.png")
    info.size = 3
    with pytest.raises(DeepresError, match="points outside the archive's folder"):
        load_dataset(_tar_with(tmp_path, info, b"abc"))
    assert not (tmp_path.parent / "escape.png").exists()


def test_archive_link_escaping_is_refused(tmp_path):
    info = tarfile.TarInfo("pets/train/cat/link.png")
    info.type, info.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
    with pytest.raises(DeepresError, match="link .* points outside the archive's folder"):
        load_dataset(_tar_with(tmp_path, info))


def test_safe_extract_refuses_absolute_links(tmp_path):
    from deepres.data.archive import safe_extract

    info = tarfile.TarInfo("x/link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(DeepresError, match="refusing to extract"):
        safe_extract(_tar_with(tmp_path, info), tmp_path / "out")


# --- download ----------------------------------------------------------------------------------------
def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_md5_and_extracts(small_cifar, loopback_server, tmp_path):
    www, url = loopback_server
    with tarfile.open(www / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(small_cifar, "cifar-10-batches-py")
    root = download_and_extract(f"{url}/cifar-10-python.tar.gz", _md5(www / "cifar-10-python.tar.gz"), tmp_path / "dl")
    b = load_dataset(root / "cifar-10-batches-py")
    assert len(b.splits["train"]) == 500


def test_download_with_wrong_md5_is_deleted(small_cifar, loopback_server, tmp_path):
    www, url = loopback_server
    with tarfile.open(www / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(small_cifar, "cifar-10-batches-py")
    dest = tmp_path / "dl"
    with pytest.raises(DeepresError, match="md5 [0-9a-f]{32} does not match the expected 0123"):
        download_and_extract(f"{url}/cifar-10-python.tar.gz", "0123" + "0" * 28, dest)
    assert not (dest / "cifar-10-python.tar.gz").exists()


def test_download_command_and_named_dataset(small_cifar, loopback_server, tmp_path):
    www, url = loopback_server
    with tarfile.open(www / "c.tar.gz", "w:gz") as tf:
        tf.add(small_cifar, "cifar-10-batches-py")
    data = tmp_path / "data"
    result = cli("download", "cifar10", "--url", f"{url}/c.tar.gz", "--md5", _md5(www / "c.tar.gz"), "--dir", data)
    assert result.returncode == 0, result.stderr
    os.environ["DEEPRES_DATA"], old = str(data), os.environ["DEEPRES_DATA"]
    try:
        assert len(load_dataset("cifar10").splits["test"]) == 100  # the named dataset now finds it
    finally:
        os.environ["DEEPRES_DATA"] = old
    again = cli("download", "cifar10", "--url", f"{url}/missing.tar.gz", "--md5", "0" * 32, "--dir", data)
    assert again.returncode == 0 and again.stdout.strip() == str(data / "cifar-10-batches-py")  # there: no fetch
    bad = cli("download", "cifar10", "--url", f"{url}/missing.tar.gz", "--md5", "0" * 32, "--dir", tmp_path / "d2")
    assert bad.returncode == 2 and "404" in bad.stderr and "Traceback" not in bad.stderr
