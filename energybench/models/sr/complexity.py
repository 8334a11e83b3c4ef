"""Model size and compute: parameter counts and FLOPs per frame.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products,
2 FLOPs per multiply-add; element-wise ops such as ReLU, additions and pixel shuffles are not
counted). For temporal (online) models one steady-state ``step`` is counted: a first step is
run uncounted so the hidden state is realistic, then the second step is measured.

Nothing here trains, times or measures energy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from energybench.models.sr.base import online


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as fixed bicubic kernels are not counted).

    The packed weights of quantised (``torch.ao``) layers count too, unless ``trainable_only``.
    """
    total = sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
    if trainable_only:
        return total
    for m in model.modules():
        weight = getattr(m, "weight", None)
        if callable(weight) and not isinstance(weight, nn.Module):  # quantised conv/linear
            total += weight().numel()
            bias = getattr(m, "bias", None)
            b = bias() if callable(bias) else None
            total += b.numel() if isinstance(b, torch.Tensor) else 0
    return total


def _lr_input(model: nn.Module, lr_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(s) for s in lr_shape)
    if len(shape) == 2:
        shape = (1, 3, *shape)
    elif len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise ValueError(f"lr_shape must be (h, w), (3, h, w) or (B, 3, h, w), got {lr_shape}")
    ref: torch.Tensor | None = next(iter(model.parameters()), None)
    if ref is None:
        ref = next(iter(model.buffers()), torch.empty(0))
    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(ref.device, dtype)


@torch.no_grad()
def count_flops(model: nn.Module, lr_shape: Sequence[int]) -> int:
    """FLOPs to super-resolve one LR frame of ``lr_shape`` ((h, w), (3, h, w) or (B, 3, h, w)).

    With a batch dimension B the total for the batch is returned. The model is run in eval
    mode (restored afterwards). A quantised model is counted through its float reference
    (``_float_model``): an int8 multiply-add is still an operation, which the flop counter
    does not see in quantised kernels.
    """
    model = getattr(model, "_float_model", model)
    x = _lr_input(model, lr_shape)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        if getattr(model, "temporal", False):
            recurrent = online(model)
            state = recurrent.init_state(x)
            _, state = recurrent.step(x, state)
            with counter:
                recurrent.step(x, state)
        else:
            with counter:
                model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def complexity(model: nn.Module, lr_shape: Sequence[int]) -> dict[str, int]:
    """``{"params": ..., "flops_per_frame": ...}`` for reports."""
    return {"params": count_params(model), "flops_per_frame": count_flops(model, lr_shape)}
