"""What a serving backend gets to prepare a model (a leaf: runtimes import it without importing
the backend registry in :mod:`energybench.serve.backends.core`, which imports them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from energybench.suite.schema import NumericsSettings


@dataclass
class PrepareContext:
    """What a backend may use to prepare a model: serving frames, the task, the entry's seed;
    ``serve_batches``: the batch sizes the scenarios serve (a backend that builds per shape,
    like TensorRT, builds each in the export window); ``cache_dir``: where engines may be
    cached (the run folder's ``engines/<entry>``); ``numerics``: the suite's GPU numerics."""

    frames: torch.Tensor  # (N, C, H, W): N serving inputs, used as N consecutive frames
    device: torch.device
    task: Any = None
    seed: int = 0
    batch_size: int = 16
    serve_batches: tuple[int, ...] = (1,)
    cache_dir: Path | None = None
    numerics: NumericsSettings | None = None
