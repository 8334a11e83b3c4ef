"""Bicubic and ESPCN models: exactness of the bicubic conv, shapes, residual start, complexity."""

from __future__ import annotations

import torch

from energybench.data.degrade import imresize
from energybench.models import MODELS
from energybench.models.sr.bicubic import BicubicUpsample
from energybench.models.sr.complexity import count_flops, count_params
from energybench.models.sr.espcn import espcn_from_state_dict


def test_bicubic_conv_equals_matlab_imresize() -> None:
    x = torch.rand(2, 3, 9, 13, dtype=torch.float64)
    for s in (2, 4):
        up = BicubicUpsample(s).double()
        assert torch.allclose(up(x), imresize(x, scale=s), atol=1e-6)


def test_bicubic_model() -> None:
    m = MODELS.create("bicubic")
    x = torch.rand(1, 3, 8, 10)
    assert m(x).shape == (1, 3, 32, 40) and count_params(m) == 0
    assert count_flops(m, (8, 10)) == 2 * 25 * 3 * 32 * 40


def test_espcn_starts_near_bicubic_and_roundtrips() -> None:
    torch.manual_seed(0)
    m = MODELS.create("espcn", channels=8, layers=4)
    x = torch.rand(2, 3, 12, 12)
    out = m(x)
    assert out.shape == (2, 3, 48, 48)
    assert (out - MODELS.create("bicubic", clamp=False)(x)).abs().max() < 0.05
    clone = espcn_from_state_dict(m.state_dict())
    assert torch.equal(clone(x), out)
    assert count_params(m) == sum(p.numel() for p in m.parameters())
    flops = count_flops(m, (12, 12))
    macs = 12 * 12 * (3 * 8 * 25 + 2 * 8 * 8 * 9 + 8 * 48 * 9) + 3 * 48 * 48 * 25
    assert flops == 2 * macs


def test_residual_added_before_the_shuffle_is_bit_identical() -> None:
    """ESPCN and CKBG add the bicubic phases at LR and shuffle once: the same values, bit for
    bit, as shuffling the network's phases and adding bicubic at full size."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.rand(2, 3, 11, 14)
    m = MODELS.create("espcn", channels=8, layers=3).eval()
    h = x
    for conv in m.convs[:-1]:
        h = F.relu(conv(h))
    old = F.pixel_shuffle(m.convs[-1](h), 4) + m.up(x)
    assert torch.equal(m(x), old)
    c = MODELS.create("ckbg", channels=8, blocks=1).eval()
    prev, hidden = c.init_state(x)
    f = F.relu(c.head(torch.cat([x, prev, hidden], dim=1)))
    f = F.relu(c.body[0](f))
    old = F.pixel_shuffle(c.tail(f), 4) + c.up(x)
    out, _ = c.step(x, (prev, hidden))
    assert torch.equal(out, old)
