"""Compression methods applied in order in the compress phase, each in its own window.

A method takes a trained model and returns a new (or modified) model plus a record of what it
changed. Optional fine-tuning runs inside the method's window, so its energy is counted. Methods
are registered, with their settings classes, in :data:`energybench.suite.methods.COMPRESS_METHODS`;
this module holds the small ones (reparameterize, quantize's casts) and :func:`apply_method`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from energybench.compress.common import (
    CompressContext,
    describe_model,
    finetune,
    merge_branches,
)
from energybench.suite.methods import COMPRESS_METHODS


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
    from energybench.compress.quantize import quantize_int8

    return quantize_int8(step, model, ctx)


def reparameterize_recipe(step: Any, info: dict[str, Any], out: nn.Module) -> dict[str, Any]:
    """The checkpoint recipe step of a reparameterize (see :mod:`.checkpoint`)."""
    return {"op": "reparameterize"}


def reparameterize_check(step: Any, model: nn.Module, model_name: str) -> str | None:
    """Why reparameterize cannot work on ``model`` (None when it can)."""
    from energybench.models.vision.reparam import has_reparam_blocks

    if hasattr(model, "reparameterize") or has_reparam_blocks(model):
        return None
    return (
        f"model '{model_name}' has no multi-branch blocks to merge (reparameterize needs "
        "RepVGG/MobileOne-style blocks or CKBG); remove this step"
    )


def quantize_recipe(step: Any, info: dict[str, Any], out: nn.Module) -> dict[str, Any]:
    """The checkpoint recipe step of a quantize: a cast, or an int8 graph to rebuild."""
    if step.dtype in ("fp16", "bf16"):
        return {"op": "cast", "dtype": step.dtype}
    recipe: dict[str, Any] = {"op": "quantize_int8", "graph": info.get("graph", "fx")}
    if recipe["graph"] == "fx":
        recipe["example_shape"] = [int(s) for s in out.example_shape]  # type: ignore[union-attr]
    return recipe


def apply_method(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    """Apply one compress step; the record says what changed (params, size, sparsity).

    The output carries the input's checkpoint recipe plus this step's structural change (see
    :mod:`energybench.run.checkpoint`), so it can be saved as plain tensors and rebuilt.
    """
    from energybench.run.checkpoint import attach_recipe, compress_step, recipe_of

    before = describe_model(model)
    recipe = recipe_of(model)
    out, info = COMPRESS_METHODS.get(step.method)(step, model, ctx)
    attach_recipe(out, recipe.then(compress_step(step, info, out)) if recipe else None)
    after = describe_model(out)
    return out, {
        "method": step.method,
        "settings": step.model_dump(mode="json"),
        "before": before,
        "after": after,
        **info,
    }
