"""What a phase may use of its run (:class:`PhaseContext`): the suite, the run store, the
energy monitor, the placements and the checkpoint loader. Phase code outside the runner (the
distributed train phase) gets this, never the :class:`~energybench.run.runner.Runner` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from energybench.meters.base import EnergyMonitor
    from energybench.records.store import RunStore
    from energybench.run.checkpoint import CheckpointLoader
    from energybench.run.placement import Placement
    from energybench.suite.load import LoadedSuite
    from energybench.suite.schema import Entry, Suite
    from energybench.tasks.base import Task


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

    def build_model(
        self, e: Entry, device: torch.device, task: Task | None = None
    ) -> tuple[nn.Module, dict[str, Any] | None]:
        """Entry ``e``'s model, built from its spec on ``device`` (teachers in ``uses``: their
        trained checkpoints, loaded safely), and the pretrained weights it loaded, if any."""
        from energybench.run.checkpoint import build_model
        from energybench.tasks.base import model_kwargs

        def upstream(name: str) -> nn.Module:  # a teacher's trained model, loaded safely
            return self.load(self.store.checkpoint_path(name, "train"), device)

        # the task's context (input channels, size, classes) is part of the recorded spec, so a
        # checkpoint recipe rebuilds exactly this architecture
        spec = {"name": e.model.name, "params": model_kwargs(e.model.name, e.model.params, task)}
        model = build_model(spec, e.uses, upstream)
        weights = None
        if e.model.weights is not None:  # pretrained: training fine-tunes from these
            from energybench.models.weights import load_weights

            weights = load_weights(model, e.model.weights, e.model.name, self.loaded.path.parent)
        return model.to(device), weights
