"""Data loaders and derived sets: IDX files written here, the offline MNIST sample, shifts."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from experiments.core import data as data_lib


def _write_idx(path, array: np.ndarray, *, compress: bool) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    raw = header + array.tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    name = "imgs.idx" + (".gz" if compress else "")
    _write_idx(tmp_path / name, images, compress=compress)
    np.testing.assert_array_equal(data_lib.read_idx(str(tmp_path / name)), images)
    ints = rng.integers(-5, 5, size=(3, 4)).astype(">i4")
    _write_idx(tmp_path / "ints.idx", ints, compress=False)
    np.testing.assert_array_equal(data_lib.read_idx(str(tmp_path / "ints.idx")), ints)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        data_lib.read_idx(str(tmp_path / "bad"))
    short = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10) + bytes(3)  # header says 10 values
    (tmp_path / "short").write_bytes(short)
    with pytest.raises(ValueError, match="holds 3 values"):
        data_lib.read_idx(str(tmp_path / "short"))


def test_mnist_loader_reads_the_four_standard_files(tmp_path):
    rng = np.random.default_rng(1)
    n_train, n_test = 60, 20
    labels = {"train": np.arange(n_train) % 10, "t10k": np.arange(n_test) % 10}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images, compress=True)
        _write_idx(
            tmp_path / f"{split}-labels-idx1-ubyte", labels[split].astype(np.uint8), compress=False
        )
    d = data_lib.load_mnist_dataset(seed=0, heldout_classes=(9,), data_dir=str(tmp_path))
    assert d.image_shape == (28, 28, 1)
    assert d.num_classes == 9
    total = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert total == 72  # the images of classes 0..8 (class 9 is held out)
    assert set(np.unique(d.y_heldout)) == {9}
    assert d.x_train.min() >= 0.0
    assert d.x_train.max() <= 1.0
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        data_lib.read_idx_dataset(str(tmp_path))


def test_offline_mnist_sample_and_digits_in_mnist_frame():
    images, labels = data_lib.mnist_sample()
    assert images.shape == (5000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    assert images.min() >= 0.0
    assert images.max() <= 1.0
    assert images.mean() == pytest.approx(0.13, abs=0.02)  # MNIST's mean intensity
    digits = data_lib.digits_as_mnist(10)
    assert digits.shape == (10, 28, 28, 1)
    border = np.concatenate([digits[:, :4], digits[:, -4:]], axis=1)
    assert np.all(border == 0)  # drawn in MNIST's central 20×20 box
    assert digits.max() == pytest.approx(1.0)


def test_digits_split_is_unchanged_by_the_generic_loader():
    d = data_lib.load_digits_dataset(seed=0)
    assert (len(d.y_train), len(d.y_val), len(d.y_test), len(d.y_heldout)) == (865, 289, 289, 354)
    assert d.image_shape == (8, 8, 1)
    assert set(np.unique(d.y_heldout)) == {8, 9}
    # the held-out set is every image of digits 8 and 9, none of which is trained on
    from sklearn.datasets import load_digits

    bunch = load_digits()
    held = bunch.images[np.isin(bunch.target, [8, 9])] / 16.0
    np.testing.assert_array_equal(d.x_heldout[..., 0], held.astype(np.float32))
    np.testing.assert_array_equal(d.y_heldout, bunch.target[np.isin(bunch.target, [8, 9])])
    train = {x.tobytes() for x in d.x_train}
    assert all(x.tobytes() not in train for x in d.x_heldout)


def test_class_blends_average_two_test_images_of_different_classes():
    d = data_lib.load_digits_dataset(seed=0)
    x, y = d.x_test, d.y_test
    blends = data_lib.class_blends(x, y, seed=3, n=40)
    assert blends.shape == (40, *x.shape[1:])
    assert blends.dtype == np.float32
    np.testing.assert_array_equal(blends, data_lib.class_blends(x, y, seed=3, n=40))
    assert not np.array_equal(blends, data_lib.class_blends(x, y, seed=4, n=40))
    # each blend is (x_i + x_j) / 2 for some pair of test images with different labels
    flat = x.reshape(len(x), -1).astype(np.float64)
    pair_means = 0.5 * (flat[:, None, :] + flat[None, :, :])  # (n, n, d)
    for b in blends.reshape(40, -1):
        dist = np.abs(pair_means - b).max(axis=-1)
        i, j = np.nonzero(dist < 1e-6)
        assert len(i) > 0
        assert np.any(y[i] != y[j])
    assert len(data_lib.class_blends(x, y)) == len(x)  # default: one blend per test image
    with pytest.raises(ValueError, match="at least two classes"):
        data_lib.class_blends(x[y == 0], y[y == 0])
