"""A Lightning ``Callback`` that measures ``Trainer.fit()``'s training loop as the train phase of
a run (energy by device and source, steps, samples), on energybench's meters.

    from energybench.integrations.lightning import EnergyCallback
    trainer = L.Trainer(..., callbacks=[EnergyCallback(energybench.Run("results/ft", "ft", "m"))])

Only global rank 0 measures and records. A training loop that raises closes the window and
records the train phase as failed (with the error; never counted as a finished phase's cost).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import Callback

from energybench.api import Devices, Run, measure


def _batch_size(batch: Any) -> int:
    """Items in a batch: the first dimension of its first tensor (1 when there is none)."""
    first = batch
    while isinstance(first, list | tuple) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        first = next(iter(first.values()))
    shape = getattr(first, "shape", None)
    return int(shape[0]) if shape else 1


class EnergyCallback(Callback):
    """Record the training loop of a Lightning ``Trainer`` as the ``train`` phase of ``run``."""

    def __init__(
        self,
        run: Run | None = None,
        *,
        devices: Devices = "auto",
        energy: dict[str, Any] | None = None,
        simulate: str | None = None,
    ) -> None:
        self.window = measure(
            "train", phase="train", run=run, devices=devices, energy=energy, simulate=simulate
        )
        self._open = False

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.global_rank == 0 and not self._open:
            self.window.__enter__()
            self._open = True

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._open:
            self.window.tick(_batch_size(batch) * max(trainer.world_size, 1))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._open:
            return
        loss = trainer.callback_metrics.get("train_loss", trainer.callback_metrics.get("loss"))
        self.window.stats.update(
            steps=trainer.global_step,
            samples=self.window.items_served,
            final_loss=float(loss) if loss is not None else None,
            framework="lightning",
        )
        self._open = False
        self.window.__exit__(None, None, None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self._open:  # close the window; the run records the phase as failed
            self._open = False
            self.window.__exit__(type(exception), exception, exception.__traceback__)

    @property
    def measurement(self) -> Any:
        """The train window's :class:`~energybench.records.window.Window` (after training)."""
        return self.window.measurement
