"""Bicubic upsampling as a fixed convolution, and the ``bicubic`` baseline model.

:class:`BicubicUpsample` reproduces MATLAB ``imresize(x, s, 'bicubic')`` for an integer
upscale ``s`` (the same kernel, coordinate mapping and symmetric borders as
:func:`energybench.data.degrade.imresize`) as a polyphase filter: symmetric padding by 2, one
depthwise 5x5 convolution producing the s² output phases per channel, and a pixel shuffle. That
costs 25 multiply-adds per output pixel and channel instead of the dense matrix products of
``imresize``, so it is cheap enough to serve and to use as the skip branch of learned models.

Nothing here is trainable; the kernel is a buffer.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from energybench.data.degrade import cubic
from energybench.models.sr.base import SRModel


def bicubic_phase_kernels(scale: int) -> torch.Tensor:
    """(s*s, 1, 5, 5) float64 kernels: output phase (py, px) of MATLAB bicubic upscaling by s.

    Output pixel ``j = s*i + p`` (0-based) sits at input coordinate ``i + (p + 0.5)/s - 0.5``;
    its taps are input pixels ``i - 2 .. i + 2`` weighted by the Keys kernel (a = -0.5).
    """
    taps = np.arange(-2, 3, dtype=np.float64)
    rows = []
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5
        w = cubic(d - taps)
        rows.append(w / w.sum())
    k1 = np.stack(rows)  # (s, 5)
    k2 = np.einsum("ay,bx->abyx", k1, k1).reshape(scale * scale, 1, 5, 5)
    return torch.from_numpy(k2)


def symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad H and W by ``pad`` mirroring with the edge repeated (numpy/MATLAB 'symmetric')."""
    if pad == 0:
        return x
    if x.shape[-1] < pad or x.shape[-2] < pad:
        raise ValueError(f"symmetric padding by {pad} needs at least {pad}x{pad} pixels")
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)


class BicubicUpsample(nn.Module):
    """MATLAB-exact bicubic ×scale upsampling of (B, C, h, w) as a fixed depthwise conv."""

    def __init__(self, scale: int = 4, channels: int = 3) -> None:
        super().__init__()
        self.scale, self.channels = scale, channels
        k = bicubic_phase_kernels(scale).to(torch.float32).repeat(channels, 1, 1, 1)
        self.weight: torch.Tensor
        self.register_buffer("weight", k, persistent=False)

    def forward(self, x: torch.Tensor, shuffle: bool = True) -> torch.Tensor:
        """×scale upsampling; ``shuffle=False``: the s² output phases per channel at LR size,
        (B, C·s², h, w), that the pixel shuffle would interleave.

        A model whose last conv also produces ``C·s²`` phases adds these to its own and
        shuffles once (:func:`shuffle_with_residual`). (A keyword of ``forward``, not a method,
        so graph tracers still see one opaque module call.)
        """
        w = self.weight.to(dtype=x.dtype, device=x.device)
        y = F.conv2d(symmetric_pad(x, 2), w, groups=self.channels)
        return F.pixel_shuffle(y, self.scale) if shuffle else y


def shuffle_with_residual(
    phases: torch.Tensor, lr: torch.Tensor, up: BicubicUpsample | None, scale: int
) -> torch.Tensor:
    """``pixel_shuffle(phases) + up(lr)``, computed as
    ``pixel_shuffle(phases + up(lr, shuffle=False))``.

    Same values bit for bit; one full-resolution pass instead of three (two shuffles and an
    add). ``up=None``: no residual.
    """
    if up is not None:
        phases = phases + up(lr, shuffle=False)
    return F.pixel_shuffle(phases, scale)


class BicubicSR(SRModel):
    """The bicubic baseline: MATLAB-style bicubic ×scale, no parameters, per frame."""

    def __init__(self, scale: int = 4, clamp: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.clamp = clamp
        self.up = BicubicUpsample(scale)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        out = self.up(lr)
        return out.clamp(0.0, 1.0) if self.clamp else out


def bicubic(scale: int = 4, clamp: bool = True) -> BicubicSR:
    """Bicubic ×scale upsampling (MATLAB imresize kernel, as the BI degradation); no training."""
    return BicubicSR(scale=scale, clamp=clamp)
