"""The ``onnxruntime`` serving backend: an ONNX export of one step, run by ONNX Runtime.

Execution providers: the suite's ``providers``, else TensorRT then CUDA when the entry runs on
a GPU and they are installed, then the CPU. ``graph_optimization`` maps to ORT's levels
(``all`` = ``ORT_ENABLE_ALL``: constant folding, conv+activation fusion, NCHWc layouts);
``intra_op_threads`` sets the operator thread pool. ``quantize: int8`` applies static QDQ
quantisation (``onnxruntime.quantization.quantize_static``: per-channel int8 weights, uint8
activations) calibrated on the same training batches as the FX int8 compress method, run
online through the float model so recurrent state inputs see realistic values.

Tensors cross into ORT as NumPy views (no copy on the CPU); on a GPU the inputs are copied to
the host and back (ORT I/O binding of device memory is not used here).
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from energybench.models.sr.base import SRModel, online
from energybench.serve.backends.context import PrepareContext
from energybench.serve.backends.onnx_export import ExportedStep, export_step, is_recurrent
from energybench.suite.schema import BackendSpec

LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).contiguous().numpy()


class RuntimeServed(SRModel):
    """A served model whose step runs in an external runtime (``run(feeds) -> outputs``).

    Same interface as the PyTorch model: ``model(x)``, and ``init_state``/``step`` for
    recurrent models (the initial state comes from the float model, kept unregistered)."""

    _reference: nn.Module  # kept out of the module's children (set through __dict__)

    def __init__(self, reference: nn.Module, exported: ExportedStep, runtime: str) -> None:
        super().__init__()
        self.__dict__["_reference"] = reference
        self.temporal = is_recurrent(reference)
        self.scale = getattr(reference, "scale", 4)
        self.input_names, self.output_names = exported.input_names, exported.output_names
        self.state_spec: TreeSpec | None = exported.state_spec
        self.runtime = runtime

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _call(self, lr: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
        feeds = {n: _np(t) for n, t in zip(self.input_names, [lr, *leaves], strict=True)}
        return [torch.from_numpy(o).to(lr.device) for o in self.run(feeds)]

    def init_state(self, lr: torch.Tensor) -> Any:
        return online(self._reference).init_state(lr) if self.temporal else None

    def step(self, lr: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if not self.temporal:
            return self._call(lr, [])[0], state
        leaves, _ = tree_flatten(state)
        out, *new = self._call(lr, leaves)
        assert self.state_spec is not None  # a recurrent export always has one
        return out, tree_unflatten(new, self.state_spec)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.step(lr, self.init_state(lr))[0]


class OrtServed(RuntimeServed):
    """A model served by an ``onnxruntime.InferenceSession``."""

    session: Any  # kept out of the module's children (set through __dict__)

    def __init__(self, reference: nn.Module, exported: ExportedStep, session: Any) -> None:
        super().__init__(reference, exported, "onnxruntime")
        self.__dict__["session"] = session

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feeds)


def providers_for(spec: BackendSpec, device: torch.device) -> list[str]:
    """The execution providers to ask for, in order, among those installed."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if spec.providers:
        missing = [p for p in spec.providers if p not in have]
        if missing:
            raise RuntimeError(
                f"onnxruntime execution provider(s) {', '.join(missing)} not installed here "
                f"(available: {', '.join(have)})"
            )
        return list(spec.providers)
    wanted = ["CPUExecutionProvider"]
    if device.type == "cuda":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", *wanted]
    return [p for p in wanted if p in have]


def make_session(onnx: bytes, spec: BackendSpec, device: torch.device) -> Any:
    """An ORT session over ``onnx`` with the spec's optimisation level, threads and providers."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    level = LEVELS[spec.graph_optimization]
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if spec.intra_op_threads:
        so.intra_op_num_threads = spec.intra_op_threads
    so.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if spec.allow_spinning else "0"
    )
    so.log_severity_level = 3
    return ort.InferenceSession(onnx, so, providers=providers_for(spec, device))


class _Calibration:
    """ORT CalibrationDataReader: each frame of each calibration batch, fed online (the float
    model's state before that frame as the state inputs)."""

    def __init__(self, model: nn.Module, exported: ExportedStep, inputs: list[torch.Tensor]):
        self.feeds: Iterator[dict[str, np.ndarray]] = self._feeds(model, exported, inputs)

    @staticmethod
    def _feeds(
        model: nn.Module, exported: ExportedStep, inputs: list[torch.Tensor]
    ) -> Iterator[dict[str, np.ndarray]]:
        with torch.inference_mode():
            for x in inputs:
                frames = x.unbind(1) if x.dim() == 5 else [x]
                state = online(model).init_state(frames[0]) if is_recurrent(model) else None
                for f in frames:
                    leaves = tree_flatten(state)[0] if state is not None else []
                    names = exported.input_names
                    yield {n: _np(t) for n, t in zip(names, [f, *leaves], strict=True)}
                    if state is not None:
                        _, state = online(model).step(f, state)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantize_qdq(
    exported: ExportedStep, model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[bytes, dict[str, Any]]:
    """Static QDQ int8 of the export, calibrated like the FX int8 method (same batches)."""
    from energybench.compress.common import CompressContext
    from energybench.compress.quantize import calibration_inputs

    cctx = CompressContext(ctx.task, ctx.device, ctx.seed, ctx.batch_size)
    cpu = copy.deepcopy(model).float().cpu().eval()
    inputs = calibration_inputs(cpu, cctx, spec.calibration_batches)
    t0 = time.perf_counter()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs advice on the root logger
    try:
        data = _quantize_file(exported, cpu, inputs)
    finally:
        root.setLevel(level)
    return data, {
        "quantize": "int8",
        "format": "QDQ (onnxruntime.quantization.quantize_static)",
        "calibration_batches": len(inputs),
        "calibration": "same training batches as the FX int8 compress method",
        "quantize_s": time.perf_counter() - t0,
        "int8_onnx_bytes": len(data),
    }


def _quantize_file(exported: ExportedStep, cpu: nn.Module, inputs: list[torch.Tensor]) -> bytes:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(exported.onnx)
        quantize_static(
            str(src),
            str(dst),
            _Calibration(cpu, exported, inputs),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        return dst.read_bytes()


def prepare_onnxruntime(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    """Export, optionally quantise, and open an ORT session: the served model and its record."""
    import onnxruntime as ort

    ref = model.eval()
    cpu = copy.deepcopy(model).float().cpu().eval()  # the graph is device-independent
    exported = export_step(cpu, ctx.frames[:1].float().cpu(), spec.opset, spec.dynamic_batch)
    info: dict[str, Any] = {"export": exported.info, "onnxruntime": ort.__version__}
    onnx = exported.onnx
    if spec.quantize == "int8":
        onnx, info["int8"] = quantize_qdq(exported, ref, spec, ctx)
    session = make_session(onnx, spec, ctx.device)
    info.update(
        providers=session.get_providers(),
        graph_optimization=LEVELS[spec.graph_optimization],
        intra_op_threads=spec.intra_op_threads,
        allow_spinning=spec.allow_spinning,
    )
    return OrtServed(ref, exported, session).eval(), info
