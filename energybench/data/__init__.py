"""The dataset registry. Entries are lazy: a dataset's module is imported only when it is used."""

from __future__ import annotations

from energybench.registry import Registry

DATASETS: Registry = Registry("dataset")

DATASETS.register(
    "photos",
    "energybench.data.photos:PhotosDataset",
    help="image SR x4 on scikit-image's bundled photos (BI degradation, explicit splits)",
)
