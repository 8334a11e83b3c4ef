"""What a serving backend gets to prepare a model (a leaf: runtimes import it without importing
the backend registry in :mod:`energybench.serve.backends.core`, which imports them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class PrepareContext:
    """What a backend may use to prepare a model: serving frames, the task, the entry's seed."""

    frames: torch.Tensor  # (N, C, H, W): N serving inputs, used as N consecutive frames
    device: torch.device
    task: Any = None
    seed: int = 0
    batch_size: int = 16
