"""The interface every super-resolution dataset implements (images are clips of one frame).

Datasets hand out tensors in [0, 1], channels first. They never download anything: data ships
inside installed packages or is generated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Clip:
    """One evaluation clip: low-resolution input and ground truth, frames in time order."""

    name: str
    lr: torch.Tensor  # (T, 3, h, w)
    hr: torch.Tensor  # (T, 3, h*scale, w*scale)


class SRDataset(ABC):
    """Train batches, held-out clips and serving inputs for one SR benchmark."""

    scale: int = 4

    @abstractmethod
    def train_batches(
        self, batch_size: int, seed: int, frames: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless (lr, hr) batches of training patches.

        ``frames == 1``: (B,3,h,w), (B,3,H,W). ``frames > 1``: (B,T,3,h,w), (B,T,3,H,W) with
        consecutive frames of one clip (for recurrent models).
        """

    @abstractmethod
    def clips(self, split: str) -> list[Clip]:
        """Held-out clips of ``split`` ("val" or "test"); never used in training."""

    @abstractmethod
    def sample_lr(self, batch_size: int, seed: int = 0) -> torch.Tensor:
        """A serving input (batch_size, 3, h, w) at the suite's serving resolution."""

    def describe(self) -> dict[str, Any]:
        """What the report says about the data (sources, sizes, splits)."""
        return {}
