"""Compression methods applied in order in the compress phase, each in its own window.

A method takes a trained model and returns a new (or modified) model plus a record of what it
changed. Optional fine-tuning runs inside the method's window, so its energy is counted.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from energybench.lifecycle.tasks import Task
from energybench.lifecycle.train import Progress, train_steps
from energybench.suite.schema import FinetuneSettings


@dataclass
class CompressContext:
    task: Task
    device: torch.device
    seed: int
    batch_size: int
    progress: Progress | None = None


def model_size_bytes(model: nn.Module) -> int:
    """Size of the serialised state_dict (what a deployment would ship)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def param_count(model: nn.Module) -> int:
    """Parameters, including the packed weights of quantised modules."""
    from energybench.models.sr.complexity import count_params

    return count_params(model)


def sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights among floating parameters."""
    total = zeros = 0
    for p in model.parameters():
        if p.is_floating_point():
            total += p.numel()
            zeros += int((p == 0).sum())
    return zeros / total if total else 0.0


def describe_model(model: nn.Module) -> dict[str, Any]:
    return {
        "params": param_count(model),
        "size_bytes": model_size_bytes(model),
        "sparsity": sparsity(model),
    }


def finetune(
    model: nn.Module,
    ft: FinetuneSettings | None,
    ctx: CompressContext,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
) -> dict[str, Any]:
    if ft is None or ft.steps == 0:
        return {}
    res = train_steps(
        model,
        ctx.task,
        steps=ft.steps,
        batch_size=ft.batch_size or ctx.batch_size,
        lr=ft.lr,
        device=ctx.device,
        seed=ctx.seed + 1,
        progress=ctx.progress,
        loss_fn=loss_fn,
    )
    return {"finetune": res.to_dict()}


def merge_branches(model: nn.Module) -> tuple[nn.Module, str | None]:
    """The single-path version of a multi-branch ``model`` and how it was merged.

    Models with a ``reparameterize()`` method (CKBG) merge themselves (via None); models whose
    blocks do (timm RepVGG, MobileOne, FastViT, RepGhost, ...) go through timm's
    ``reparameterize_model``. Checkpoint recipes replay this same function.
    """
    if hasattr(model, "reparameterize"):
        return model.reparameterize(), None
    from energybench.models.vision.reparam import has_reparam_blocks, reparameterize_blocks

    if not has_reparam_blocks(model):
        raise ValueError(
            f"model {type(model).__name__} has no branches to merge "
            "(neither it nor its blocks implement reparameterize())"
        )
    return reparameterize_blocks(model), "timm.utils.reparameterize_model"


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
