"""Reduced-precision serving on the PyTorch backends: bf16 and int8 on CPU matrix units.

- ``dtype: bf16`` (``eager``/``compile``): a bf16 copy of the model in NHWC — weights,
  activations and the recurrent state in bf16 — so oneDNN runs its convolutions on AMX-BF16 (or
  AVX512-BF16) kernels; unlike ``autocast``, nothing is cast back to fp32 between layers. Inputs
  are cast on the way in, outputs returned in the caller's dtype.
- ``quantize: int8`` on ``eager``: FX static int8 (:func:`energybench.compress.quantize.
  quantize_fx`) with oneDNN's qconfig, converted under the ``onednn`` quantized engine, so the
  convolutions are packed for oneDNN's u8s8 kernels (AMX-INT8 or AVX512-VNNI); calibrated on
  the same training batches as the FX int8 compress method.

Both change the outputs, so their difference from fp32 is recorded rather than held to the fp32
parity tolerance, and the runner scores the fp32 model next to the served one on the held-out
clips (:func:`quality_vs_fp32`): the PSNR drop and whether it is within
:data:`QUALITY_DROP_BOUND_DB` go into the evaluate record. On a CPU without the matrix units
(:mod:`energybench.serve.backends.cpu_units`) ``validate`` refuses these entries.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from energybench.serve.backends.context import PrepareContext
from energybench.suite.schema import BackendSpec, Entry

#: largest PSNR drop (dB) against fp32 on the held-out clips that a reduced-precision backend
#: is expected to stay within (above it the record says ``within_bound: false``)
QUALITY_DROP_BOUND_DB = {"bf16": 0.05, "fp16": 0.05, "int8": 0.1}


def reduced_dtype(spec: BackendSpec) -> str | None:
    """The reduced precision ``spec`` serves in (bf16, fp16, int8), or None for fp32."""
    if spec.quantize == "int8":
        return "int8"
    if spec.dtype != "fp32":
        return spec.dtype
    return None if spec.autocast == "none" else spec.autocast


def hardware_units_needed(spec: BackendSpec) -> list[tuple[str, str]]:
    """(spec field, dtype) pairs whose CPU matrix units this backend needs to be worth serving:
    bf16 for ``dtype: bf16``, int8 for PyTorch int8 (ONNX Runtime's QDQ int8 has AVX2 kernels
    and is left as it was)."""
    out = []
    if spec.dtype == "bf16":
        out.append(("dtype", "bf16"))
    if spec.quantize == "int8" and spec.name == "eager":
        out.append(("quantize", "int8"))
    return out


def _on_cpu(e: Entry) -> bool:
    """Whether ``e`` will run on the CPU (its device, or ``auto`` on a host without CUDA)."""
    from energybench.suite.devices import effective_device

    device = effective_device(e)
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def hardware_problems(e: Entry) -> list[tuple[tuple[str, ...], str]]:
    """Reduced precisions this host's CPU lacks the matrix units for, where ``e`` serves on
    the CPU (the suite checks reach this by name: :data:`energybench.suite.backends.HARDWARE`)."""
    from energybench.serve.backends.cpu_units import missing_units

    out: list[tuple[tuple[str, ...], str]] = []
    if _on_cpu(e):
        for field, dtype in hardware_units_needed(e.backend):
            why = missing_units(dtype)
            if why:
                out.append((("backend", field), f"backend.{field}: {dtype} refused: {why}"))
    return out


@contextlib.contextmanager
def quantized_engine(name: str) -> Iterator[None]:
    """PyTorch's quantized engine set to ``name`` (weights packed now use its kernels)."""
    if name not in torch.backends.quantized.supported_engines:
        raise RuntimeError(
            f"PyTorch's quantized engine '{name}' is not in this build "
            f"(supported: {', '.join(torch.backends.quantized.supported_engines)})"
        )
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def prepare_int8(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    """FX static int8 on oneDNN, calibrated on the task's training batches (CPU only)."""
    from energybench.compress.common import CompressContext
    from energybench.compress.quantize import calibration_inputs, quantize_fx

    if ctx.device.type != "cpu":
        raise RuntimeError(f"PyTorch int8 serving runs on the CPU only (entry on {ctx.device})")
    if ctx.task is None:
        raise RuntimeError("int8 calibration needs the entry's task (its training batches)")
    cpu = copy.deepcopy(model).float().cpu().eval()
    cctx = CompressContext(ctx.task, ctx.device, ctx.seed, ctx.batch_size)
    inputs = calibration_inputs(cpu, cctx, spec.calibration_batches)
    t0 = time.perf_counter()
    with quantized_engine("onednn"):
        served = quantize_fx(cpu, inputs, backend="onednn").eval()
    return served, {
        "quantize": "int8",
        "format": "FX static int8 (torch.ao quantize_fx), oneDNN engine (u8 activations, "
        "s8 per-channel weights)",
        "calibration_batches": len(inputs),
        "calibration": "same training batches as the FX int8 compress method",
        "quantize_s": time.perf_counter() - t0,
    }


def quality_vs_fp32(
    dtype: str, served: dict[str, Any], fp32: dict[str, Any], metric: str = "psnr_db"
) -> dict[str, Any]:
    """The evaluate record's ``precision`` entry: the served model's quality against the fp32
    model's on the same clips (``metric`` drop and its bound), plus every other shared figure's
    difference."""
    common = {
        k: float(served[k]) - float(fp32[k])
        for k in served
        if k in fp32
        and isinstance(served[k], int | float)
        and isinstance(fp32[k], int | float)
        and not isinstance(served[k], bool)
        and k != "frames"
    }
    bound = QUALITY_DROP_BOUND_DB.get(dtype)
    drop = -common[metric] if metric in common else None
    return {
        "dtype": dtype,
        "reference": "the same model in fp32 on eager PyTorch, same clips",
        "fp32": {k: fp32[k] for k in common},
        "delta": common,
        f"{metric.removesuffix('_db')}_drop_db": drop,
        "bound_db": bound,
        "within_bound": None if drop is None or bound is None else drop <= bound,
    }
