"""The ``onnxruntime`` serving backend: an ONNX export of one step, run by ONNX Runtime.

Execution providers are chosen explicitly, never by what happens to be installed: the suite's
``providers``, else ``CUDAExecutionProvider`` then the CPU for an entry on a GPU, else the CPU.
Every GPU provider gets the entry's ``device_id`` and the suite's numerics (CUDA: ``use_tf32``,
``cudnn_conv_algo_search``). An entry on a GPU whose session does not run on it (the CPU
``onnxruntime`` package installed, or the CUDA provider failing to load) is an error naming the
install command (:data:`INSTALL_GPU`): never a silent CPU run charged to an idle GPU. The
providers the session actually uses, with their options, are recorded in the serve record.

On a GPU provider, tensors are bound in place with ORT I/O binding (``bind_input`` /
``bind_output`` on the torch tensors' device memory): inputs, outputs and the recurrent state
never cross to the host; each step's outputs are fresh torch tensors on the entry's device, the
state fed back by pointer. On the CPU provider tensors cross as NumPy views (no copy).

TensorRT (``providers: [TensorrtExecutionProvider, ...]``) builds an engine on the first
inference of each input shape: :func:`prepare_onnxruntime` runs one inference per serving shape
(batch 1 and each scenario's batch) inside the export window, so the build energy is in TEC and
no build happens in a measured serving window; engines (and TensorRT's timing cache) go to the
run folder's ``engines/<entry>`` so ``--resume`` reuses them; the build time is recorded.

``graph_optimization`` maps to ORT's levels (``all`` = ``ORT_ENABLE_ALL``); ``intra_op_threads``
sets the operator thread pool. ``quantize: int8`` applies static QDQ quantisation
(``onnxruntime.quantization.quantize_static``: per-channel int8 weights, uint8 activations)
calibrated on the same training batches as the FX int8 compress method, run online through the
float model so recurrent state inputs see realistic values (int8 is a CPU-provider method unless
TensorRT runs it: :mod:`energybench.suite.devices`).
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

from energybench.errors import SetupError
from energybench.models.sr.base import SRModel, online
from energybench.serve.backends.context import PrepareContext
from energybench.serve.backends.onnx_export import (
    ExportedStep,
    export_step,
    is_recurrent,
    serve_once,
)
from energybench.suite.devices import GPU_PROVIDERS
from energybench.suite.schema import BackendSpec, NumericsSettings

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
    """A model served by an ``onnxruntime.InferenceSession``: on a GPU provider through I/O
    binding of device tensors (the state stays on the device), else through NumPy views."""

    session: Any  # kept out of the module's children (set through __dict__)
    out_shapes: dict[tuple[tuple[int, ...], ...], list[tuple[int, ...]]]

    def __init__(self, reference: nn.Module, exported: ExportedStep, session: Any) -> None:
        super().__init__(reference, exported, "onnxruntime")
        self.__dict__["session"] = session
        self.__dict__["out_shapes"] = {}
        self.bound = session.get_providers()[0] in GPU_PROVIDERS

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, feeds)

    def _call(self, lr: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self.bound:
            return super()._call(lr, leaves)
        ins = [t.to(torch.float32).contiguous() for t in [lr, *leaves]]
        key = tuple(tuple(t.shape) for t in ins)
        if key not in self.out_shapes:
            self.out_shapes[key] = self._probe_shapes(ins)
        outs = [torch.empty(shape, dtype=torch.float32, device=lr.device) for shape in
                self.out_shapes[key]]  # fmt: skip
        binding = self._bind(ins)
        for name, t in zip(self.output_names, outs, strict=True):
            binding.bind_output(
                name, t.device.type, _index(t), np.float32, tuple(t.shape), t.data_ptr()
            )
        if lr.device.type == "cuda":  # the inputs are written on torch's stream
            torch.cuda.current_stream(lr.device).synchronize()
        self.session.run_with_iobinding(binding)
        return outs

    def _bind(self, ins: list[torch.Tensor]) -> Any:
        binding = self.session.io_binding()
        for name, t in zip(self.input_names, ins, strict=True):
            binding.bind_input(
                name, t.device.type, _index(t), np.float32, tuple(t.shape), t.data_ptr()
            )
        return binding

    def _probe_shapes(self, ins: list[torch.Tensor]) -> list[tuple[int, ...]]:
        """The output shapes for these input shapes: one run with outputs ORT allocates on the
        device (the recurrent step is a pure function of its inputs, so it is repeatable)."""
        binding = self._bind(ins)
        for name in self.output_names:
            binding.bind_output(name, ins[0].device.type, _index(ins[0]))
        self.session.run_with_iobinding(binding)
        return [tuple(v.shape()) for v in binding.get_outputs()]


def _index(t: torch.Tensor) -> int:
    return t.device.index or 0


#: what to run when a GPU entry finds the CPU build of ONNX Runtime (README: On a GPU server):
#: both builds own the ``onnxruntime/`` package, so remove both, then the GPU build alone
INSTALL_GPU = (
    "pip install 'energybench[gpu]' && pip uninstall -y onnxruntime onnxruntime-gpu && "
    "pip install --no-deps 'onnxruntime-gpu>=1.18'"
)


class OrtDeviceError(SetupError):
    """An ONNX Runtime entry on a GPU that ORT cannot run on that GPU (bad setup: exit 2)."""


def provider_names(spec: BackendSpec, device: torch.device) -> list[str]:
    """The execution providers to ask for, in order. On a GPU: the suite's ``providers``, else
    CUDA then the CPU (TensorRT only when listed: its engines build for minutes). On the CPU
    (including ``--simulate``, where models run on the CPU): the suite's providers without the
    GPU ones (never a GPU the entry is not charged for), else the CPU."""
    if device.type == "cuda":
        return list(spec.providers or ["CUDAExecutionProvider", "CPUExecutionProvider"])
    kept = [p for p in spec.providers or [] if p not in GPU_PROVIDERS]
    return kept or ["CPUExecutionProvider"]


def provider_options(
    name: str, device: torch.device, numerics: NumericsSettings, cache_dir: Path | None
) -> dict[str, str]:
    """ORT provider options (strings, as ORT reports them back) for provider ``name``."""
    index = str(device.index or 0)
    if name == "CUDAExecutionProvider":
        return {
            "device_id": index,
            "use_tf32": "1" if numerics.tf32 else "0",
            "cudnn_conv_algo_search": "EXHAUSTIVE" if numerics.cudnn_benchmark else "HEURISTIC",
        }
    if name == "TensorrtExecutionProvider":
        opts = {"device_id": index, "trt_fp16_enable": "False"}
        if cache_dir is not None:
            opts.update(
                trt_engine_cache_enable="True",
                trt_engine_cache_path=str(cache_dir),
                trt_timing_cache_enable="True",
                trt_timing_cache_path=str(cache_dir),
            )
        return opts
    return {}


def providers_for(
    spec: BackendSpec,
    device: torch.device,
    numerics: NumericsSettings | None = None,
    cache_dir: Path | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """``(provider, options)`` pairs for ``InferenceSession(providers=...)``; a provider that is
    not installed raises :class:`OrtDeviceError` (with the GPU install command for GPU ones)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    names = provider_names(spec, device)
    missing = [p for p in names if p not in have]
    if missing:
        gpu = set(missing) & set(GPU_PROVIDERS)
        hint = f"; install the GPU build (onnxruntime-gpu): {INSTALL_GPU}" if gpu else ""
        raise OrtDeviceError(
            f"onnxruntime execution provider(s) {', '.join(missing)} not installed here "
            f"(onnxruntime {ort.__version__}, available: {', '.join(have)}){hint}"
        )
    num = numerics or NumericsSettings()
    return [(p, provider_options(p, device, num, cache_dir)) for p in names]


def check_session_device(session: Any, device: torch.device, entry: str = "") -> None:
    """Raise :class:`OrtDeviceError` when an entry on a GPU got a session whose first provider
    is the CPU (ORT falls back silently when a GPU provider fails to load)."""
    used = session.get_providers()
    if device.type == "cuda" and (not used or used[0] not in GPU_PROVIDERS):
        who = f"entry '{entry}': " if entry else ""
        raise OrtDeviceError(
            f"{who}onnxruntime would run on the CPU while the entry is on {device} (session "
            f"providers: {', '.join(used)}): the GPU provider did not load (CPU 'onnxruntime' "
            "package, or CUDA/cuDNN libraries missing); install the GPU build "
            f"(onnxruntime-gpu): {INSTALL_GPU}"
        )


def make_session(
    onnx: bytes,
    spec: BackendSpec,
    device: torch.device,
    numerics: NumericsSettings | None = None,
    cache_dir: Path | None = None,
) -> Any:
    """An ORT session over ``onnx`` with the spec's optimisation level, threads and providers
    (checked to run on ``device``'s kind)."""
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
    providers = providers_for(spec, device, numerics, cache_dir)
    session = ort.InferenceSession(onnx, so, providers=providers)
    check_session_device(session, device)
    return session


def _identity_onnx() -> bytes:
    """A one-node ONNX graph (Identity on a float tensor), to probe a provider cheaply."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def gpu_session_problem(spec: BackendSpec, device: torch.device) -> str | None:
    """Why ONNX Runtime cannot serve an entry on GPU ``device`` here (missing GPU build, or its
    GPU provider failing to load on a probe session), or None. Preflight and validate call it."""
    if device.type != "cuda":
        return None
    try:
        make_session(_identity_onnx(), spec.model_copy(update={"intra_op_threads": 1}), device)
    except OrtDeviceError as exc:
        return str(exc)
    return None


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


def serving_shapes(frames: torch.Tensor, batches: tuple[int, ...]) -> list[torch.Tensor]:
    """One serving input per batch size (ascending: a TensorRT profile grows to cover them)."""
    x = frames[:1]
    return [x.expand(b, *x.shape[1:]).contiguous() for b in sorted(set(batches) | {1})]


def _warm_shapes(served: OrtServed, ctx: PrepareContext) -> dict[str, Any]:
    """One inference per serving shape (engines built now, inside the export window)."""
    t0 = time.perf_counter()
    shapes = []
    with torch.inference_mode():
        for x in serving_shapes(ctx.frames.float().to(ctx.device), ctx.serve_batches):
            serve_once(served, x)
            shapes.append(list(x.shape))
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    return {"warm_shapes": shapes, "warm_s": time.perf_counter() - t0}


def prepare_onnxruntime(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    """Export, optionally quantise, open an ORT session on the entry's device and run one
    inference per serving shape: the served model and its record."""
    import onnxruntime as ort

    ref = model.eval()
    cpu = copy.deepcopy(model).float().cpu().eval()  # the graph is device-independent
    exported = export_step(cpu, ctx.frames[:1].float().cpu(), spec.opset, spec.dynamic_batch)
    info: dict[str, Any] = {"export": exported.info, "onnxruntime": ort.__version__}
    onnx = exported.onnx
    if spec.quantize == "int8":
        onnx, info["int8"] = quantize_qdq(exported, ref, spec, ctx)
    trt = "TensorrtExecutionProvider" in provider_names(spec, ctx.device)
    cache = ctx.cache_dir if trt else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    before = _engine_files(cache)
    t0 = time.perf_counter()
    session = make_session(onnx, spec, ctx.device, ctx.numerics, cache)
    session_s = time.perf_counter() - t0
    served = OrtServed(ref, exported, session).eval()
    warm = _warm_shapes(served, ctx)
    info.update(
        providers=session.get_providers(),
        provider_options=_options_used(session),
        io_binding=served.bound,
        session_s=session_s,
        **warm,
        graph_optimization=LEVELS[spec.graph_optimization],
        intra_op_threads=spec.intra_op_threads,
        allow_spinning=spec.allow_spinning,
    )
    if trt:
        after = _engine_files(cache)
        info["tensorrt"] = {
            "engine_cache": str(cache) if cache is not None else None,
            "engines_built": len(after - before),
            "engines_reused": len(after & before),
            "engine_build_s": session_s + warm["warm_s"],
        }
    return served, info


def _engine_files(cache: Path | None) -> set[str]:
    return {p.name for p in cache.iterdir() if p.is_file()} if cache and cache.is_dir() else set()


def _options_used(session: Any) -> dict[str, dict[str, str]]:
    """The options of the providers the session uses (``get_provider_options``), as strings."""
    try:
        opts = session.get_provider_options()
    except AttributeError:  # very old ORT
        return {}
    return {p: {k: str(v) for k, v in o.items()} for p, o in opts.items()}
