"""MATLAB-compatible bicubic resizing: the "BI" degradation of SR benchmarks (Vid4, REDS, Set5).

``imresize`` reproduces MATLAB's ``imresize(x, scale, 'bicubic')`` (and BasicSR's
``matlab_functions.imresize``): Keys cubic kernel with a = -0.5, pixel-centre coordinate mapping
``u = x/scale + 0.5*(1 - 1/scale)``, a kernel widened by ``1/scale`` when downscaling (antialias),
weights normalised to sum to one, and symmetric (edge-repeating mirror) border handling, applied
separably. It runs on torch tensors of any batch shape as two dense matrix products whose
matrices are cached per (length, scale).

This module only resizes; it knows nothing about datasets or models, and never rounds unless
asked (:func:`bicubic_degrade` with ``quantize=True`` rounds to 8 bits like saved LR PNGs).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=256)
def _weights_np(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    """Dense (out_len, in_len) float64 resampling matrix along one dimension."""
    width = 4.0
    kernel_scale = 1.0
    if scale < 1 and antialias:
        width = width / scale
        kernel_scale = scale
    x = np.arange(1, out_len + 1, dtype=np.float64)  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input indices
    w = kernel_scale * cubic((u[:, None] - idx) * kernel_scale)
    w = w / w.sum(axis=1, keepdims=True)
    # MATLAB: out-of-range indices mirror with the edge repeated (aux = [1:n, n:-1:1]).
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    src = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(mat, (rows, src.reshape(-1)), w.reshape(-1))
    return mat


def resize_matrix(
    in_len: int,
    out_len: int,
    scale: float | None = None,
    antialias: bool = True,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The (out_len, in_len) matrix ``M`` with ``resized = M @ signal`` along one dimension.

    ``scale`` defaults to ``out_len / in_len``; MATLAB uses the requested scale, not the ratio
    of rounded sizes, when a scale is given.
    """
    s = float(scale) if scale is not None else out_len / in_len
    return torch.as_tensor(_weights_np(in_len, out_len, s, antialias), dtype=dtype, device=device)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize the last two dims (H, W) of ``x`` like MATLAB ``imresize(x, scale, 'bicubic')``.

    Give either ``scale`` (output size ``ceil(scale * in)``, as MATLAB) or ``size = (H, W)``.
    Any leading batch dims; float input (integers are converted to float32, not rescaled).
    The result is not clamped: bicubic overshoots slightly outside the input range.
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    h, w = x.shape[-2:]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        s_h, s_w = out_h / h, out_w / w
    else:
        assert scale is not None
        out_h, out_w = math.ceil(scale * h), math.ceil(scale * w)
        s_h = s_w = float(scale)
    # MATLAB resizes the dimension with the smaller scale first (H first on ties).
    mh = resize_matrix(h, out_h, s_h, antialias, dtype=x.dtype, device=x.device)
    mw = resize_matrix(w, out_w, s_w, antialias, dtype=x.dtype, device=x.device)
    if s_w < s_h:
        return mh @ (x @ mw.T)
    return (mh @ x) @ mw.T


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit levels (k/255), staying float."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def bicubic_degrade(hr: torch.Tensor, scale: int = 4, quantize: bool = True) -> torch.Tensor:
    """The BI degradation: MATLAB bicubic downscaling by ``scale`` of (…, H, W) in [0, 1].

    ``H`` and ``W`` should be multiples of ``scale`` (crop first, see :func:`mod_crop`).
    ``quantize`` rounds to 8 bits, matching LR frames stored as PNG (the usual datasets).
    """
    lr = imresize(hr, scale=1.0 / scale)
    return quantize_uint8(lr) if quantize else lr.clamp(0.0, 1.0)


def mod_crop(x: torch.Tensor | np.ndarray, scale: int, hw_axes: tuple[int, int] = (-2, -1)):
    """Crop the bottom/right so that both spatial sizes are multiples of ``scale`` (GTmod)."""
    ah, aw = hw_axes
    h, w = x.shape[ah], x.shape[aw]
    slices = [slice(None)] * x.ndim
    slices[ah] = slice(0, h - h % scale)
    slices[aw] = slice(0, w - w % scale)
    return x[tuple(slices)]
