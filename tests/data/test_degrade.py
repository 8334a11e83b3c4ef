"""The BI degradation (MATLAB bicubic imresize) against independent references.

References:
- ``_matlab_loop``: a scalar transcription of the algorithm of MATLAB's ``imresize.m``
  (``contributions``: u = x/scale + 0.5*(1 - 1/scale), kernel widened by 1/scale when shrinking,
  weights normalised, indices mirrored with ``aux = [1:n, n:-1:1]``), with the Keys kernel written
  from its textbook form with a = -0.5; independent of the vectorised implementation.
- Pillow's BICUBIC resize (a = -0.5, antialiased support, same pixel-centre mapping; it clips
  taps at borders instead of mirroring, so it is compared away from the borders only).
- Closed forms: constants are preserved everywhere; a linear ramp is reproduced exactly away from
  the borders at the pixel-centre coordinate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from energybench.data.degrade import bicubic_degrade, imresize, mod_crop


def _keys(t: float, a: float = -0.5) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def _matlab_loop_1d(v: list[float], scale: float, out_len: int) -> list[float]:
    n = len(v)
    width = 4.0 / scale if scale < 1 else 4.0
    out = []
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        acc, total = 0.0, 0.0
        for j in range(math.ceil(width) + 2):
            idx = left + j
            w = scale * _keys(scale * (u - idx)) if scale < 1 else _keys(u - idx)
            m = (idx - 1) % (2 * n)
            src = m if m < n else 2 * n - 1 - m
            acc += w * v[src]
            total += w
        out.append(acc / total)
    return out


def _matlab_loop(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    cols = np.array([_matlab_loop_1d(list(img[:, j]), scale, oh) for j in range(w)]).T
    return np.array([_matlab_loop_1d(list(cols[i]), scale, ow) for i in range(oh)])


@pytest.mark.parametrize("scale", [0.25, 0.5, 1 / 3, 2, 4])
def test_imresize_matches_scalar_matlab_transcription(scale: float) -> None:
    img = np.random.default_rng(1).random((13, 10))
    ours = imresize(torch.from_numpy(img), scale=scale).numpy()
    ref = _matlab_loop(img, scale)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("scale,size", [(0.25, (12, 16)), (0.5, (24, 32)), (4, (192, 256))])
def test_imresize_matches_pillow_away_from_borders(scale: float, size: tuple[int, int]) -> None:
    img = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    ours = imresize(torch.from_numpy(img).double(), scale=scale).numpy()
    pil = np.asarray(Image.fromarray(img, mode="F").resize(size, Image.BICUBIC))
    m = 3 if scale < 1 else 12
    np.testing.assert_allclose(ours[m:-m, m:-m], pil[m:-m, m:-m], atol=1e-6)


def test_closed_forms() -> None:
    const = torch.full((2, 3, 20, 28), 0.37, dtype=torch.float64)
    np.testing.assert_allclose(imresize(const, scale=0.25).numpy(), 0.37, atol=1e-12)
    np.testing.assert_allclose(imresize(const, scale=4).numpy(), 0.37, atol=1e-12)
    ramp = torch.arange(64, dtype=torch.float64).repeat(4, 1)  # value = 0-based column index
    down = imresize(ramp, scale=0.25)[0].numpy()
    # output i (0-based) is centred on input coordinate 4i + 1.5
    np.testing.assert_allclose(down[2:-2], 4 * np.arange(16)[2:-2] + 1.5, atol=1e-12)
    up = imresize(ramp, scale=4)[0].numpy()
    j = np.arange(256)
    np.testing.assert_allclose(up[8:-8], ((j + 0.5) / 4 - 0.5)[8:-8], atol=1e-12)


def test_batched_size_argument_and_degrade() -> None:
    hr = torch.rand(2, 5, 3, 32, 40)
    lr = bicubic_degrade(hr, 4)
    assert lr.shape == (2, 5, 3, 8, 10)
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4)
    assert lr.min() >= 0 and lr.max() <= 1
    one = imresize(hr[1, 2], size=(8, 10))
    np.testing.assert_allclose(
        one.clamp(0, 1).numpy(), bicubic_degrade(hr, 4, quantize=False)[1, 2].numpy(), atol=1e-6
    )
    assert mod_crop(torch.zeros(1, 3, 10, 13), 4).shape == (1, 3, 8, 12)
