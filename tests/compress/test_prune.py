"""Structured and unstructured pruning: smaller networks, same interface, honest records."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from energybench.compress.common import param_count
from energybench.compress.methods import apply_method
from energybench.compress.prune import find_prunable_pairs, structured_prune, unstructured_prune
from energybench.models import MODELS
from energybench.suite.schema import Prune


def test_structured_espcn_smaller_same_output_shape() -> None:
    m = MODELS.create("espcn", channels=16, layers=4).eval()
    x = torch.rand(2, 3, 12, 12)
    pruned, info = structured_prune(m, 0.5)
    assert param_count(pruned) < param_count(m)
    assert pruned(x).shape == m(x).shape
    assert [c.out_channels for c in pruned.convs] == [8, 8, 8, 48]  # last conv feeds the shuffle
    assert info["channels_removed"] == 24 and info["speedup_expected"] is True
    assert param_count(m) == sum(p.numel() for p in m.parameters())  # original untouched


def test_structured_keeps_the_strongest_filters() -> None:
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        m[0].weight.mul_(torch.tensor([0.01, 1.0, 0.02, 2.0]).view(4, 1, 1, 1))
    pruned, _ = structured_prune(m, 0.5)
    assert torch.equal(pruned[0].weight, m[0].weight[[1, 3]])
    assert torch.equal(pruned[2].weight, m[2].weight[:, [1, 3]])


def test_structured_recurrent_keeps_state_width(toy_recurrent) -> None:
    pairs = {(p.producer, p.consumer) for p in find_prunable_pairs(toy_recurrent)}
    assert pairs == {("head", "body"), ("body", "mid")}  # mid feeds tail AND the state
    pruned, _ = structured_prune(toy_recurrent, 0.5)
    clip = torch.rand(1, 3, 3, 8, 8)
    assert pruned.forward_clip(clip).shape == toy_recurrent.forward_clip(clip).shape
    assert pruned.head.in_channels == toy_recurrent.head.in_channels
    assert param_count(pruned) < param_count(toy_recurrent)


def test_structured_prunes_batchnorm_between() -> None:
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.PReLU(8), nn.Conv2d(8, 3, 3, padding=1)
    ).eval()
    pruned, info = structured_prune(m, 0.25)
    assert pruned[1].num_features == 6 and pruned[2].num_parameters == 6
    assert pruned(torch.rand(1, 3, 5, 5)).shape == (1, 3, 5, 5)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.b(y) + y  # a's output has two users: not safe


def test_structured_refuses_unsafe_only_models() -> None:
    with pytest.raises(ValueError, match="no safely prunable"):
        structured_prune(_Residual(), 0.5)


def test_prunable_pairs_hook_wins() -> None:
    m = MODELS.create("espcn", channels=8, layers=4)
    m.prunable_pairs = lambda: [("convs.1", "convs.2")]  # type: ignore[attr-defined]
    pruned, info = structured_prune(m, 0.5)
    assert list(info["pairs"]) == ["convs.1"]
    assert [c.out_channels for c in pruned.convs] == [8, 4, 8, 48]


def test_unstructured_sparsity_and_params() -> None:
    m = MODELS.create("espcn", channels=16)
    pruned, info = unstructured_prune(m, 0.4)
    assert info["weight_sparsity"] == pytest.approx(0.4, abs=0.01)
    assert info["speedup_expected"] is False
    assert param_count(pruned) == param_count(m)
    assert all("orig" not in k and "mask" not in k for k in pruned.state_dict())


def test_prune_method_with_finetune_keeps_zeros(ctx) -> None:
    m = MODELS.create("espcn", channels=8)
    step = Prune(method="prune", kind="unstructured", amount=0.5, finetune={"steps": 3})
    out, rec = apply_method(step, m, ctx)
    assert rec["finetune"]["steps"] == 3
    assert rec["weight_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert rec["after"]["params"] == rec["before"]["params"]
    step = Prune(method="prune", kind="structured", amount=0.5, finetune={"steps": 2})
    out, rec = apply_method(step, m, ctx)
    assert rec["after"]["params"] < rec["before"]["params"]
    assert rec["after"]["size_bytes"] < rec["before"]["size_bytes"]
