"""The task table: which task adaptor serves which dataset type, and the quality figures each
produces (what ``metric.quality`` may name).

A new task type is one module (its dataset type and its :class:`~energybench.tasks.base.Task`)
and one ``TASKS.register(TaskPlugin(...))`` line. Entries are lazy ``"module:attr"`` strings, so
the suite schema validates quality figures against this table without importing the runtime.
This module imports only the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from energybench.plugins.registry import Registry, resolve

#: The figures of the super-resolution task (:class:`energybench.tasks.base.SRTask`).
SR_QUALITY: tuple[str, ...] = ("psnr_db", "ssim", "psnr_gain_db", "bicubic_psnr_db")
#: The figures of the classification task (:mod:`energybench.tasks.classification`).
CLASSIFICATION_QUALITY: tuple[str, ...] = ("top1", "top5")


@dataclass(frozen=True)
class TaskPlugin:
    """One task type: the dataset type it adapts, its adaptor class, and its quality figures."""

    name: str
    dataset: type | str  # lazy "module:Class" of the dataset type it serves
    adaptor: type | str  # lazy "module:Class": a Task subclass built from the dataset
    quality: tuple[str, ...]
    help: str = ""


class TaskRegistry(Registry[TaskPlugin]):
    """Task types in registration order; a dataset gets the most specific matching adaptor."""

    def __init__(self) -> None:
        super().__init__("task", TaskPlugin)

    def quality_figures(self) -> list[str]:
        """Every figure some task produces, in registration order."""
        return list(dict.fromkeys(q for p in self.values() for q in p.quality))

    def check_quality(self, figure: str) -> str:
        """``figure`` if some task produces it; else the error an enumeration gives (pydantic's
        ``literal_error``, so the suite loader words it like every other choice)."""
        from pydantic_core import PydanticCustomError

        known = self.quality_figures()
        if figure in known:
            return figure
        expected = ", ".join(repr(k) for k in known)
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )

    def make(self, dataset: Any) -> Any:
        """The task adaptor for a dataset object (the most derived matching dataset type)."""
        matches = []
        for plugin in self.values():
            cls = resolve(plugin.dataset)
            if isinstance(dataset, cls):
                matches.append((len(cls.__mro__), plugin))
        if not matches:
            raise TypeError(f"no task adaptor for dataset type {type(dataset).__name__}")
        plugin = max(matches, key=lambda m: m[0])[1]
        return resolve(plugin.adaptor)(dataset)


TASKS = TaskRegistry()
TASKS.register(
    TaskPlugin(
        "super-resolution",
        "energybench.data.base:SRDataset",
        "energybench.tasks.base:SRTask",
        SR_QUALITY,
        help="x4 image and online video super-resolution: L1 loss, PSNR/SSIM",
    )
)
TASKS.register(
    TaskPlugin(
        "classification",
        "energybench.data.images:ImageClassDataset",
        "energybench.tasks.classification:ClassificationTask",
        CLASSIFICATION_QUALITY,
        help="image classification: cross-entropy, top-1/top-5 accuracy",
    )
)
