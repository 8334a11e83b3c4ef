"""Distillation: a smaller student trained on ground truth and teacher outputs."""

from __future__ import annotations

import statistics

import torch

from energybench.compress.methods import apply_method
from energybench.models import MODELS
from energybench.suite.schema import Distill


def test_distill_student_smaller_and_learns(ctx) -> None:
    torch.manual_seed(0)
    teacher = MODELS.create("espcn", channels=16, layers=3)
    step = Distill(
        method="distill",
        student={"name": "espcn", "params": {"channels": 4, "layers": 2, "residual": False}},
        steps=30,
        lr=3e-3,
        batch_size=2,
        alpha=0.5,
    )
    student, rec = apply_method(step, teacher, ctx)
    assert rec["student_params"] < rec["teacher_params"]
    assert rec["after"]["params"] < rec["before"]["params"]
    curve = [loss for _, loss in rec["distill"]["loss_curve"]]
    assert statistics.mean(curve[-5:]) < statistics.mean(curve[:5])
    assert rec["teacher_inference_counted"] is True
    assert student(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
