"""Every trained or compressed model survives the run store's checkpoint: saved as plain tensors
plus a recipe, rebuilt from the recipe, loaded with ``weights_only=True``, same outputs.

``--resume`` reloads ``train.pt``/``compress.pt`` to compress, serve and evaluate; a model that
does not rebuild would make a finished phase unusable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from energybench.compress.common import param_count
from energybench.compress.methods import apply_method
from energybench.models import MODELS
from energybench.models.sr.base import SRModel
from energybench.run.checkpoint import (
    CheckpointError,
    build_model,
    load_checkpoint,
    recipe_of,
    recipe_path,
    save_checkpoint,
)
from energybench.suite.schema import Distill, ModelSpec, Prune, Quantize, Reparameterize


class _Untraceable(SRModel):
    """FX cannot trace it (data-dependent branch): int8 falls back to eager per-conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 48, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.mean() > 2:
            lr = lr * 0
        return nn.functional.pixel_shuffle(self.conv(lr), 4)


class _BNChain(SRModel):
    """conv -> BN -> PReLU(per channel) -> conv: pruning shrinks the layers between too."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels)
        self.b = nn.Conv2d(channels, 48, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return nn.functional.pixel_shuffle(self.b(self.act(self.bn(self.a(lr)))), 4)


for _name, _factory in (("test-untraceable", _Untraceable), ("test-bn-chain", _BNChain)):
    if _name not in MODELS:
        MODELS.register(_name, _factory)

TEACHER = {"name": "espcn", "params": {"channels": 8, "layers": 3, "first_kernel": 3}}
GRAFTED = {"name": "ckbg", "params": {"channels": 8, "blocks": 1, "grafts": True}}
INT8 = Quantize(method="quantize", dtype="int8", calibration_batches=2)

CASES: dict[str, tuple[dict, list, list[str]]] = {
    "trained": (GRAFTED, [], []),
    "int8": (GRAFTED, [INT8], ["quantize_int8"]),
    "merged+pruned": (
        GRAFTED,
        [Reparameterize(method="reparameterize"), Prune(method="prune", amount=0.5)],
        ["reparameterize", "prune"],
    ),
    "merged+pruned+int8": (
        GRAFTED,
        [
            Reparameterize(method="reparameterize"),
            Prune(method="prune", kind="structured", amount=0.25),
            INT8,
        ],
        ["reparameterize", "prune", "quantize_int8"],
    ),
    "merged+fp16": (
        GRAFTED,
        [Reparameterize(method="reparameterize"), Quantize(method="quantize", dtype="fp16")],
        ["reparameterize", "cast"],
    ),
    "unstructured": (TEACHER, [Prune(method="prune", kind="unstructured", amount=0.5)], []),
    "distilled": (
        GRAFTED,
        [
            Distill(
                method="distill",
                student=ModelSpec(name="espcn", params={"channels": 4, "layers": 2}),
                steps=2,
                batch_size=1,
            )
        ],
        ["distill"],
    ),
    "bn-chain-pruned+int8": (
        {"name": "test-bn-chain", "params": {}},
        [Prune(method="prune", amount=0.5), INT8],
        ["prune", "quantize_int8"],
    ),
    "eager-int8": ({"name": "test-untraceable", "params": {}}, [INT8], ["quantize_int8"]),
}


def _outputs(model: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    with torch.inference_mode():
        return model.forward_clip(clip.to(dtype))


@pytest.mark.parametrize("name", list(CASES))
def test_model_round_trips_through_tensors_and_recipe(name: str, ctx, tmp_path: Path) -> None:
    spec, steps, ops = CASES[name]
    torch.manual_seed(0)
    teacher = build_model(TEACHER, [])
    save_checkpoint(teacher, tmp_path / "teacher.pt")
    model = build_model(spec, ["teacher"] if spec is GRAFTED else [], lambda u: teacher).eval()
    for step in steps:
        model, _ = apply_method(step, model, ctx)
    path = tmp_path / "compress.pt"
    save_checkpoint(model, path)

    recipe = json.loads(recipe_path(path).read_text())
    assert recipe["model"] == spec and [s["op"] for s in recipe["steps"]] == ops
    state = torch.load(path, weights_only=True)  # a plain dict of tensors, nothing else
    assert type(state) is dict and all(isinstance(v, torch.Tensor) for v in state.values())

    loaded = load_checkpoint(path, "cpu", lambda u: tmp_path / f"{u}.pt")
    clip = torch.rand(1, 3, 3, 12, 12)
    assert torch.equal(_outputs(model.eval(), clip), _outputs(loaded, clip))
    assert param_count(loaded) == param_count(model) > 0
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert recipe_of(loaded) == recipe_of(model)


def test_pruned_widths_are_rebuilt(ctx, tmp_path: Path) -> None:
    model = build_model({"name": "test-bn-chain", "params": {"channels": 8}}, [])
    model, _ = apply_method(Prune(method="prune", amount=0.5), model.eval(), ctx)
    save_checkpoint(model, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert (loaded.a.out_channels, loaded.bn.num_features, loaded.act.num_parameters) == (4, 4, 4)
    assert loaded.b.in_channels == 4


def test_a_changed_checkpoint_is_refused(tmp_path: Path) -> None:
    model = build_model(TEACHER, [])
    path = tmp_path / "train.pt"
    save_checkpoint(model, path)
    state = torch.load(path, weights_only=True)
    state["convs.0.bias"] = state["convs.0.bias"] + 1
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_checkpoint(path)
    recipe_path(path).unlink()
    with pytest.raises(CheckpointError, match="no recipe"):
        load_checkpoint(path)


def test_a_state_that_does_not_fit_the_recipe_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.pt"
    save_checkpoint(build_model(TEACHER, []), path)
    recipe = json.loads(recipe_path(path).read_text())
    recipe["model"]["params"]["channels"] = 16
    recipe_path(path).write_text(json.dumps(recipe))
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_checkpoint(path)
