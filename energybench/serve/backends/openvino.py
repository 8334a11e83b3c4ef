"""The ``openvino`` serving backend (optional extra ``energybench[openvino]``): the same ONNX
export as :mod:`energybench.serve.backends.ort`, compiled by OpenVINO for its CPU plugin (its
GPU plugin is for Intel GPUs: an entry on a CUDA device is refused at validate, and ``auto``
places an OpenVINO entry on the CPU, :mod:`energybench.suite.devices`). ``intra_op_threads``
maps to ``INFERENCE_NUM_THREADS``, with the ``LATENCY`` hint (one stream: batch-1 online
serving). The export's spatial axes are dynamic; OpenVINO is faster on a
static graph, so each input shape gets its own compiled model (the serving size compiled during
preparation, inside the metered window; another size, e.g. evaluation clips, on first use).
Inputs are shared with the infer request, not copied; outputs are copied out of it (its buffers
are reused by the next call, and a recurrent state is fed back)."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from energybench.errors import SetupError
from energybench.serve.backends.context import PrepareContext
from energybench.serve.backends.onnx_export import ExportedStep, export_step, serve_once
from energybench.serve.backends.ort import RuntimeServed
from energybench.suite.schema import BackendSpec


class OpenVinoServed(RuntimeServed):
    """A model served by OpenVINO: one compiled model and infer request per input shape."""

    compile_for: Callable[..., Any]  # kept out of the module's children (set through __dict__)
    requests: dict[tuple[tuple[int, ...], ...], tuple[Any, list[Any]]]

    def __init__(
        self, reference: nn.Module, exported: ExportedStep, compile_for: Callable[..., Any]
    ) -> None:
        super().__init__(reference, exported, "openvino")
        self.__dict__["compile_for"] = compile_for
        self.__dict__["requests"] = {}

    def request_for(self, feeds: dict[str, np.ndarray]) -> tuple[Any, list[Any]]:
        """The infer request (and output ports) compiled for these input shapes."""
        key = tuple(f.shape for f in feeds.values())
        if key not in self.requests:
            compiled = self.compile_for({n: f.shape for n, f in feeds.items()})
            ports = [compiled.output(n) for n in self.output_names]
            self.requests[key] = (compiled.create_infer_request(), ports)
        return self.requests[key]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request, ports = self.request_for(feeds)
        res = request.infer(feeds, share_inputs=True)
        return [np.array(res[o], copy=True) for o in ports]


def prepare_openvino(
    model: nn.Module, spec: BackendSpec, ctx: PrepareContext
) -> tuple[nn.Module, dict[str, Any]]:
    """Export to ONNX, read and compile it with OpenVINO: the served model and its record."""
    import openvino as ov

    cpu = copy.deepcopy(model).float().cpu().eval()
    exported = export_step(cpu, ctx.frames[:1].float().cpu(), spec.opset, spec.dynamic_batch)
    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "model.onnx")
        path.write_bytes(exported.onnx)
        ov_model = core.read_model(str(path))
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if spec.intra_op_threads:
        config["INFERENCE_NUM_THREADS"] = spec.intra_op_threads
    if ctx.device.type != "cpu":  # validate refuses it; never run on the CPU charging a GPU
        raise SetupError(
            f"OpenVINO runs on the CPU, but this entry is on {ctx.device}: set device: cpu"
        )
    device = "CPU"

    def compile_for(shapes: dict[str, tuple[int, ...]]) -> Any:
        static = ov_model.clone()
        static.reshape({n: ov.PartialShape(list(s)) for n, s in shapes.items()})
        return core.compile_model(static, device, config)

    served = OpenVinoServed(model.eval(), exported, compile_for).eval()
    with torch.inference_mode():  # compile for the serving size now, inside the metered window
        serve_once(served, ctx.frames[:1].float().cpu())
    info = {"export": exported.info, "openvino": ov.__version__, "ov_device": device}
    return served, info
