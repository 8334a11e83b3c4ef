"""Serving backends: the inference runtime an entry's final model is served and evaluated on.

A backend turns the final ``nn.Module`` into a *served model* with the same interface
(``model(x)``, and ``init_state``/``step`` for online recurrent models), so every serving
scenario and the quality evaluation run unchanged on it. Registry: name → :class:`Backend`
(how to prepare a model, what it can run, whether it is installed). Built in:

- ``eager``: the PyTorch module itself (``channels_last`` optional);
- ``compile``: ``torch.compile`` (``compile_mode``), compiled once on a serving input;
- ``onnxruntime``: a ``torch.onnx`` export of one step run by ONNX Runtime
  (:mod:`energybench.serve.backends.ort`; optional static QDQ int8);
- ``openvino``: the same export run by OpenVINO (optional extra ``energybench[openvino]``).

:func:`prepare_serving` runs the one-off part (export, compile, int8 calibration) in its own
measurement window — its energy is counted in TEC like a compression step — and checks the
served outputs against eager over several frames with the state carried (max |diff| recorded;
above the backend's fp32 tolerance, :data:`PARITY_TOLERANCE`, the phase fails).
The table of backends and :func:`backend_problems` (what ``energybench validate`` reports when a
backend cannot run an entry's model) live in :mod:`energybench.suite.backends`.
"""

from __future__ import annotations

import contextlib
import copy
import time
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from energybench.models.sr.base import SRModel, online
from energybench.serve.backends.context import PrepareContext
from energybench.serve.backends.lowp import reduced_dtype
from energybench.serve.backends.onnx_export import is_recurrent, serve_once
from energybench.suite.backends import (
    BACKENDS,
    Backend,
    backend_problems,
    model_class,
    register,
)
from energybench.suite.schema import BackendSpec, Entry

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendParityError",
    "PrepareContext",
    "backend_problems",
    "model_class",
    "online_outputs",
    "prepare_serving",
    "register",
    "serving_batches",
]


class BackendParityError(RuntimeError):
    """The backend's outputs differ from eager PyTorch by more than the tolerance."""


# ----------------------------------------------------------------------------- PyTorch backends
class ServedWrapper(SRModel):
    """A PyTorch model whose calls go through a transform (same served interface): its inputs
    (:meth:`_input`), a context around the call (:meth:`_context`) and its output
    (:meth:`_output`). The state passes through unchanged."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.temporal = bool(getattr(model, "temporal", False))
        self.scale = getattr(model, "scale", 4)

    def _input(self, lr: torch.Tensor) -> torch.Tensor:
        return lr

    def _context(self, lr: torch.Tensor) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def _output(self, out: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return out

    def init_state(self, lr: torch.Tensor) -> Any:
        return online(self.model).init_state(self._input(lr)) if self.temporal else None

    def step(self, lr: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        x = self._input(lr)
        with self._context(lr):
            if self.temporal:
                out, state = online(self.model).step(x, state)
            else:
                out = self.model(x)
        return self._output(out, lr), state

    def forward(self, lr: torch.Tensor) -> Any:
        return self.step(lr, self.init_state(lr))[0]


class ChannelsLast(ServedWrapper):
    """A PyTorch model fed NHWC (channels_last) inputs; the weights were converted once."""

    def _input(self, lr: torch.Tensor) -> torch.Tensor:
        return lr.contiguous(memory_format=torch.channels_last) if lr.dim() == 4 else lr


def _channels_last(model: nn.Module, spec: BackendSpec) -> nn.Module:
    if not spec.channels_last:
        return model
    return ChannelsLast(copy.deepcopy(model).to(memory_format=torch.channels_last)).eval()


AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class Autocast(ServedWrapper):
    """A PyTorch model run under ``torch.autocast(dtype)`` on its input's device; outputs are
    returned in the input's dtype (the served interface does not change), the state as is."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__(model)
        self.dtype = dtype

    def _context(self, lr: torch.Tensor) -> AbstractContextManager[Any]:
        return torch.autocast(lr.device.type, dtype=self.dtype)

    def _output(self, out: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return out.to(lr.dtype)


class Bf16(ServedWrapper):
    """A bf16 NHWC copy of a model (weights, activations and state in bf16: oneDNN's AMX or
    AVX512-BF16 convolutions on CPUs); inputs cast to bf16 NHWC, outputs to the input's dtype
    (:mod:`energybench.serve.backends.lowp`)."""

    def __init__(self, model: nn.Module) -> None:
        cast = copy.deepcopy(model).to(torch.bfloat16)
        super().__init__(cast.to(memory_format=torch.channels_last))

    def _input(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr.to(torch.bfloat16)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def _output(self, out: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return out.to(lr.dtype)


def _pytorch_served(model: nn.Module, spec: BackendSpec) -> nn.Module:
    """The PyTorch backends' model: a bf16 NHWC copy (``dtype: bf16``), else NHWC weights
    (``channels_last``); then ``autocast``."""
    served = Bf16(model).eval() if spec.dtype == "bf16" else _channels_last(model, spec)
    if spec.autocast != "none":
        served = Autocast(served, AUTOCAST_DTYPES[spec.autocast]).eval()
    return served


def prepare_eager(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    if spec.quantize == "int8":
        from energybench.serve.backends.lowp import prepare_int8

        served, info = prepare_int8(model, spec, ctx)
        return served, {**info, "units": _units("int8", ctx)}
    info = {"channels_last": spec.channels_last, "autocast": spec.autocast, "dtype": spec.dtype}
    if spec.dtype == "bf16":
        info["units"] = _units("bf16", ctx)
    return _pytorch_served(model, spec), info


def _units(dtype: str, ctx: PrepareContext) -> list[str] | None:
    """The CPU flags giving ``dtype`` its matrix units (recorded; None on a GPU)."""
    from energybench.serve.backends.cpu_units import units

    return units(dtype) if ctx.device.type == "cpu" else None


def prepare_compile(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    import torch._inductor.config as inductor_config

    from energybench.serve.scenarios import compiled_for_serving

    served = compiled_for_serving(_pytorch_served(model, spec), spec.compile_mode)
    t0 = time.perf_counter()
    # compile now, on a serving input (inside the metered window); freezing applies to this
    # compilation (a later recompilation for another input size is unfrozen, still correct)
    with torch.inference_mode(), inductor_config.patch(freezing=spec.freeze):
        x = ctx.frames[:1].to(ctx.device)
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        serve_once(served, x.to(dtype) if dtype is not None else x)
    return served, {
        "channels_last": spec.channels_last,
        "compile_mode": spec.compile_mode,
        "autocast": spec.autocast,
        "dtype": spec.dtype,
        **({"units": _units("bf16", ctx)} if spec.dtype == "bf16" else {}),
        "freeze": spec.freeze,
        "compile_s": time.perf_counter() - t0,
    }


def prepare_onnxruntime(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    from energybench.serve.backends.ort import prepare_onnxruntime

    return prepare_onnxruntime(model, spec, ctx)


def prepare_openvino(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    from energybench.serve.backends.openvino import prepare_openvino

    return prepare_openvino(model, spec, ctx)


# ----------------------------------------------------------------------------- parity
@torch.inference_mode()
def online_outputs(model: nn.Module, frames: torch.Tensor) -> list[torch.Tensor]:
    """Outputs of ``model`` over ``frames`` (N,C,H,W) served as N consecutive batch-1 frames,
    the state carried from frame to frame (per-frame models: one call each)."""
    outs = []
    state = online(model).init_state(frames[:1]) if is_recurrent(model) else None
    for t in range(frames.shape[0]):
        x = frames[t : t + 1]
        if is_recurrent(model):
            y, state = online(model).step(x, state)
        else:
            y = model(x)
            y = y[0] if isinstance(y, tuple | list) else y
        outs.append(y.detach().float().cpu())
    return outs


def max_abs_diff(reference: nn.Module, served: nn.Module, frames: torch.Tensor) -> float:
    """Largest |served - reference| over the frames' outputs (state carried); the reference
    runs in exact fp32 (TF32 off), the served model under the run's numerics."""
    from energybench.run.numerics import exact_fp32

    with exact_fp32():
        ref = online_outputs(reference, frames)
    got = online_outputs(served, frames)
    return max(float((a - b).abs().max()) for a, b in zip(ref, got, strict=True))


#: Default fp32 parity tolerances (largest |served - eager| over ``parity_frames`` recurrent
#: frames, outputs in [0, 1]): ``exact`` where the served path computes in fp32 (CPU; GPU with
#: TF32 off: cuDNN/ORT CUDA algorithm choices differ only in summation order, ~1e-6 per layer);
#: ``tf32`` where it may use TF32's 10-bit mantissa (~1e-3 relative per layer): on a GPU with
#: ``numerics.tf32`` or a reduced ``matmul_precision``, and TensorRT (TF32 on by default in its
#: builder, not switchable through ONNX Runtime). ``backend.parity_tolerance`` overrides both.
PARITY_TOLERANCE = {"exact": 1e-4, "tf32": 5e-3}


def parity_tolerance(spec: BackendSpec, ctx: PrepareContext) -> tuple[float, str]:
    """The fp32 tolerance for ``spec`` on ``ctx``'s device, and where it comes from."""
    if spec.parity_tolerance is not None:
        return spec.parity_tolerance, "backend.parity_tolerance"
    gpu = ctx.device.type == "cuda"
    trt = spec.name == "onnxruntime" and "TensorrtExecutionProvider" in (spec.providers or [])
    tf32 = ctx.numerics is not None and ctx.numerics.uses_tf32()
    kind = "tf32" if gpu and (trt or tf32) else "exact"
    return PARITY_TOLERANCE[kind], f"default ({kind} fp32 on {ctx.device.type})"


# ----------------------------------------------------------------------------- entry points
def prepare_serving(
    spec: BackendSpec,
    model: nn.Module,
    ctx: PrepareContext,
    monitor: Any = None,
    window: str = "export",
) -> tuple[nn.Module, dict[str, Any]]:
    """The served model and the backend record (name, options, the one-off step's window).

    The one-off step (export, compilation, calibration) runs inside ``monitor.window(window)``
    when a monitor is given; then the outputs are compared with eager over
    ``spec.parity_frames`` frames (fp32: more than :func:`parity_tolerance` raises
    :class:`BackendParityError`).
    """
    backend = BACKENDS.get(spec.name)
    why = backend.unavailable()
    if why:
        raise RuntimeError(f"backend '{spec.name}' is unavailable: {why}")
    record: dict[str, Any] = {"name": spec.name, "settings": spec.model_dump(mode="json")}
    reduced = reduced_dtype(spec)
    if not backend.one_off and not spec.channels_last and reduced is None:
        return model, {**record, "export": None}
    # int8 calibration is a one-off step on any backend (metered, counted in TEC)
    one_off = backend.one_off or spec.quantize != "none"
    t0 = time.time()
    if monitor is not None and one_off:
        with monitor.window(window) as w:
            served, info = backend.prepared(model, spec, ctx)
        meas = w.measurement.to_json() if w.measurement is not None else None
    else:
        served, info = backend.prepared(model, spec, ctx)
        meas = None
    export = {**info, "started_unix_s": t0, "duration_s": time.time() - t0}
    if one_off:
        export["measurement"] = meas
    frames = ctx.frames[: spec.parity_frames].to(ctx.device)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    frames = frames.to(dtype) if dtype is not None else frames
    diff = max_abs_diff(model, served, frames)
    exact = reduced is None and dtype in (None, torch.float32)
    tolerance, source = parity_tolerance(spec, ctx)
    export["parity"] = {
        "max_abs_diff": diff,
        "frames": int(frames.shape[0]),
        "tolerance": tolerance if exact else None,
        "tolerance_source": source if exact else None,
        "reference": "eager PyTorch, exact fp32 (TF32 off)",
    }
    if exact and not diff <= tolerance:
        what = spec.name + (" (channels_last)" if spec.channels_last else "")
        raise BackendParityError(
            f"backend '{what}' differs from eager PyTorch by up to {diff:.3g} over "
            f"{frames.shape[0]} frames (fp32 tolerance {tolerance:g}, {source}); the served "
            "outputs would not be the model's"
        )
    if reduced is not None:
        export["parity"]["dtype"] = reduced
    return served, {**record, "export": export if one_off or info else None}


def serving_batches(e: Entry) -> tuple[int, ...]:
    """The batch sizes ``e``'s scenarios serve (1, each throughput batch, a load's largest
    batch): the shapes a per-shape backend (TensorRT) builds inside the export window."""
    out = {1}
    for sc in e.serve:
        out.update(getattr(sc, "batch_sizes", []) or [])
        if sc.scenario == "load":
            out.add(int(getattr(sc, "max_batch", 1)))
    return tuple(sorted(out))
