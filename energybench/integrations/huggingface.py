"""A Hugging Face ``TrainerCallback`` that measures ``Trainer.train()`` as the train phase of a
run (energy by device and source, steps, samples), on energybench's meters.

    from energybench.integrations.huggingface import EnergyCallback
    trainer = Trainer(..., callbacks=[EnergyCallback(energybench.Run("results/ft", "ft", "bert"))])

Only the main process (``state.is_world_process_zero``) measures and records: in a distributed
run its window covers the GPUs ``devices`` names (default: every visible GPU of the node).
``Trainer`` tells no callback that training raised: close the window then with :meth:`abort`
(``try: trainer.train() except BaseException as e: callback.abort(e); raise``), which records
the train phase as failed and frees its GPUs.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from energybench.api import Devices, Run, measure


class EnergyCallback(TrainerCallback):
    """Record the training loop of a ``transformers.Trainer`` as the ``train`` phase of ``run``."""

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

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and not self._open:
            self.window.__enter__()
            self._open = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._open:
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
            self.window.tick(per_step * max(args.world_size, 1))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._open:
            return
        losses = [h["loss"] for h in state.log_history if "loss" in h]
        self.window.stats.update(
            steps=state.global_step,
            samples=self.window.items_served,
            final_loss=float(losses[-1]) if losses else None,
            framework="transformers.Trainer",
        )
        self._open = False
        self.window.__exit__(None, None, None)

    def abort(self, exc: BaseException | None = None) -> None:
        """Close a window that ``Trainer.train()`` left open by raising ``exc``: the run records
        the train phase as failed (its energy kept, never counted as a finished phase)."""
        if self._open:
            self._open = False
            error = exc if exc is not None else RuntimeError("training was aborted")
            self.window.__exit__(type(error), error, error.__traceback__)

    @property
    def measurement(self) -> Any:
        """The train window's :class:`~energybench.records.window.Window` (after training)."""
        return self.window.measurement
