"""``train.batch_size: auto``: the training batch picked from the entry's device.

On a CUDA device the batch is sized from what one training step costs there, measured, not
guessed: a copy of the model takes a forward and backward pass at two small batch sizes
(:data:`PROBE_BATCHES`) and the caching allocator's peaks give the fixed part (weights, gradients)
and the part per item (activations). The optimiser's state is added (Adam/AdamW keep two moments
per parameter, SGD with momentum one). The batch is the largest power of two whose predicted
peak stays within :data:`MEMORY_FRACTION` of the device's total memory, between 1 and
:data:`MAX_AUTO_BATCH`. The headroom covers the allocator's fragmentation, cuDNN workspaces and
the data path.

On the CPU, memory does not bound a training batch before time does: ``auto`` is
:data:`CPU_BATCH`. The probe runs inside the train phase's window, so its energy is training's.
The chosen batch and how it was chosen are recorded in the train phase (``train.batch_sizing``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from energybench.records.phases import BatchSizing  # the train record's own type
from energybench.tasks.base import Task

PROBE_BATCHES = (1, 2)
MEMORY_FRACTION = 0.6
MAX_AUTO_BATCH = 1024
CPU_BATCH = 16
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1}  # per-parameter state tensors


class DeviceMemory(Protocol):
    """The allocator figures the probe reads (CUDA's caching allocator; a fake in tests)."""

    def total_bytes(self) -> int: ...
    def reset_peak(self) -> None: ...
    def peak_bytes(self) -> int: ...


class CudaMemory:
    """:class:`DeviceMemory` of one CUDA device (``torch.cuda``)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def total_bytes(self) -> int:
        return int(torch.cuda.get_device_properties(self.device).total_memory)

    def reset_peak(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak_bytes(self) -> int:
        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device))


def choose_batch_size(
    fixed_bytes: int,
    per_item_bytes: int,
    total_bytes: int,
    fraction: float = MEMORY_FRACTION,
    cap: int = MAX_AUTO_BATCH,
) -> int:
    """The largest power of two ``b`` <= ``cap`` with ``fixed + b x per_item <= fraction x
    total`` (1 when even one item does not fit: the run then fails as it would have anyway)."""
    budget = fraction * total_bytes - fixed_bytes
    b = 1
    while b * 2 <= cap and (b * 2) * max(per_item_bytes, 1) <= budget:
        b *= 2
    return b


def _probe_step(model: nn.Module, task: Task, batch_size: int, device: torch.device) -> None:
    from energybench.train.loop import task_batches

    batch = next(task_batches(task, model, batch_size, seed=0, device=device))
    loss = task.loss(model, batch, device)
    loss.backward()
    model.zero_grad(set_to_none=True)


def auto_batch_size(
    model: nn.Module,
    task: Task,
    device: torch.device,
    optimizer: str = "adam",
    memory: DeviceMemory | None = None,
    cap: int = MAX_AUTO_BATCH,
    probe_step: Callable[[nn.Module, Task, int, torch.device], None] = _probe_step,
) -> BatchSizing:
    """Resolve ``batch_size: auto`` for ``model`` trained on ``task`` on ``device``.

    ``memory`` defaults to the device's CUDA allocator (the CPU needs none: :data:`CPU_BATCH`,
    or ``cap`` if smaller). ``cap`` is the suite's ``max_batch_size``.
    The model is not changed: the probe trains a deep copy and takes no optimiser step.
    """
    if device.type != "cuda" and memory is None:
        b = min(CPU_BATCH, cap)
        rule = f"cpu: memory does not bound the batch; the fixed {b}"
        return BatchSizing(batch_size=b, rule=rule, device=str(device))
    mem = memory if memory is not None else CudaMemory(device)
    probe = copy.deepcopy(model).to(device).train()
    peaks = []
    for b in PROBE_BATCHES:
        mem.reset_peak()
        probe_step(probe, task, b, device)
        peaks.append(mem.peak_bytes())
    del probe
    (b1, b2), (p1, p2) = PROBE_BATCHES, peaks
    per_item = max((p2 - p1) // (b2 - b1), 1)
    params = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    fixed = max(p1 - per_item * b1, 0) + OPTIMIZER_STATES.get(optimizer, 2) * params
    total = mem.total_bytes()
    chosen = choose_batch_size(fixed, per_item, total, cap=cap)
    return BatchSizing(
        batch_size=chosen,
        rule=f"largest power of two within {MEMORY_FRACTION:.0%} of the device's memory, "
        f"measured at batches {PROBE_BATCHES[0]} and {PROBE_BATCHES[1]} (at most {cap})",
        device=str(device),
        device_total_bytes=total,
        fixed_bytes=fixed,
        per_item_bytes=per_item,
        predicted_peak_bytes=fixed + chosen * per_item,
    )
