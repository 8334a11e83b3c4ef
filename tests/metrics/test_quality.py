"""PSNR/SSIM conventions (BasicSR) checked against scikit-image on the same preprocessed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from energybench.data.base import Clip
from energybench.metrics.quality import evaluate_clips, psnr, run_model_on_clip, ssim


def _pair(seed: int, h: int, w: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(3, h, w, generator=g, dtype=torch.float64)
    sr = (hr + noise * torch.randn(3, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return sr, hr


def _reference_arrays(sr: torch.Tensor, hr: torch.Tensor, crop: int, y: bool):
    """The BasicSR preprocessing done independently in numpy: uint8, Y (BT.601) or RGB, crop."""
    out = []
    for t in (sr, hr):
        a = np.round(np.clip(t.numpy(), 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
        a = a.astype(np.float64)
        if y:
            a = 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0
        if crop:
            a = a[crop:-crop, crop:-crop]
        out.append(a)
    return out


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    h=st.integers(16, 40),
    w=st.integers(16, 40),
    noise=st.floats(0.005, 0.3),
    crop=st.integers(0, 2),
    y=st.booleans(),
)
def test_psnr_ssim_match_skimage(
    seed: int, h: int, w: int, noise: float, crop: int, y: bool
) -> None:
    sr, hr = _pair(seed, h, w, noise)
    a, b = _reference_arrays(sr, hr, crop, y)
    ref_psnr = peak_signal_noise_ratio(b, a, data_range=255)
    ref_ssim = structural_similarity(
        b,
        a,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=None if y else -1,
    )
    assert float(psnr(sr, hr, crop, y)) == pytest.approx(ref_psnr, abs=1e-9)
    assert float(ssim(sr, hr, crop, y)) == pytest.approx(ref_ssim, abs=1e-9)


def test_uint8_rounding_identical_and_batched() -> None:
    hr = torch.randint(0, 256, (2, 4, 3, 24, 24)) / 255.0
    sr = hr + 0.4 / 255  # rounds back to the same 8-bit levels
    assert torch.isinf(psnr(sr, hr)).all()
    assert torch.allclose(ssim(sr, hr), torch.ones(2, 4, dtype=torch.float64))
    out = psnr(hr.flip(-1), hr)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    with pytest.raises(ValueError):
        psnr(hr, hr[..., :20])


def test_evaluate_clips_suite_mean_is_mean_of_clip_means() -> None:
    g = torch.Generator().manual_seed(0)
    clips, outs = [], []
    for name, t, noise in (("a", 1, 0.05), ("b", 3, 0.1)):
        hr = torch.rand(t, 3, 32, 32, generator=g)
        clips.append(Clip(name, torch.zeros(t, 3, 8, 8), hr))
        outs.append((hr + noise * torch.randn(t, 3, 32, 32, generator=g)).clamp(0, 1))
    res = evaluate_clips(outs, clips, crop_border=0, y_channel=True)
    per_frame_b = psnr(outs[1], clips[1].hr)
    assert res["clips"]["b"]["psnr"] == pytest.approx(float(per_frame_b.mean()))
    assert res["psnr"] == pytest.approx((res["clips"]["a"]["psnr"] + res["clips"]["b"]["psnr"]) / 2)
    assert res["frames"] == 4 and 0 < res["ssim"] < 1
    assert not math.isnan(res["clips"]["a"]["ssim"])


class _PerFrame(torch.nn.Module):
    """A frame model (B,3,h,w) -> 3x - 1: outputs outside [0, 1] to clamp."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain - 1.0


class _WholeClip(torch.nn.Module):
    """A clip model: ``forward_clip`` (B,T,3,h,w) -> 0.25 x the frame index, on the CPU; it
    notes the device its input came on. No parameters unless ``on`` names their device."""

    def __init__(self, on: str | None = None) -> None:
        super().__init__()
        self.seen: list[str] = []
        if on is not None:
            self.p = torch.nn.Parameter(torch.zeros(1, device=on))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a model with forward_clip is not run frame by frame")

    def forward_clip(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.device.type)
        t = torch.arange(x.shape[1], dtype=torch.float32).view(1, -1, 1, 1, 1)
        return 0.25 * t + torch.zeros(x.shape)


def test_a_clip_is_run_frame_by_frame_or_whole_and_clamped_to_0_1() -> None:
    lr = torch.linspace(0.0, 1.0, 3 * 3 * 2 * 2, dtype=torch.float64).reshape(3, 3, 2, 2)
    out = run_model_on_clip(_PerFrame(), lr)  # on the model's device (its parameters')
    assert out.shape == (3, 3, 2, 2) and out.dtype == torch.float32 and out.device.type == "cpu"
    expected = (lr * 3.0 - 1.0).clamp(0.0, 1.0).float()
    assert torch.equal(out, expected) and out.min() == 0.0 and out.max() == 1.0
    whole = run_model_on_clip(_WholeClip(), lr)  # no parameters: the CPU
    assert [float(f.max()) for f in whole] == [0.0, 0.25, 0.5]
    assert torch.equal(run_model_on_clip(_WholeClip(), lr, "cpu"), whole)
    # the clip goes to the device asked for, else to the model's parameters' device ("meta":
    # a device every torch build has, where no figure is computed)
    asked, placed = _WholeClip(), _WholeClip(on="meta")
    run_model_on_clip(asked, lr, "meta")
    run_model_on_clip(placed, lr)
    assert asked.seen == placed.seen == ["meta"]
