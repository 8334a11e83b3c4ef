"""What a phase may use of its run (:class:`PhaseContext`): the suite, the run store, the
energy monitor, the placements and the checkpoint loader. Phase code outside the runner (the
distributed train phase) gets this, never the :class:`~energybench.run.runner.Runner` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from energybench.meters.base import EnergyMonitor
    from energybench.records.store import RunStore
    from energybench.run.checkpoint import CheckpointLoader
    from energybench.run.placement import Placement
    from energybench.suite.load import LoadedSuite
    from energybench.suite.schema import Suite


@dataclass(frozen=True)
class PhaseContext:
    """The run as a phase sees it. ``monitor`` is None outside a measured run; ``simulate``
    names the ``--simulate`` profile, if any."""

    loaded: LoadedSuite
    store: RunStore
    placements: Mapping[str, Placement]
    loader: CheckpointLoader
    monitor: EnergyMonitor | None = None
    simulate: str | None = None

    @property
    def suite(self) -> Suite:
        return self.loaded.suite

    def placement(self, entry: str) -> Placement:
        """Where entry ``entry`` runs."""
        return self.placements[entry]

    def load(self, path: Path, device: torch.device) -> nn.Module:
        """A checkpoint of this run: tensors only, the module rebuilt from its recipe."""
        return self.loader.load(path, device)
