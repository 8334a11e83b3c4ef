"""Feeding a GPU from on-disk images: DataLoader workers decode, pinned memory, persistent workers.

Decoding JPEGs in the training process leaves a GPU waiting for every batch. For data read from
disk (``imagefolder``), training batches come from a :class:`torch.utils.data.DataLoader` whose
worker processes decode and resize the images of each batch; on a CUDA device the batches come
in pinned (page-locked) host memory, so the copy to the GPU is asynchronous
(``tensor.to(device, non_blocking=True)``, as the tasks' losses do); the workers are persistent
(started once, kept between epochs and iterators).

What a batch holds never depends on the number of workers: the batch order is drawn in the main
process (its own generator) and augmentation happens in the main process after loading (another
generator), so ``workers: 0`` (the default on the CPU, and in tests) and ``workers: 8`` train on
the same batches. This module moves data; it never measures energy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

#: Decoding workers on a CUDA device when the dataset does not say (``workers`` unset).
MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class LoaderPlan:
    """How training batches are loaded: worker processes, pinned memory, persistent workers."""

    workers: int
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def loader_plan(device: torch.device | None, workers: int | None = None) -> LoaderPlan:
    """The :class:`LoaderPlan` for on-disk images trained on ``device``.

    ``workers`` None (auto): on a CUDA device ``min(8, CPUs - 1)`` decoding workers (at least
    one), on the CPU 0 (the model needs the cores; decoding runs in the training process).
    Pinned memory exactly when the device is CUDA.
    """
    cuda = device is not None and device.type == "cuda"
    if workers is None:
        workers = max(1, min(MAX_AUTO_WORKERS, _cpus() - 1)) if cuda else 0
    return LoaderPlan(
        workers=workers,
        pin_memory=cuda,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )


class _Batches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A map-style dataset whose items are whole batches: (indices, ``load(indices)``)."""

    def __init__(self, load: Callable[[np.ndarray], torch.Tensor]) -> None:
        self.load = load

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(index, dtype=np.int64)
        return torch.from_numpy(idx), self.load(idx)

    def __len__(self) -> int:  # pragma: no cover - the sampler is endless
        raise TypeError("a batch dataset has no length")


class _EndlessOrder(Sampler[np.ndarray]):
    """Index arrays of ``batch_size`` from shuffled epochs of ``n`` items, forever."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[np.ndarray]:
        n, b = self.n, self.batch_size
        while True:
            order = torch.randperm(n, generator=self.gen).numpy()
            for start in range(0, n - b + 1 if n >= b else 1, b):
                yield order[start : start + b]


def batch_loader(
    load: Callable[[np.ndarray], torch.Tensor],
    n: int,
    batch_size: int,
    seed: int,
    plan: LoaderPlan,
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """An endless loader of ``(indices, images)`` batches of ``n`` items, as ``plan`` says.

    The indices come with their images (the caller looks up labels and augments in the main
    process); both are pinned when ``plan.pin_memory``.
    """
    return DataLoader(
        _Batches(load),
        batch_size=None,  # each item is a batch already
        sampler=_EndlessOrder(n, batch_size, seed),
        num_workers=plan.workers,
        pin_memory=plan.pin_memory,
        persistent_workers=plan.persistent_workers,
        prefetch_factor=plan.prefetch_factor,
    )
