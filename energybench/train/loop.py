"""The training loop used by the train phase and by fine-tuning inside compression methods.

It trains; it never measures energy (the caller wraps it in a measurement window).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from energybench.tasks.base import Task

Progress = Callable[[int, int, float], None]  # (step, total, loss)


@dataclass
class TrainResult:
    steps: int
    seconds: float
    final_loss: float | None
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    batch_size: int | None = None  # items per step, as the loop drew them

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seconds": self.seconds,
            "final_loss": self.final_loss,
            "loss_curve": self.loss_curve,
        }


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name}")


def settings_kwargs(settings: Any) -> dict[str, Any]:
    """:func:`train_steps` keyword arguments from a suite's ``TrainSettings``."""
    return {
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "optimizer": settings.optimizer,
        "lr_schedule": settings.lr_schedule,
        "weight_decay": settings.weight_decay,
        "seed": settings.seed,
        "log_every": settings.log_every,
    }


def task_batches(
    task: Task, model: nn.Module, batch_size: int, seed: int, device: torch.device | None
) -> Iterator[Any]:
    """``task``'s training batches, loaded for ``device`` when the task takes one (on-disk
    images: decoding workers and pinned memory on CUDA); plug-in tasks without a ``device``
    parameter are called as before."""
    params = inspect.signature(task.train_batches).parameters
    if "device" in params:
        return task.train_batches(model, batch_size, seed, device=device)  # type: ignore[call-arg]
    return task.train_batches(model, batch_size, seed)


def train_steps(
    model: nn.Module,
    task: Task,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    optimizer: str = "adam",
    lr_schedule: str = "cosine",
    weight_decay: float = 0.0,
    seed: int = 0,
    log_every: int = 50,
    progress: Progress | None = None,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``steps`` optimiser steps on ``task``'s training batches.

    ``loss_fn(model, batch)`` replaces the task's loss (distillation uses it).
    """
    torch.manual_seed(seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params or steps <= 0:
        return TrainResult(steps=0, seconds=0.0, final_loss=None)
    opt = make_optimizer(optimizer, params, lr, weight_decay)
    sched = None
    if lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        )
    batches = task_batches(task, model, batch_size, seed, device)
    curve: list[tuple[int, float]] = []
    loss_val = float("nan")
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        batch = next(batches)
        loss = loss_fn(model, batch) if loss_fn else task.loss(model, batch, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if step % log_every == 0 or step == steps:
            loss_val = float(loss.detach())
            curve.append((step, loss_val))
        if progress is not None and (step % 5 == 0 or step == steps):
            progress(step, steps, loss_val)
    finish = getattr(task, "after_training", None)  # e.g. precise BatchNorm statistics
    if finish is not None:
        finish(model, device, seed)
    model.eval()
    return TrainResult(
        steps=steps,
        seconds=time.perf_counter() - t0,
        final_loss=loss_val,
        loss_curve=curve,
        batch_size=batch_size,
    )
