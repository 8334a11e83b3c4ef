"""Helpers and fixtures for compress/serve tests: a tiny photos task and a toy recurrent model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from energybench.compress.common import CompressContext
from energybench.data import DATASETS
from energybench.models.sr.base import SRModel
from energybench.tasks.base import SRTask


class ToyRecurrent(SRModel):
    """head(cat(lr, h)) → body → mid → (pixel-shuffled tail, new state = mid's output)."""

    temporal = True

    def __init__(self, channels: int = 8, scale: int = 4) -> None:
        super().__init__()
        self.scale, self.channels = scale, channels
        self.head = nn.Conv2d(3 + channels, channels, 3, padding=1)
        self.body = nn.Conv2d(channels, channels, 3, padding=1)
        self.mid = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)

    def init_state(self, lr: torch.Tensor) -> tuple[torch.Tensor]:
        return (lr.new_zeros(lr.shape[0], self.channels, *lr.shape[-2:]),)

    def step(self, lr: torch.Tensor, state: tuple[torch.Tensor]) -> tuple[torch.Tensor, tuple]:
        f = F.relu(self.head(torch.cat([lr, state[0]], 1)))
        f = F.relu(self.body(f))
        g = F.relu(self.mid(f))
        up = F.interpolate(lr, scale_factor=self.scale, mode="nearest")
        return F.pixel_shuffle(self.tail(g), self.scale) + up, (g,)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.step(lr, self.init_state(lr))[0]


@pytest.fixture(scope="session")
def tiny_task() -> SRTask:
    ds = DATASETS.create(
        "photos", train=["page"], val=[], test=["astronaut"], patch_size=32,
        test_crop="64x64", serve_lr="16x16", seq_size="48x48", seq_frames=4,
    )  # fmt: skip
    task = SRTask(ds, train_frames=2)
    return task


@pytest.fixture
def ctx(tiny_task: SRTask) -> CompressContext:
    return CompressContext(tiny_task, torch.device("cpu"), seed=0, batch_size=2)


@pytest.fixture
def toy_recurrent() -> ToyRecurrent:
    torch.manual_seed(0)
    return ToyRecurrent().eval()
