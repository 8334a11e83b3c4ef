"""A fake ``onnxruntime`` module with the real API names, for the GPU serving path without a GPU.

It models what the GPU path depends on (checked against ONNX Runtime's Python API):
``get_available_providers()``, ``InferenceSession(model, sess_options, providers=[name or
(name, options)])`` with ``get_providers()`` (requested providers that load, then the CPU,
which ORT always appends) and ``get_provider_options()`` (strings), ``io_binding()`` with
``bind_input(name, device_type, device_id, element_type, shape, buffer_ptr)``,
``bind_output(name, device_type, device_id, element_type, shape, buffer_ptr)``,
``bind_ortvalue_input``, ``get_outputs()`` (OrtValues), ``copy_outputs_to_cpu()``;
``run_with_iobinding``; ``OrtValue.ortvalue_from_numpy(arr, device_type, device_id)``.

Graphs really run, on the real (CPU) onnxruntime: bound buffers are read from and written to
their addresses, so a test sees real outputs through the binding. ``loads`` lists the providers
that load (a CUDA provider missing from it falls back to the CPU, as ORT does when CUDA/cuDNN
libraries are missing). The TensorRT provider "builds" an engine (a file in
``trt_engine_cache_path``) whenever an input shape falls outside the shapes it has seen, as
TensorRT's dynamic-shape profiles do.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as real

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"


def _read(ptr: int, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_float * n).from_address(ptr)).reshape(shape).copy()


def _write(ptr: int, arr: np.ndarray) -> None:
    n = arr.size
    np.ctypeslib.as_array((ctypes.c_float * n).from_address(ptr))[:] = arr.ravel()


class FakeOrtValue:
    """``onnxruntime.OrtValue``: a tensor on a named device."""

    def __init__(self, arr: np.ndarray, device_type: str = "cpu", device_id: int = 0) -> None:
        self._arr, self._device, self._id = arr, device_type, device_id

    @staticmethod
    def ortvalue_from_numpy(arr: np.ndarray, device_type: str = "cpu", device_id: int = 0) -> Any:
        return FakeOrtValue(np.array(arr, copy=True), device_type, device_id)

    def shape(self) -> list[int]:
        return list(self._arr.shape)

    def device_name(self) -> str:
        return self._device

    def numpy(self) -> np.ndarray:
        return self._arr.copy()


class FakeIOBinding:
    """``session.io_binding()``."""

    def __init__(self, session: FakeSession) -> None:
        self.session = session
        self.inputs: dict[str, tuple[str, int, tuple[int, ...], Any]] = {}
        self.outputs: dict[str, tuple[str, int, tuple[int, ...] | None, int | None]] = {}
        self.results: list[FakeOrtValue] = []

    def bind_input(
        self,
        name: str,
        device_type: str,
        device_id: int,
        element_type: Any,
        shape: tuple[int, ...],
        buffer_ptr: int,
    ) -> None:
        assert element_type is np.float32
        self.inputs[name] = (device_type, device_id, tuple(shape), buffer_ptr)
        self.session.log.append(("bind_input", name, device_type, device_id, buffer_ptr))

    def bind_ortvalue_input(self, name: str, ortvalue: FakeOrtValue) -> None:
        self.inputs[name] = (ortvalue.device_name(), 0, tuple(ortvalue.shape()), ortvalue)

    def bind_output(
        self,
        name: str,
        device_type: str = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: tuple[int, ...] | None = None,
        buffer_ptr: int | None = None,
    ) -> None:
        self.outputs[name] = (device_type, device_id, shape, buffer_ptr)
        self.session.log.append(("bind_output", name, device_type, device_id, buffer_ptr))

    def get_outputs(self) -> list[FakeOrtValue]:
        return list(self.results)

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.results]

    def synchronize_inputs(self) -> None:
        pass

    def synchronize_outputs(self) -> None:
        pass

    def clear_binding_inputs(self) -> None:
        self.inputs.clear()

    def clear_binding_outputs(self) -> None:
        self.outputs.clear()

    def feeds(self) -> dict[str, np.ndarray]:
        out = {}
        for name, (_, _, shape, src) in self.inputs.items():
            out[name] = src.numpy() if isinstance(src, FakeOrtValue) else _read(src, shape)
        return out


class FakeSession:
    """``onnxruntime.InferenceSession`` (runs the graph on the real CPU onnxruntime)."""

    def __init__(
        self, ort: FakeOnnxRuntime, model: bytes, sess_options: Any = None, providers: Any = None
    ) -> None:
        asked = [(p, {}) if isinstance(p, str) else (p[0], dict(p[1])) for p in providers or []]
        for name, _ in asked:
            if name not in ort.available:
                raise ValueError(
                    f"This ORT build has {ort.available} enabled. {name} is not available"
                )
        self.requested = asked
        used = [(n, o) for n, o in asked if n in ort.loads]
        if CPU not in [n for n, _ in used]:
            used.append((CPU, {}))
        self.used = used
        self.log: list[tuple[Any, ...]] = []
        self.run_calls = 0
        self.engines_built: list[str] = []
        self._ranges: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._real = real.InferenceSession(model, sess_options, providers=[CPU])
        ort.sessions.append(self)

    def get_providers(self) -> list[str]:
        return [n for n, _ in self.used]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {n: {k: str(v) for k, v in o.items()} for n, o in self.used}

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def get_outputs(self) -> Any:
        return self._real.get_outputs()

    def run(self, output_names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.run_calls += 1
        self._maybe_build(feeds)
        return self._real.run(output_names, feeds)

    def io_binding(self) -> FakeIOBinding:
        return FakeIOBinding(self)

    def run_with_iobinding(self, binding: FakeIOBinding, run_options: Any = None) -> None:
        feeds = binding.feeds()
        self._maybe_build(feeds)
        names = list(binding.outputs)
        results = self._real.run(names, feeds)
        binding.results = []
        for name, arr in zip(names, results, strict=True):
            device_type, device_id, shape, ptr = binding.outputs[name]
            if ptr is not None:
                assert tuple(shape or ()) == arr.shape, (name, shape, arr.shape)
                _write(ptr, arr.astype(np.float32))
            binding.results.append(FakeOrtValue(arr, device_type, device_id))
        self.log.append(("run_with_iobinding",))

    def _maybe_build(self, feeds: dict[str, np.ndarray]) -> None:
        """TensorRT: a new engine when an input shape leaves the range seen so far."""
        if self.get_providers()[0] != TRT:
            return
        grown = False
        for name, a in feeds.items():
            lo, hi = self._ranges.get(name, (a.shape, a.shape))
            new_lo = tuple(min(x, y) for x, y in zip(lo, a.shape, strict=True))
            new_hi = tuple(max(x, y) for x, y in zip(hi, a.shape, strict=True))
            grown |= name not in self._ranges or (new_lo, new_hi) != (lo, hi)
            self._ranges[name] = (new_lo, new_hi)
        if not grown:
            return
        opts = dict(self.used)[TRT]
        key = hashlib.sha256(repr(sorted(self._ranges.items())).encode()).hexdigest()[:12]
        self.engines_built.append(key)
        if opts.get("trt_engine_cache_enable") == "True":
            Path(opts["trt_engine_cache_path"], f"TRTKernel_{key}.engine").write_bytes(b"x")


class FakeOnnxRuntime(types.ModuleType):
    """The fake module: install with ``monkeypatch.setitem(sys.modules, "onnxruntime", ...)``."""

    def __init__(self, available: list[str], loads: list[str] | None = None) -> None:
        super().__init__("onnxruntime")
        self.__version__ = f"{real.__version__}-fake"
        self.__spec__ = real.__spec__  # importlib.util.find_spec("onnxruntime") finds it
        self.available = list(available)
        self.loads = set(available if loads is None else loads)
        self.sessions: list[FakeSession] = []
        self.SessionOptions = real.SessionOptions
        self.GraphOptimizationLevel = real.GraphOptimizationLevel
        self.OrtValue = FakeOrtValue
        self.InferenceSession = functools.partial(FakeSession, self)

    def get_available_providers(self) -> list[str]:
        return list(self.available)
