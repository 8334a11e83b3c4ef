"""Export one serving step of a model to ONNX (``torch.onnx``, TorchScript-based exporter).

A per-frame model exports ``forward(x) -> y``. A recurrent online model (``temporal = True``
with ``init_state``/``step``) exports ``step`` with its hidden state made explicit: inputs
``lr, state_in_0..k``, outputs ``out, state_out_0..k`` (the state's tensor leaves in
``torch.utils._pytree`` order), so a runtime carries the state across frames by feeding each
call's ``state_out_*`` back as the next call's ``state_in_*``.

The batch axis is dynamic (``dynamic_batch``); SR models also get dynamic height and width, so
the same graph serves at the serving resolution and evaluates clips of other sizes. Nothing here
measures energy: the caller meters the export as a one-off (compression-like) cost.
"""

from __future__ import annotations

import hashlib
import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from energybench.models.sr.base import online


class ExportError(RuntimeError):
    """The model cannot be exported to ONNX (the message says why)."""


def is_recurrent(model: nn.Module) -> bool:
    """True for online models that carry a state across frames (``step`` + ``init_state``)."""
    return bool(getattr(model, "temporal", False)) and callable(getattr(model, "step", None))


def serve_once(model: nn.Module, x: torch.Tensor) -> None:
    """One serving call on ``x`` (an online model: one step from a fresh state), e.g. to
    compile a backend for this input before its figures are measured."""
    if is_recurrent(model):
        online(model).step(x, online(model).init_state(x))
    else:
        model(x)


class FlatStep(nn.Module):
    """``model`` with flat tensors in and out: ``forward(lr, *state) -> (out, *new_state)``."""

    def __init__(self, model: nn.Module, spec: TreeSpec | None, n_state: int) -> None:
        super().__init__()
        self.model, self.spec, self.n_state = model, spec, n_state

    def forward(self, lr: torch.Tensor, *state: torch.Tensor) -> Any:
        if self.spec is None:
            return self.model(lr)
        out, new = online(self.model).step(lr, tree_unflatten(list(state), self.spec))
        leaves, _ = tree_flatten(new)
        if len(leaves) != self.n_state:
            raise ExportError(f"step returned {len(leaves)} state tensors, expected {self.n_state}")
        return (out, *leaves)


@dataclass
class ExportedStep:
    """An ONNX graph of one step and how to feed it."""

    onnx: bytes
    input_names: list[str]
    output_names: list[str]
    state_spec: TreeSpec | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_state(self) -> int:
        return len(self.input_names) - 1


def state_leaves(model: nn.Module, lr: torch.Tensor) -> tuple[list[torch.Tensor], TreeSpec | None]:
    """The initial state's tensor leaves and tree spec (``[], None`` for per-frame models)."""
    if not is_recurrent(model):
        return [], None
    leaves, spec = tree_flatten(online(model).init_state(lr))
    bad = [type(x).__name__ for x in leaves if not isinstance(x, torch.Tensor)]
    if bad:
        raise ExportError(f"the recurrent state holds non-tensor values ({', '.join(bad)})")
    return leaves, spec


def export_step(
    model: nn.Module, sample: torch.Tensor, opset: int = 17, dynamic_batch: bool = True
) -> ExportedStep:
    """ONNX bytes of one step of ``model`` (eval mode, float32) traced on ``sample`` (B,C,H,W)."""
    model = model.eval()
    leaves, spec = state_leaves(model, sample)
    n = len(leaves)
    ins = ["lr"] + [f"state_in_{i}" for i in range(n)]
    outs = ["out"] + [f"state_out_{i}" for i in range(n)]
    spatial = hasattr(model, "scale") and sample.dim() == 4  # SR: any frame size

    def axes(t: torch.Tensor, prefix: str) -> dict[int, str]:
        a: dict[int, str] = {0: "batch"} if dynamic_batch else {}
        if spatial and t.dim() == 4:
            a.update({2: f"{prefix}h", 3: f"{prefix}w"})
        return a

    with torch.no_grad():
        results = FlatStep(model, spec, n)(sample, *leaves)
    results = results if isinstance(results, tuple) else (results,)
    dyn = {name: axes(t, "in_") for name, t in zip(ins, [sample, *leaves], strict=True)}
    for name, t in zip(outs, results, strict=True):
        same = t.shape[-2:] == sample.shape[-2:]  # state at the input's size; out upscaled
        dyn[name] = axes(t, "in_" if same else "out_")
    buf = io.BytesIO()
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about python-level shape checks
            torch.onnx.export(
                FlatStep(model, spec, n),
                (sample, *leaves),
                cast(Any, buf),  # a file object works; torch annotates a path only
                input_names=ins,
                output_names=outs,
                dynamic_axes=dyn,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter failure is reported as one error
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}"[:500]) from exc
    data = buf.getvalue()
    info = {
        "exporter": "torch.onnx (TorchScript)",
        "opset": opset,
        "export_s": time.perf_counter() - t0,
        "onnx_bytes": len(data),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "inputs": ins,
        "outputs": outs,
        "recurrent": spec is not None,
        "dynamic_axes": {k: sorted(set(v.values())) for k, v in dyn.items()},
    }
    return ExportedStep(data, ins, outs, spec, info)
