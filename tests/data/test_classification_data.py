"""Classification datasets: stratified seeded splits, the embedded digits, and the on-disk
formats (ImageFolder, CIFAR python batches, Fashion-MNIST idx) on tiny files made here."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from energybench.data import DATASETS
from energybench.data.clipset import DatasetConfigError
from energybench.data.images import augment_batch, pool_splits, stratified_split


def test_stratified_split_keeps_class_proportions_is_seeded_and_disjoint() -> None:
    labels = np.repeat(np.arange(4), [100, 40, 20, 60])
    a = stratified_split(labels, [0.1, 0.2], seed=3)
    b = stratified_split(labels, [0.1, 0.2], seed=3)
    c = stratified_split(labels, [0.1, 0.2], seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    joined = np.concatenate(a)
    assert len(joined) == len(labels) == len(set(joined.tolist()))  # disjoint and complete
    assert np.bincount(labels[a[0]]).tolist() == [10, 4, 2, 6]
    assert np.bincount(labels[a[1]]).tolist() == [20, 8, 4, 12]


def test_pool_splits_rejects_fractions_that_leave_no_training_data() -> None:
    with pytest.raises(DatasetConfigError, match="must leave images for training"):
        pool_splits(np.zeros(10, dtype=int), 0.5, 0.5, 0)


def test_digits_are_the_real_mnist_5k_with_stratified_disjoint_splits() -> None:
    ds = DATASETS.create("digits", seed=0)
    n = {s: len(ds.labels[s]) for s in ("train", "val", "test")}
    assert n == {"train": 4000, "val": 500, "test": 500}
    for s in ("val", "test"):
        assert np.bincount(ds.labels[s], minlength=10).tolist() == [50] * 10
    idx = {s: set(ds._index[s].tolist()) for s in ("train", "val", "test")}
    assert not idx["train"] & idx["val"] and not idx["train"] & idx["test"]
    assert not idx["val"] & idx["test"]
    x = ds.load("test", np.arange(5))
    assert x.shape == (5, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert float(x.mean()) > 0.05  # real strokes, not blank images
    again = DATASETS.create("digits", seed=0)
    other = DATASETS.create("digits", seed=1)
    assert np.array_equal(again._index["test"], ds._index["test"])
    assert not np.array_equal(other._index["test"], ds._index["test"])
    # the first test items mix classes, so max_items evaluates a mix (the CSV is sorted by label)
    assert len(set(ds.labels["test"][:20].tolist())) > 3


def test_digits_train_batches_are_seeded_augmented_and_resizable() -> None:
    ds = DATASETS.create("digits", image_size=16, pad_crop_px=2)
    x1, y1 = next(ds.train_batches(8, seed=5))
    x2, y2 = next(ds.train_batches(8, seed=5))
    assert x1.shape == (8, 1, 16, 16) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert ds.spec.to_dict() == {"channels": 1, "size_px": 16, "num_classes": 10}
    assert ds.sample_lr(3).shape == (3, 1, 16, 16)


def test_augment_translates_without_changing_shape() -> None:
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 4, 4] = 1
    out = augment_batch(x, 2, hflip=False, gen=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.allclose(out.sum(dim=(1, 2, 3)), torch.ones(4))
    assert not torch.equal(out, x)


def _png(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(path)


def test_imagefolder_pool_is_split_per_class_and_resized(tmp_path: Path) -> None:
    for k, cls in enumerate(["cat", "dog"]):
        for i in range(10):
            _png(tmp_path / cls / f"{i}.png", 40 + 100 * k)
    ds = DATASETS.create("imagefolder", root=str(tmp_path), image_size=8, seed=0)
    assert ds.classes == ["cat", "dog"]
    assert {s: len(ds.labels[s]) for s in ("train", "val", "test")} == {
        "train": 16,
        "val": 2,
        "test": 2,
    }
    x, y = next(ds.batches("test", 10))
    assert x.shape == (2, 3, 8, 8) and sorted(y.tolist()) == [0, 1]
    for img, lab in zip(x, y, strict=True):  # the label matches the folder the pixels came from
        assert abs(float(img.mean()) - (40 + 100 * int(lab)) / 255) < 0.01


def test_imagefolder_with_train_and_val_folders_uses_them(tmp_path: Path) -> None:
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("a", "b", "c"):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", 10)
    ds = DATASETS.create("imagefolder", root=str(tmp_path), image_size=8, channels=1)
    assert len(ds.labels["train"]) == 12 and len(ds.labels["val"]) == 6
    assert len(ds.labels["test"]) == 6 and ds.spec.channels == 1


def test_imagefolder_missing_root_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetConfigError, match="ImageFolder layout"):
        DATASETS.create("imagefolder", root=str(tmp_path / "nope"))


def test_cifar10_python_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = list(range(10)) * 2
        data = rng.integers(0, 255, (20, 3072), dtype=np.uint8)
        with open(tmp_path / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
    with open(tmp_path / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)
    ds = DATASETS.create("cifar", root=str(tmp_path), val_fraction=0.1)
    assert ds.classes[3] == "c3" and ds.spec.to_dict() == {
        "channels": 3,
        "size_px": 32,
        "num_classes": 10,
    }
    assert {s: len(ds.labels[s]) for s in ("train", "val", "test")} == {
        "train": 90,
        "val": 10,
        "test": 20,
    }
    with pytest.raises(DatasetConfigError, match="data_batch_1"):
        DATASETS.create("cifar", root=str(tmp_path / "empty"))


def _idx(path: Path, arr: np.ndarray) -> None:
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(head + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files_and_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(DatasetConfigError, match="apt-get install dataset-fashion-mnist"):
        DATASETS.create("fashion-mnist", root=str(tmp_path))
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 40), ("t10k", 20)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    ds = DATASETS.create("fashion-mnist", root=str(tmp_path), val_fraction=0.25)
    assert {s: len(ds.labels[s]) for s in ("train", "val", "test")} == {
        "train": 30,
        "val": 10,
        "test": 20,
    }
    assert ds.classes[9] == "ankle boot" and ds.load("test", np.arange(2)).shape == (2, 1, 28, 28)


FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FMNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_installed_fashion_mnist_has_the_official_sizes() -> None:
    ds = DATASETS.create("fashion-mnist", val_fraction=0.1)
    sizes = {s: len(ds.labels[s]) for s in ("train", "val", "test")}
    assert sizes == {"train": 54000, "val": 6000, "test": 10000}
    assert np.bincount(ds.labels["test"]).tolist() == [1000] * 10
