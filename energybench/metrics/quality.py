"""Image quality metrics for SR: PSNR and SSIM under BasicSR's conventions.

Conventions (BasicSR ``basicsr/metrics/psnr_ssim.py``, used by Vid4/REDS papers):

- the SR output is clamped to [0, 1] and rounded to 8 bits (as if saved as PNG); so is the HR;
- values are compared on the 0..255 scale in float64;
- ``y_channel=True``: the BT.601 luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (RGB in
  [0, 1], Y on 0..255, not rounded); otherwise all three RGB channels;
- ``crop_border`` pixels are removed on every side before comparing;
- SSIM: 11x11 Gaussian window (sigma 1.5), C1 = (0.01*255)^2, C2 = (0.03*255)^2, averaged over
  the "valid" region (no padding) and over channels;
- a clip's score is the mean over its frames; a suite's score is the mean of clip means.

This module computes numbers only; running models over clips is :func:`evaluate_model`'s
convenience, and nothing here measures energy or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def to_uint8_scale(x: torch.Tensor) -> torch.Tensor:
    """Clamp [0, 1] to 8-bit levels and return float64 on the 0..255 scale."""
    return torch.round(x.detach().to(torch.float64).clamp(0.0, 1.0) * 255.0)


def rgb_to_y(x255: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (…, 3, H, W) on 0..255 → (…, 1, H, W) on 16..235 (float, not rounded)."""
    w = torch.tensor(_Y_WEIGHTS, dtype=x255.dtype, device=x255.device).view(3, 1, 1)
    return ((x255 / 255.0) * w).sum(dim=-3, keepdim=True) + 16.0


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if sr.shape != hr.shape:
        raise ValueError(f"SR shape {tuple(sr.shape)} differs from HR shape {tuple(hr.shape)}")
    if sr.dim() < 3 or sr.shape[-3] != 3:
        raise ValueError(f"expected (..., 3, H, W) RGB tensors, got {tuple(sr.shape)}")
    a, b = to_uint8_scale(sr), to_uint8_scale(hr.to(sr.device))
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    if crop_border > 0:
        c = crop_border
        a, b = a[..., c:-c, c:-c], b[..., c:-c, c:-c]
    return a, b


def psnr(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, y_channel: bool = True
) -> torch.Tensor:
    """PSNR in dB per image of (…, 3, H, W) tensors in [0, 1]; returns shape (…) float64.

    Identical images give ``inf`` (as BasicSR).
    """
    a, b = _prepare(sr, hr, crop_border, y_channel)
    mse = ((a - b) ** 2).mean(dim=(-3, -2, -1))
    return 10.0 * torch.log10((255.0**2) / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, y_channel: bool = True
) -> torch.Tensor:
    """SSIM per image of (…, 3, H, W) tensors in [0, 1]; returns shape (…) float64.

    Gaussian 11x11 window (sigma 1.5), valid region only, mean over channels (BasicSR).
    """
    a, b = _prepare(sr, hr, crop_border, y_channel)
    lead = a.shape[:-3]
    c, h, w = a.shape[-3:]
    if h < 11 or w < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {h}x{w}")
    a = a.reshape(-1, 1, h, w)
    b = b.reshape(-1, 1, h, w)
    g = _gaussian_window().to(a.device)
    gy, gx = g.view(1, 1, 11, 1), g.view(1, 1, 1, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gy), gx)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    per_channel = (num / den).mean(dim=(-2, -1)).reshape(*lead, c)
    return per_channel.mean(dim=-1)


def _finite_mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def evaluate_clips(
    outputs: Iterable[torch.Tensor],
    clips: Sequence[Any],
    crop_border: int = 0,
    y_channel: bool = True,
    with_ssim: bool = True,
) -> dict[str, Any]:
    """Score SR outputs (one (T,3,H,W) tensor per clip, in the order of ``clips``).

    ``clips`` are :class:`energybench.data.base.Clip` objects (their ``name`` and ``hr`` are
    used). Returns ``{"psnr": suite mean dB, "ssim": suite mean, "frames": total,
    "clips": {name: {"psnr", "ssim", "frames", "psnr_frames": [...]}}, "convention": {...}}``;
    the suite score is the mean of clip means.
    """
    per_clip: dict[str, dict[str, Any]] = {}
    outs = list(outputs)
    if len(outs) != len(clips):
        raise ValueError(f"{len(outs)} outputs for {len(clips)} clips")
    for out, clip in zip(outs, clips, strict=True):
        p = psnr(out, clip.hr, crop_border, y_channel)
        entry: dict[str, Any] = {
            "psnr": float(p.mean()),
            "frames": int(p.numel()),
            "psnr_frames": [float(v) for v in p.flatten()],
        }
        if with_ssim:
            entry["ssim"] = float(ssim(out, clip.hr, crop_border, y_channel).mean())
        per_clip[clip.name] = entry
    result: dict[str, Any] = {
        "psnr": _finite_mean([c["psnr"] for c in per_clip.values()]),
        "frames": sum(c["frames"] for c in per_clip.values()),
        "clips": per_clip,
        "convention": {"crop_border": crop_border, "y_channel": y_channel, "uint8": True},
    }
    if with_ssim:
        result["ssim"] = _finite_mean([c["ssim"] for c in per_clip.values()])
    return result


@torch.no_grad()
def run_model_on_clip(
    model: torch.nn.Module, lr: torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """Super-resolve one clip's LR frames (T,3,h,w) online (frame by frame, in order).

    Uses ``model.forward_clip`` when the model has it (SRModel), else calls it per frame.
    Returns (T,3,H,W) on the CPU, clamped to [0, 1].
    """
    dev = (
        torch.device(device)
        if device is not None
        else next((p.device for p in model.parameters()), torch.device("cpu"))
    )
    x = lr.to(dev).unsqueeze(0)
    forward_clip = getattr(model, "forward_clip", None)
    if forward_clip is not None:
        out = forward_clip(x)[0]
    else:
        out = torch.stack([model(x[:, t])[0] for t in range(x.shape[1])])
    return out.float().clamp(0.0, 1.0).cpu()


def evaluate_model(
    model: torch.nn.Module,
    clips: Sequence[Any],
    crop_border: int = 0,
    y_channel: bool = True,
    device: torch.device | str | None = None,
    with_ssim: bool = True,
) -> dict[str, Any]:
    """Run ``model`` over every clip (eval mode, no grad) and score it with :func:`evaluate_clips`.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        outs = [run_model_on_clip(model, c.lr, device) for c in clips]
    finally:
        model.train(was_training)
    return evaluate_clips(outs, clips, crop_border, y_channel, with_ssim)
