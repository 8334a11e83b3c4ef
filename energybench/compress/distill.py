"""Knowledge distillation: train a smaller student to match the ground truth and the teacher.

Loss per batch: ``(1 - alpha) * L1(student(LR), HR) + alpha * L1(student(LR), teacher(LR))``,
the teacher in eval mode under ``torch.inference_mode``. A task may bring its own loss
(``task.distill_loss_fn(teacher, alpha, device)``: classification matches soft logits).
Temporal models (batches of clips ``(B,T,3,h,w)``) are run online with ``forward_clip``,
teacher and student alike; a per-frame teacher of a temporal student is applied frame by
frame. The teacher's inference runs inside the compress window, so its energy is part of the
distillation's cost. Nothing here measures energy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from energybench.compress.common import CompressContext, param_count
from energybench.models.sr.base import online
from energybench.train.loop import train_steps


def run_model(model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """``model`` on an image batch (B,3,h,w) or, online and in order, a clip batch (B,T,3,h,w)."""
    if lr.dim() == 4:
        return model(lr)
    if hasattr(model, "forward_clip"):
        return online(model).forward_clip(lr)
    return torch.stack([model(lr[:, t]) for t in range(lr.shape[1])], dim=1)


def distill_loss(teacher: nn.Module, alpha: float, device: torch.device) -> Any:
    """``loss_fn(student, batch)`` for :func:`~energybench.train.loop.train_steps`."""

    def loss_fn(student: nn.Module, batch: Any) -> torch.Tensor:
        lr, hr = (t.to(device, non_blocking=True) for t in batch)
        sr = run_model(student, lr)
        loss = (1 - alpha) * F.l1_loss(sr, hr) if alpha < 1 else sr.new_zeros(())
        if alpha > 0:
            with torch.inference_mode():
                target = run_model(teacher, lr)
            loss = loss + alpha * F.l1_loss(sr, target.clone())
        return loss

    return loss_fn


def distill_model(step: Any, model: nn.Module, ctx: CompressContext) -> tuple[nn.Module, dict]:
    """The ``distill`` compress method: returns the trained student (``model`` is the teacher)."""
    from energybench.models import MODELS
    from energybench.tasks.base import model_kwargs

    torch.manual_seed(ctx.seed)
    spec = {
        "name": step.student.name,
        "params": model_kwargs(step.student.name, dict(step.student.params), ctx.task),
    }
    student = MODELS.get(spec["name"])(**spec["params"]).to(ctx.device)
    teacher = model.to(ctx.device).eval()
    task_loss = getattr(ctx.task, "distill_loss_fn", None)  # a task's own (e.g. soft logits)
    loss_fn = (task_loss or distill_loss)(teacher, step.alpha, ctx.device)
    res = train_steps(
        student,
        ctx.task,
        steps=step.steps,
        batch_size=step.batch_size,
        lr=step.lr,
        device=ctx.device,
        seed=ctx.seed + 3,
        log_every=max(1, step.steps // 20),
        progress=ctx.progress,
        loss_fn=loss_fn,
    )
    return student.eval(), {
        "student": spec,  # as built (with the task's context): checkpoint recipes rebuild it
        "teacher_params": param_count(teacher),
        "student_params": param_count(student),
        "alpha": step.alpha,
        "distill": res.to_dict(),
        "teacher_inference_counted": True,
        "note": "the teacher's forward passes run inside this window; their energy is counted",
    }


def distill_recipe(step: Any, info: dict[str, Any], out: nn.Module) -> dict[str, Any]:
    """The checkpoint recipe step of a distill: the student replaces the model."""
    return {"op": "distill", "student": dict(info["student"])}
