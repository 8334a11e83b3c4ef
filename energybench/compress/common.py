"""What every compression method (and the checkpoint's replay of their structure) shares: the
context a method runs in, fine-tuning inside its window, the model's size figures, and
merging multi-branch models into one path.

A leaf of the compression modules: it imports none of them, so methods can import it without an
import cycle through :mod:`energybench.compress.methods`, which dispatches to them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from energybench.suite.schema import FinetuneSettings
from energybench.tasks.base import Task
from energybench.train.loop import Progress, train_steps


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
        reparameterize = cast(Callable[[], nn.Module], model.reparameterize)
        return reparameterize(), None
    from energybench.models.vision.reparam import has_reparam_blocks, reparameterize_blocks

    if not has_reparam_blocks(model):
        raise ValueError(
            f"model {type(model).__name__} has no branches to merge "
            "(neither it nor its blocks implement reparameterize())"
        )
    return reparameterize_blocks(model), "timm.utils.reparameterize_model"
