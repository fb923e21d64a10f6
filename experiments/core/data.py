"""Digits data for the experiments: fixed-seed splits, derived out-of-distribution sets, batching.

Everything here is plain numpy (no JAX), so data is identical whatever JAX's x64 or device
settings are, and every random choice is a pure function of explicit seeds:

* :func:`load_digits_dataset` splits scikit-learn's bundled ``load_digits`` (1,797 8×8 images,
  pixels scaled to [0, 1]) into train/validation/test with a fixed seed, keeping a subset of the
  classes in-distribution and the rest aside as the *held-out classes* OOD set.
* :func:`shift` applies one dataset shift (``rotation``, ``gaussian_noise``, ``pixel_dropout``) at
  an integer severity; :func:`noise_images` makes pure-noise images.
* :func:`batch_indices` gives member ``m``'s minibatch at step ``s`` as a pure function of
  ``(seed, m, s)``: reshuffled every epoch, so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

IMAGE_SHAPE = (8, 8, 1)

# Severity levels 1..5 for each shift. Level 0 means "clean" everywhere.
SHIFT_LEVELS: dict[str, tuple[float, ...]] = {
    "rotation": (15.0, 30.0, 45.0, 60.0, 90.0),  # degrees
    "gaussian_noise": (0.1, 0.2, 0.35, 0.5, 0.8),  # std of additive noise on [0, 1] pixels
    "pixel_dropout": (0.1, 0.2, 0.35, 0.5, 0.7),  # probability that a pixel is set to 0
}
SHIFTS = tuple(SHIFT_LEVELS)


@dataclasses.dataclass(frozen=True)
class DigitsData:
    """In-distribution splits plus the held-out-class images.

    Images are float32 ``(n, 8, 8, 1)`` in [0, 1]; labels are int32 in ``[0, num_classes)``,
    remapped so that ``in_classes[label]`` is the original digit.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    in_classes: tuple[int, ...]
    heldout_classes: tuple[int, ...]
    x_heldout: np.ndarray  # test-split images of the held-out classes
    y_heldout: np.ndarray  # their original digit labels

    @property
    def num_classes(self) -> int:
        return len(self.in_classes)

    def summary(self) -> dict[str, object]:
        return {
            "in_classes": list(self.in_classes),
            "heldout_classes": list(self.heldout_classes),
            "num_train": len(self.y_train),
            "num_val": len(self.y_val),
            "num_test": len(self.y_test),
            "num_heldout": len(self.y_heldout),
        }


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng([int(s) for s in seed])


@functools.lru_cache(maxsize=4)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[..., None]
    return images, bunch.target.astype(np.int32)


def load_digits_dataset(
    *,
    seed: int = 0,
    heldout_classes: Sequence[int] = (8, 9),
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DigitsData:
    """Split ``load_digits`` with a fixed seed (stratified by digit) and hold out some classes.

    The split is made over all ten digits first, so the held-out-class OOD images come from the
    same test split as the in-distribution test images.
    """
    from sklearn.model_selection import train_test_split

    images, labels = _raw_digits()
    heldout = tuple(sorted({int(c) for c in heldout_classes}))
    if any(c < 0 or c > 9 for c in heldout):
        raise ValueError(f"heldout_classes must be digits 0..9, got {heldout}")
    in_classes = tuple(c for c in range(10) if c not in heldout)
    if len(in_classes) < 2:
        raise ValueError("at least two digits must stay in-distribution")

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
    remap = np.full(10, -1, np.int32)
    remap[list(in_classes)] = np.arange(len(in_classes), dtype=np.int32)
    is_in = np.isin(labels, in_classes)

    def part(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.sort(idx[is_in[idx]])
        return images[idx], remap[labels[idx]]

    x_train, y_train = part(train)
    x_val, y_val = part(val)
    x_test, y_test = part(test)
    held_idx = np.sort(test[~is_in[test]])
    return DigitsData(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        in_classes=in_classes,
        heldout_classes=heldout,
        x_heldout=images[held_idx],
        y_heldout=labels[held_idx],
    )


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


def noise_images(n: int, *, seed: int = 0) -> np.ndarray:
    """Pure-noise images: i.i.d. uniform [0, 1] pixels, shape ``(n, 8, 8, 1)``."""
    return _rng(seed, 2000).random((n, *IMAGE_SHAPE)).astype(np.float32)


def ood_sets(
    data: DigitsData, severities: Sequence[int], *, seed: int = 0
) -> dict[str, np.ndarray]:
    """All OOD / shifted image sets, keyed ``heldout_classes``, ``noise`` and ``<shift>@<level>``.

    Shifted sets are derived from the in-distribution test images, so they keep their labels
    (``data.y_test``) and accuracy under shift is meaningful.
    """
    sets: dict[str, np.ndarray] = {}
    if len(data.x_heldout):
        sets["heldout_classes"] = data.x_heldout
    sets["noise"] = noise_images(len(data.x_test), seed=seed)
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
