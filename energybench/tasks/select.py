"""The task adaptor for a dataset object: super-resolution or classification.

Separate from :mod:`energybench.tasks.base` (the base and the SR task), which the
classification task imports, so that neither imports the other.
"""

from __future__ import annotations

from typing import Any

from energybench.data.base import SRDataset
from energybench.data.images import ImageClassDataset
from energybench.tasks.base import SRTask, Task
from energybench.tasks.classification import ClassificationTask


def make_task(dataset: Any) -> Task:
    """The task adaptor for a dataset object."""
    if isinstance(dataset, SRDataset):
        return SRTask(dataset)
    if isinstance(dataset, ImageClassDataset):
        return ClassificationTask(dataset)
    raise TypeError(f"no task adaptor for dataset type {type(dataset).__name__}")
