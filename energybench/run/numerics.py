"""GPU numerics a run declares: TF32, fp32 matmul precision and cuDNN autotuning, set
explicitly from the suite's ``numerics`` section (default: exact fp32, no autotuning) before
any work, and read back for the run's environment record.

PyTorch's own defaults differ between versions and settings (cuDNN convolutions allow TF32 by
default; matmuls do not), so leaving them implicit would make a GPU run's fp32 numbers depend
on the installed torch. :func:`exact_fp32` turns TF32 off for the eager reference of a parity
check, so a backend is always compared with true fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from energybench.suite.schema import NumericsSettings


def apply_numerics(settings: NumericsSettings | None) -> dict[str, Any]:
    """Set TF32, matmul precision and ``cudnn.benchmark`` for this process; returns what
    :func:`read_numerics` reads back afterwards."""
    n = settings or NumericsSettings()
    torch.set_float32_matmul_precision(n.matmul_precision)
    torch.backends.cudnn.allow_tf32 = n.tf32
    torch.backends.cudnn.benchmark = n.cudnn_benchmark
    return read_numerics()


def read_numerics() -> dict[str, Any]:
    """The numerics in force in this process (torch's flags, as torch reports them)."""
    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
    }


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """TF32 off (convolutions and matmuls) inside; the previous settings restored after."""
    precision = torch.get_float32_matmul_precision()
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
