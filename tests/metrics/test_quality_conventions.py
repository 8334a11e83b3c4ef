"""The quality figures' conventions at their edges: 8-bit clamping, the SSIM window size limit,
per-image SSIM of a batch, the defaults (Y channel, no crop) and what ``evaluate_clips``
records. Fast, hand-made cases (the scikit-image comparison is ``test_quality.py``)."""

from __future__ import annotations

import math

import pytest
import torch

from energybench.data.base import Clip
from energybench.metrics.accuracy import topk_accuracy
from energybench.metrics.quality import (
    evaluate_clips,
    evaluate_model,
    psnr,
    ssim,
    to_uint8_scale,
)


def _noisy(seed: int, shape: tuple[int, ...], noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(*shape, generator=g, dtype=torch.float64)
    return (hr + noise * torch.randn(*shape, generator=g, dtype=torch.float64)).clamp(0, 1), hr


def test_values_outside_0_1_are_clamped_to_the_8_bit_range() -> None:
    x = torch.tensor([-0.5, 0.2, 1.0, 1.5, 2.5])
    assert to_uint8_scale(x).tolist() == [0.0, 51.0, 255.0, 255.0, 255.0]
    assert to_uint8_scale(x).dtype == torch.float64


def test_ssim_needs_an_11x11_image_and_checks_rgb_shape() -> None:
    sr, hr = _noisy(0, (3, 11, 11), 0.1)
    assert 0 < float(ssim(sr, hr)) < 1
    for h, w in ((10, 11), (11, 10), (10, 10)):
        with pytest.raises(ValueError, match="at least 11x11"):
            ssim(sr[..., :h, :w], hr[..., :h, :w])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(sr, hr, crop_border=1)  # 9x9 after cropping
    four = torch.zeros(4, 16, 16)
    with pytest.raises(ValueError, match="RGB"):
        psnr(four, four)
    with pytest.raises(ValueError, match="differs from HR shape"):
        psnr(sr, hr[..., :10])


def test_ssim_of_a_batch_is_one_figure_per_image() -> None:
    a, ha = _noisy(1, (3, 16, 16), 0.02)
    b, hb = _noisy(2, (3, 16, 16), 0.3)
    out = ssim(torch.stack([a, b]), torch.stack([ha, hb]))
    assert out.shape == (2,)
    assert float(out[0]) == pytest.approx(float(ssim(a, ha)))
    assert float(out[1]) == pytest.approx(float(ssim(b, hb)))
    assert float(out[0]) > float(out[1])


def test_defaults_are_the_y_channel_without_a_crop() -> None:
    sr, hr = _noisy(3, (3, 20, 20), 0.15)
    sr[..., 0, :] = 1.0 - hr[..., 0, :]  # a border row that a crop would remove
    for f in (psnr, ssim):
        y = float(f(sr, hr, 0, True))
        assert float(f(sr, hr)) == pytest.approx(y)
        assert float(f(sr, hr, 0, False)) != pytest.approx(y)
        assert float(f(sr, hr, 1, True)) != pytest.approx(y)


def _clips() -> tuple[list[torch.Tensor], list[Clip]]:
    outs, clips = [], []
    for i, name in enumerate(("a", "b")):
        sr, hr = _noisy(10 + i, (2, 3, 16, 16), 0.1)
        sr[..., 0, :] = 1.0 - hr[..., 0, :]
        outs.append(sr)
        clips.append(Clip(name, torch.zeros(2, 3, 4, 4), hr))
    return outs, clips


def test_evaluate_clips_follows_its_convention_and_records_it() -> None:
    outs, clips = _clips()
    rgb = evaluate_clips(outs, clips, crop_border=1, y_channel=False)
    assert rgb["convention"] == {"crop_border": 1, "y_channel": False, "uint8": True}
    for out, clip in zip(outs, clips, strict=True):
        c = rgb["clips"][clip.name]
        frames = psnr(out, clip.hr, 1, False)
        assert c["psnr_frames"] == pytest.approx(frames.tolist())
        assert c["frames"] == 2 and c["psnr"] == pytest.approx(float(frames.mean()))
        assert c["ssim"] == pytest.approx(float(ssim(out, clip.hr, 1, False).mean()))
    default = evaluate_clips(outs, clips)
    assert default["convention"] == {"crop_border": 0, "y_channel": True, "uint8": True}
    explicit = evaluate_clips(outs, clips, crop_border=0, y_channel=True)
    assert (default["psnr"], default["ssim"]) == (explicit["psnr"], explicit["ssim"])
    assert default["psnr"] != pytest.approx(rgb["psnr"])
    no_ssim = evaluate_clips(outs, clips, with_ssim=False)
    assert "ssim" not in no_ssim and "ssim" not in no_ssim["clips"]["a"]


def test_evaluate_clips_of_no_clips_has_no_score() -> None:
    res = evaluate_clips([], [])
    assert math.isnan(res["psnr"]) and math.isnan(res["ssim"]) and res["frames"] == 0
    outs, clips = _clips()
    with pytest.raises(ValueError, match="1 outputs for 2 clips"):
        evaluate_clips(outs[:1], clips)


def test_top_k_accuracy_defaults_to_top_1() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    labels = torch.tensor([1, 2])  # both second-best: top-2 correct, top-1 wrong
    assert topk_accuracy(logits, labels) == 0.0
    assert topk_accuracy(logits, labels, 2) == 1.0


class _Upscale(torch.nn.Module):
    """Nearest-neighbour x4 per frame (a model with no ``forward_clip``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")


def test_evaluate_model_scores_with_the_same_defaults_and_restores_the_mode() -> None:
    _, clips = _clips()
    clips = [Clip(c.name, c.hr[..., ::4, ::4], c.hr) for c in clips]  # LR 4x4 of the 16x16 HR
    model = _Upscale().train()
    res = evaluate_model(model, clips)
    assert model.training
    outs = [_Upscale()(c.lr) for c in clips]
    ref = evaluate_clips(outs, clips, crop_border=0, y_channel=True, with_ssim=True)
    assert res["convention"] == ref["convention"]
    assert (res["psnr"], res["ssim"]) == pytest.approx((ref["psnr"], ref["ssim"]))


def test_evaluate_model_passes_its_convention_on() -> None:
    _, clips = _clips()
    clips = [Clip(c.name, c.hr[..., ::4, ::4], c.hr) for c in clips]
    res = evaluate_model(_Upscale(), clips, crop_border=1, y_channel=False, with_ssim=False)
    outs = [_Upscale()(c.lr) for c in clips]
    ref = evaluate_clips(outs, clips, crop_border=1, y_channel=False, with_ssim=False)
    assert res["convention"] == {"crop_border": 1, "y_channel": False, "uint8": True}
    assert res["psnr"] == pytest.approx(ref["psnr"]) and "ssim" not in res
