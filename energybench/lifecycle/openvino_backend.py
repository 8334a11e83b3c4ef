"""The ``openvino`` serving backend (optional extra ``energybench[openvino]``): the same ONNX
export as :mod:`energybench.lifecycle.ort_backend`, compiled by OpenVINO for its CPU (or GPU)
plugin. ``intra_op_threads`` maps to ``INFERENCE_NUM_THREADS``. Outputs are copied out of the
infer request (its buffers are reused by the next call, and a recurrent state is fed back)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from energybench.lifecycle.backend_context import PrepareContext
from energybench.lifecycle.onnx_export import ExportedStep, export_step
from energybench.lifecycle.ort_backend import RuntimeServed
from energybench.suite.schema import BackendSpec


class OpenVinoServed(RuntimeServed):
    """A model served by an OpenVINO compiled model (one infer request, reused)."""

    request: Any  # kept out of the module's children (set through __dict__)
    outputs: list[Any]

    def __init__(self, reference: nn.Module, exported: ExportedStep, compiled: Any) -> None:
        super().__init__(reference, exported, "openvino")
        self.__dict__["request"] = compiled.create_infer_request()
        self.__dict__["outputs"] = [compiled.output(n) for n in exported.output_names]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        res = self.request.infer(feeds)
        return [np.array(res[o], copy=True) for o in self.outputs]


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
    config = {"INFERENCE_NUM_THREADS": spec.intra_op_threads} if spec.intra_op_threads else {}
    device = "GPU" if ctx.device.type == "cuda" and "GPU" in core.available_devices else "CPU"
    compiled = core.compile_model(ov_model, device, config)
    info = {"export": exported.info, "openvino": ov.__version__, "ov_device": device}
    return OpenVinoServed(model.eval(), exported, compiled).eval(), info
