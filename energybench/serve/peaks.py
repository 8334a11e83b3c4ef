"""The serving device's attainable matrix-multiply rate, measured once per run.

A served model's FLOP/s (its FLOPs per item x items/s) means little on its own; against what
the same device does on a large square matrix product in the same dtype, at the same thread
count, it is a roofline point: the fraction of the machine's own limit the backend reaches. The
report shows it beside each entry's frame rate. ``benchmarks/bench_backends.py`` measures the
same peak (and a 3x3-convolution peak) with more rounds.
"""

from __future__ import annotations

import time
from typing import Any

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def gemm_peak_flops(device: torch.device, dtype: str = "fp32", seconds: float = 0.3) -> float:
    """FLOP/s of ``n x n @ n x n`` on ``device`` (n = 1024 on the CPU, 4096 on a GPU), over at
    least ``seconds`` after one warm-up product; CUDA work is queued ten products at a time and
    synchronised before each clock reading."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device).to(DTYPES[dtype])
    b = torch.randn(n, n, device=device).to(DTYPES[dtype])

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        torch.mm(a, b)
        sync()
        per_sync = 10 if device.type == "cuda" else 1  # queued: no launch gap between products
        iters, t0 = 0, time.perf_counter()
        while True:
            for _ in range(per_sync):
                torch.mm(a, b)
            iters += per_sync
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
    return 2.0 * n**3 * iters / elapsed


def serving_dtype(entry: Any) -> str | None:
    """The dtype an entry's served model computes in, for its roofline point: ``fp32``,
    ``bf16`` or ``fp16``; None for int8 (quantised in compression or on its backend), whose
    integer peak a float GEMM does not give."""
    b = entry.backend
    if b.quantize != "none" or any(getattr(c, "method", "") == "quantize" for c in entry.compress):
        return None
    if getattr(b, "dtype", "fp32") == "bf16" or b.autocast == "bf16":
        return "bf16"
    return "fp16" if b.autocast == "fp16" else "fp32"
