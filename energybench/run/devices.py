"""Work on one torch device at a time: its CUDA context, its stream, its memory peaks.

Every ``torch.cuda`` call here names the device it is about, so an entry on ``cuda:1`` never
queues work, records an event, reads a memory figure or empties a cache on ``cuda:0`` by way of
"the current device". On the CPU (and under ``--simulate``, where models run on the CPU) every
function is a no-op. A leaf module: it imports only torch and the standard library.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


def cuda_index(device: torch.device) -> int | None:
    """The CUDA index of ``device`` (``cuda`` alone: the current device); None off CUDA."""
    if device.type != "cuda":
        return None
    return device.index if device.index is not None else torch.cuda.current_device()


def on_cuda(device: torch.device) -> torch.device:
    """``device`` with its index spelled out (``cuda`` -> ``cuda:N``); other devices as given."""
    index = cuda_index(device)
    return device if index is None else torch.device("cuda", index)


@contextlib.contextmanager
def device_scope(device: torch.device) -> Iterator[None]:
    """Run the block with ``device`` as the current CUDA device (kernels launched without an
    explicit device, the current stream and ``torch.cuda.synchronize()`` all go there)."""
    index = cuda_index(device)
    if index is None:
        yield
        return
    with torch.cuda.device(index):
        yield


def current_stream(device: torch.device) -> Any:
    """The current stream of ``device`` (a CUDA device): where its events are recorded."""
    return torch.cuda.current_stream(on_cuda(device))


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(on_cuda(device))


@dataclass
class MemoryPeaks:
    """Peak CUDA memory on one device since :func:`memory_peaks` reset it (None off CUDA)."""

    device: torch.device | None = None

    def read(self) -> dict[str, Any] | None:
        """``{"device", "peak_allocated_bytes", "peak_reserved_bytes"}`` so far: the caching
        allocator's peaks (tensors; what it holds for them). None off CUDA: torch keeps no
        such figure for host memory, and none is made up."""
        if self.device is None:
            return None
        return {
            "device": str(self.device),
            "peak_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device)),
            "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device)),
        }


@contextlib.contextmanager
def memory_peaks(device: torch.device) -> Iterator[MemoryPeaks]:
    """Reset ``device``'s CUDA memory peaks, so that what the block reads (:meth:`MemoryPeaks.read`)
    belongs to the block alone."""
    if device.type != "cuda":
        yield MemoryPeaks()
        return
    dev = on_cuda(device)
    torch.cuda.reset_peak_memory_stats(dev)
    yield MemoryPeaks(dev)


def release_memory(device: torch.device) -> None:
    """Free what nothing references any more and give ``device``'s cached blocks back to the
    driver (after a served model, its session and its engine have been dropped)."""
    gc.collect()
    if device.type == "cuda":
        with torch.cuda.device(on_cuda(device)):
            torch.cuda.empty_cache()
