"""Structural re-parameterisation is exact: merged conv == multi-branch block (eval mode)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from energybench.models.sr.reparam import RepConv, reparameterize_modules


def _perturb(module: nn.Module, seed: int) -> None:
    """Random weights and non-trivial BN statistics, so every branch matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


CASES = [
    # in, out, k, branches, bn, graft_kernel
    (8, 8, 3, ("main",), False, None),
    (8, 8, 3, ("main", "graft"), False, None),
    (6, 10, 3, ("main", "graft"), True, 1),
    (8, 8, 3, ("main", "conv1x1", "identity"), True, None),
    (8, 8, 3, ("main", "conv1x1", "identity"), False, None),
    (5, 7, 5, ("main", "graft", "conv1x1", "seq"), False, 3),
    (7, 7, 3, ("main", "graft", "conv1x1", "seq", "identity"), True, None),
    (3, 48, 3, ("main", "seq"), True, None),
]


@pytest.mark.parametrize("cin,cout,k,branches,bn,gk", CASES)
def test_merged_block_equals_branches(cin, cout, k, branches, bn, gk) -> None:
    block = RepConv(cin, cout, k, branches, bn=bn, graft_kernel=gk, identity_learnable=True)
    _perturb(block, seed=cin * 100 + cout)
    block.eval()
    x = torch.randn(2, cin, 13, 11, generator=torch.Generator().manual_seed(7))
    merged = block.reparameterize()
    assert isinstance(merged, nn.Conv2d) and merged.kernel_size == (k, k)
    with torch.no_grad():
        assert (block(x) - merged(x)).abs().max().item() <= 1e-5


def test_reparameterize_modules_swaps_every_block_and_keeps_the_input() -> None:
    net = nn.Sequential(
        RepConv(3, 8, 3, ("main", "conv1x1")),
        nn.ReLU(),
        RepConv(8, 8, 3, ("main", "graft", "identity"), bn=True),
    )
    _perturb(net, 3)
    net.eval()
    merged = reparameterize_modules(net)
    assert not any(isinstance(m, RepConv) for m in merged.modules())
    assert any(isinstance(m, RepConv) for m in net.modules())  # original untouched
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert (net(x) - merged(x)).abs().max().item() <= 1e-5


def test_invalid_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="identity"):
        RepConv(4, 8, 3, ("main", "identity"))
    with pytest.raises(ValueError, match="exceeds"):
        RepConv(4, 4, 3, ("main", "graft"), graft_kernel=5)
    with pytest.raises(ValueError, match="unknown"):
        RepConv(4, 4, 3, ("main", "bypass"))
