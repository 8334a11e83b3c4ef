"""int8 static quantisation: smaller, close in quality, same serving interface."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from energybench.compress.common import CompressContext, describe_model
from energybench.compress.methods import apply_method
from energybench.models import MODELS
from energybench.models.sr.base import SRModel
from energybench.suite.schema import EvaluateSettings, Quantize
from energybench.train.loop import train_steps

INT8 = Quantize(method="quantize", dtype="int8", mode="static", calibration_batches=2)


def test_int8_espcn_smaller_and_close(ctx) -> None:
    torch.manual_seed(0)
    m = MODELS.create("espcn", channels=16)
    train_steps(m, ctx.task, steps=10, batch_size=2, lr=1e-3, device=ctx.device)
    q, rec = apply_method(INT8, m, ctx)
    assert rec["graph"] == "fx"
    assert rec["after"]["size_bytes"] < 0.5 * rec["before"]["size_bytes"]
    ev = EvaluateSettings()
    p32 = ctx.task.evaluate(m, ev, ctx.device)["psnr_db"]
    p8 = ctx.task.evaluate(q, ev, ctx.device)["psnr_db"]
    assert abs(p32 - p8) < 1.0
    out = ctx.task.serving_step(q, 2, ctx.device, None)()
    assert out.dtype == torch.float32 and out.shape == (2, 3, 64, 64)


def test_int8_recurrent(ctx, toy_recurrent) -> None:
    q, info = apply_method(INT8, toy_recurrent, ctx)
    clip = torch.rand(1, 3, 3, 8, 8)
    with torch.inference_mode():
        ref, out = toy_recurrent.forward_clip(clip), q.forward_clip(clip)
    assert out.shape == ref.shape and (out - ref).abs().mean() < 0.05
    assert describe_model(q)["size_bytes"] < describe_model(toy_recurrent)["size_bytes"]


class _Untraceable(SRModel):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 48, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.mean() > 2:  # data-dependent control flow: FX cannot trace this
            lr = lr * 0
        return nn.functional.pixel_shuffle(self.conv(lr), 4)


def test_int8_eager_fallback(ctx) -> None:
    m = _Untraceable().eval()
    q, info = apply_method(INT8, m, ctx)
    assert info["graph"] == "eager-per-conv" and "fx_error" in info
    x = torch.rand(1, 3, 8, 8)
    assert (q(x) - m(x)).abs().max() < 0.05


def test_int8_refusals(ctx, tiny_task) -> None:
    m = MODELS.create("espcn", channels=8)
    with pytest.raises(ValueError, match="Conv2d"):
        apply_method(Quantize(method="quantize", mode="dynamic"), m, ctx)
    gpu = CompressContext(tiny_task, torch.device("cuda"), 0, 2)
    with pytest.raises(ValueError, match="CPU"):
        apply_method(INT8, m, gpu)
