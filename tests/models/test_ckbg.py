"""CKBG: online (causal), grafts carry the teacher, single-path merge is exact and cheaper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from energybench.models import MODELS
from energybench.models.sr.ckbg import CKBG
from energybench.models.sr.complexity import count_flops, count_params


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def _teacher(channels: int = 16, layers: int = 4) -> nn.Module:
    return _randomise(MODELS.create("espcn", channels=channels, layers=layers, first_kernel=3), 1)


def test_merged_model_matches_multibranch_within_1e5() -> None:
    model = _randomise(CKBG(channels=16, blocks=3, grafts=True))
    clip = torch.rand(2, 5, 3, 20, 24, generator=torch.Generator().manual_seed(3))
    merged = model.reparameterize()
    with torch.no_grad():
        a, b = model.forward_clip(clip), merged.forward_clip(clip)
    assert a.shape == (2, 5, 3, 80, 96)
    assert (a - b).abs().max().item() <= 1e-5
    assert not any("graft" in k for k in merged.state_dict())


def test_online_output_never_depends_on_future_frames() -> None:
    model = _randomise(CKBG(channels=8, blocks=1))
    clip = torch.rand(1, 4, 3, 12, 12)
    changed = clip.clone()
    changed[:, 3] = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        a, b = model.forward_clip(clip), model.forward_clip(changed)
    assert torch.equal(a[:, :3], b[:, :3])
    assert not torch.equal(a[:, 3], b[:, 3])


def test_hidden_state_carries_past_frames() -> None:
    model = _randomise(CKBG(channels=8, blocks=1))
    clip = torch.rand(1, 3, 3, 12, 12)
    other = clip.clone()
    other[:, 0] = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        a, b = model.forward_clip(clip), model.forward_clip(other)
    assert not torch.equal(a[:, 2], b[:, 2])  # frame 0 reaches frame 2 through the hidden state


def test_grafts_start_as_the_teacher() -> None:
    teacher = _teacher(channels=16, layers=4)
    model = MODELS.create(
        "ckbg",
        channels=16,
        blocks=3,
        grafts=True,
        main_init_scale=0.0,
        upstream={"teacher": teacher},
    ).eval()
    clip = torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        ours = model.forward_clip(clip)
        ref = torch.stack([teacher(clip[:, t]) for t in range(3)], dim=1)
    # teacher has 2 hidden convs; ckbg's third body block gets an identity graft
    assert (ours - ref).abs().max().item() < 1e-5
    assert model.graft_source["source"] == "entry:teacher"


def test_grafted_without_a_teacher_says_how_to_give_one() -> None:
    with pytest.raises(ValueError, match="needs a teacher"):
        MODELS.create("ckbg", grafts=True)
    with pytest.raises(ValueError, match="not among this entry's uses"):
        MODELS.create("ckbg", grafts=True, teacher="t2", upstream={"t1": _teacher()})


def test_teacher_weights_from_a_state_dict_file(tmp_path: Path) -> None:
    teacher = _teacher(channels=8, layers=3)
    path = tmp_path / "teacher.pt"
    torch.save(teacher.state_dict(), path)
    model = MODELS.create("ckbg", channels=8, blocks=1, grafts=True, teacher_weights=str(path))
    g = model.head.branches["graft"].conv.weight
    assert torch.equal(g[:, :3], teacher.convs[0].weight)
    assert torch.count_nonzero(g[:, 3:]) == 0  # previous frame and hidden state: no prior


def test_merge_removes_the_grafts_cost() -> None:
    grafted = CKBG(channels=16, blocks=2, grafts=True)
    base = CKBG(channels=16, blocks=2)
    merged = grafted.reparameterize()
    shape = (3, 24, 32)
    assert count_params(merged) == count_params(base) < count_params(grafted)
    assert count_flops(merged, shape) == count_flops(base, shape) < count_flops(grafted, shape)
