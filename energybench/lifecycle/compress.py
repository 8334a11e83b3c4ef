"""Compression methods applied in order in the compress phase, each in its own window.

A method takes a trained model and returns a new (or modified) model plus a record of what it
changed. Optional fine-tuning runs inside the method's window, so its energy is counted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from energybench.lifecycle.compress_common import (
    CompressContext,
    describe_model,
    finetune,
    merge_branches,
)


def reparameterize(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    """Merge every multi-branch block into one conv per layer (structural re-parameterisation)."""
    merged, via = merge_branches(model)
    merged.to(ctx.device).eval()
    return merged, {**({"via": via} if via else {}), **finetune(merged, step.finetune, ctx)}


def quantize(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    """Reduced precision: fp16/bf16 casts; int8 via PyTorch's quantisation tooling."""
    if step.dtype in ("fp16", "bf16"):
        dtype = torch.float16 if step.dtype == "fp16" else torch.bfloat16
        out = copy.deepcopy(model).to(ctx.device, dtype=dtype).eval()
        info: dict[str, Any] = {"dtype": step.dtype, "mode": "cast"}
        if ctx.device.type == "cpu":
            info["note"] = (
                f"{step.dtype} on the CPU runs, but most CPUs have no fast {step.dtype} conv "
                "kernels: expect it slower than fp32 (measured in the serve phase)"
            )
        return out, info
    from energybench.lifecycle.quantize import quantize_int8

    return quantize_int8(step, model, ctx)


def prune(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    from energybench.lifecycle.prune import prune_model

    return prune_model(step, model, ctx)


def distill(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    from energybench.lifecycle.distill import distill_model

    return distill_model(step, model, ctx)


METHODS: dict[str, Callable[[Any, nn.Module, CompressContext], tuple[nn.Module, dict]]] = {
    "reparameterize": reparameterize,
    "quantize": quantize,
    "prune": prune,
    "distill": distill,
}


def apply_method(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    """Apply one compress step; the record says what changed (params, size, sparsity).

    The output carries the input's checkpoint recipe plus this step's structural change (see
    :mod:`energybench.lifecycle.checkpoint`), so it can be saved as plain tensors and rebuilt.
    """
    from energybench.lifecycle.checkpoint import attach_recipe, compress_step, recipe_of

    before = describe_model(model)
    recipe = recipe_of(model)
    out, info = METHODS[step.method](step, model, ctx)
    attach_recipe(out, recipe.then(compress_step(step, info, out)) if recipe else None)
    after = describe_model(out)
    return out, {
        "method": step.method,
        "settings": step.model_dump(mode="json"),
        "before": before,
        "after": after,
        **info,
    }
