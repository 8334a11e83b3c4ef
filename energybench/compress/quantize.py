"""int8 post-training quantisation on the CPU with PyTorch's own tooling (``torch.ao``).

Only ``mode: static`` is supported. ``quantize_dynamic`` quantises Linear/LSTM/GRU weights
only (activations are quantised on the fly); it does not cover ``Conv2d``, which is all an SR
network is made of, so ``mode: dynamic`` is refused with a clear message.

Static quantisation first tries FX graph mode (``prepare_fx``/``convert_fx`` with the ``x86``
qconfig mapping, i.e. fbgemm/onednn kernels): it traces one ``step`` of the model (for temporal
models, with the recurrent state as inputs), fuses conv+ReLU, calibrates activation ranges on
``calibration_batches`` training batches of the task, and converts. Modules that contain no conv
(e.g. the bicubic skip) are not traced and stay float. The result is wrapped in
:class:`QuantizedSR`, which has the :class:`~energybench.models.sr.base.SRModel` interface and
takes and returns float32. If FX cannot trace the model, every ``Conv2d`` is quantised on its
own in eager mode instead (quantise → int8 conv → dequantise around each conv: slower, same
interface, ``info["graph"] == "eager-per-conv"``).

Quantised kernels exist only for the CPU here, so int8 on CUDA is refused. Nothing here
measures energy; calibration runs inside the compress window.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from typing import Any

import torch
from torch import fx, nn

from energybench.compress.common import CompressContext
from energybench.compress.prune import contains_conv, step_module
from energybench.models.sr.base import SRModel, online

BACKEND = "x86"


class QuantizedSR(SRModel):
    """An FX-quantised step (``graph(lr, *state_leaves)``) with the SRModel interface.

    The float model is kept (unregistered, so not in the state dict) for ``init_state`` and for
    FLOP counting. A checkpoint stores only the quantised state dict (weights, scales, zero
    points) and the example input shape; loading rebuilds the graph with :func:`rebuild_int8`
    (re-trace and convert a float model of the same architecture, no recalibration) and loads
    the state into it. The rebuilt float reference then has freshly initialised weights: only
    its structure is used.
    """

    _float_model: nn.Module  # in ``__dict__``, not a registered submodule

    def __init__(
        self, graph: nn.Module, float_model: nn.Module, example_shape: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.graph = graph
        self.scale = getattr(float_model, "scale", 4)
        self.temporal = bool(getattr(float_model, "temporal", False))
        self.example_shape = tuple(example_shape)
        self.__dict__["_float_model"] = float_model

    def init_state(self, lr: torch.Tensor) -> Any:
        return online(self._float_model).init_state(lr) if self.temporal else None

    def step(self, lr: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if not self.temporal:
            return self.graph(lr), state
        from torch.utils._pytree import tree_flatten, tree_unflatten

        leaves, spec = tree_flatten(state)
        out, new_state = self.graph(lr, *leaves)
        new_leaves, _ = tree_flatten(new_state)
        return out, tree_unflatten(new_leaves, spec)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.step(lr, self.init_state(lr))[0]


class _QuantConv(nn.Module):
    """Eager fallback: quantise the input, run an int8 conv, dequantise the output."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = conv
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.conv(self.quant(x)))


def calibration_inputs(model: nn.Module, ctx: CompressContext, batches: int) -> list[torch.Tensor]:
    """LR inputs from the task's training batches: (B,3,h,w), or (B,T,3,h,w) for temporal."""
    it = ctx.task.train_batches(model, ctx.batch_size, ctx.seed + 7)
    return [batch[0].float().cpu() for batch in itertools.islice(it, batches)]


def _run_calibration(fn_step: Any, model: nn.Module, inputs: list[torch.Tensor]) -> None:
    """Feed every calibration input through ``fn_step(lr, state) -> (sr, state)`` online."""
    with torch.inference_mode():
        for x in inputs:
            frames = x.unbind(1) if x.dim() == 5 else [x]
            state = online(model).init_state(frames[0]) if hasattr(model, "init_state") else None
            for f in frames:
                _, state = fn_step(f, state)


def _non_traceable_classes(model: nn.Module) -> list[type]:
    return sorted(
        {
            type(m)
            for m in model.modules()
            if m is not model
            and not contains_conv(m)
            and not type(m).__module__.startswith("torch.")
        },
        key=lambda t: t.__qualname__,
    )


def _prepare(
    model: nn.Module, sample: torch.Tensor, backend: str = BACKEND
) -> tuple[fx.GraphModule, bool]:
    """FX-prepare (observers inserted, ``backend``'s qconfig) one step of a float copy of
    ``model``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import prepare_fx

    wrapper, example = step_module(copy.deepcopy(model).cpu().float().eval(), sample)
    custom = PrepareCustomConfig().set_non_traceable_module_classes(
        _non_traceable_classes(wrapper.model)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao prints deprecation notices on some builds
        prepared = prepare_fx(
            wrapper,
            get_default_qconfig_mapping(backend),
            example_inputs=example,
            prepare_custom_config=custom,
        )
    return prepared, wrapper.state_spec is not None


def _use_backend() -> None:
    if torch.backends.quantized.engine != BACKEND and BACKEND in (
        torch.backends.quantized.supported_engines
    ):
        torch.backends.quantized.engine = BACKEND


def rebuild_int8(
    float_model: nn.Module, graph: str, example_shape: tuple[int, ...] | None
) -> nn.Module:
    """The int8 structure :func:`quantize_int8` makes of ``float_model``, uncalibrated: its
    quantised state (weights, scales, zero points) is to be loaded from a checkpoint.

    ``graph`` is ``info["graph"]`` of the original run: ``fx`` (needs the example input shape
    it was traced with) or ``eager-per-conv``.
    """
    from torch.ao.quantization.quantize_fx import convert_fx

    _use_backend()
    float_model = copy.deepcopy(float_model).cpu().float().eval()
    if graph == "eager-per-conv":
        return quantize_eager_convs(float_model, [])
    if graph != "fx" or not example_shape:
        raise ValueError(f"cannot rebuild an int8 graph of kind '{graph}'")
    prepared, _ = _prepare(float_model, torch.rand(example_shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_fx(prepared)
    return QuantizedSR(converted, float_model, tuple(example_shape)).eval()


def quantize_fx(
    model: nn.Module, inputs: list[torch.Tensor], backend: str = BACKEND
) -> QuantizedSR:
    """FX graph-mode static int8 quantisation of one step of ``model`` (see module doc) with
    ``backend``'s qconfig (``x86``; ``onednn`` for the int8 serving backend); the weights are
    packed for the quantized engine active at conversion."""
    from torch.ao.quantization.quantize_fx import convert_fx

    sample = (inputs[0][:, 0] if inputs[0].dim() == 5 else inputs[0])[:1]
    prepared, temporal = _prepare(model, sample, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def fn_step(lr: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
            if not temporal:
                return prepared(lr), None
            from torch.utils._pytree import tree_flatten

            return prepared(lr, *tree_flatten(state)[0])

        _run_calibration(fn_step, model, inputs)
        converted = convert_fx(prepared)
    return QuantizedSR(converted, copy.deepcopy(model).cpu().float().eval(), tuple(sample.shape))


def quantize_eager_convs(model: nn.Module, inputs: list[torch.Tensor]) -> nn.Module:
    """Eager fallback: each ``Conv2d`` quantised on its own (quant/dequant around it)."""
    from torch.ao.quantization import convert, get_default_qconfig, prepare

    q = copy.deepcopy(model).cpu().float().eval()

    def wrap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if type(child) is nn.Conv2d:
                w = _QuantConv(child)
                w.qconfig = get_default_qconfig(BACKEND)
                setattr(parent, name, w)
            else:
                wrap(child)

    wrap(q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare(q, inplace=True)
        step = getattr(q, "step", None) or (lambda lr, s: (q(lr), s))
        _run_calibration(step, q, inputs)
        convert(q, inplace=True)
    return q.eval()


def quantize_int8(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    """The int8 branch of the ``quantize`` compress method (see module docstring)."""
    if ctx.device.type != "cpu":
        raise ValueError(
            f"int8 quantisation runs on PyTorch's CPU kernels only (x86/fbgemm), but this entry "
            f"serves on {ctx.device}; set 'device: cpu' for it, or use dtype: fp16/bf16 on GPUs"
        )
    if step.mode == "dynamic":
        raise ValueError(
            "quantize mode 'dynamic' (torch.ao.quantization.quantize_dynamic) covers only "
            "Linear/LSTM/GRU layers, not Conv2d, so it would leave an SR model unchanged; "
            "use mode: static (calibrated int8 convolutions)"
        )
    if step.mode != "static":
        raise ValueError(f"int8 needs mode: static (got mode: {step.mode})")
    _use_backend()
    inputs = calibration_inputs(model, ctx, step.calibration_batches)
    info: dict[str, Any] = {
        "dtype": "int8",
        "mode": "static",
        "backend": BACKEND,
        "calibration_batches": len(inputs),
    }
    try:
        out: nn.Module = quantize_fx(model, inputs)
        info["graph"] = "fx"
    except Exception as exc:  # noqa: BLE001 - FX failure: fall back, and say why
        out = quantize_eager_convs(model, inputs)
        info["graph"] = "eager-per-conv"
        info["fx_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out.eval(), info
