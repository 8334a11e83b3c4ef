"""The classification task through the lifecycle pieces: evaluation's top-1/top-5 on a model
whose answers are known, pruning of residual and depthwise models, int8, distillation, and the
validate-time refusal of a model the pruner cannot handle."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from energybench.cli import app
from energybench.compress.common import CompressContext
from energybench.compress.methods import apply_method
from energybench.compress.prune import prune_model
from energybench.data.images import TensorClassDataset
from energybench.models import MODELS
from energybench.run.checkpoint import build_model, load_checkpoint, save_checkpoint
from energybench.suite.schema import EvaluateSettings, Prune, Quantize
from energybench.tasks.base import model_kwargs
from energybench.tasks.classification import ClassificationTask


def toy_task(n_per_class: int = 6, classes: int = 4, size: int = 16) -> ClassificationTask:
    """Images whose brightness encodes the class (class k: value 40 + 50 k)."""
    labels = np.repeat(np.arange(classes), n_per_class)
    images = torch.from_numpy((40 + 50 * labels).astype(np.uint8))[:, None, None, None]
    images = images.expand(-1, 1, size, size).contiguous()
    splits = {"train": np.arange(len(labels)), "val": np.arange(0), "test": np.arange(len(labels))}
    return ClassificationTask(
        TensorClassDataset(images, labels, [f"c{k}" for k in range(classes)], splits)
    )


class Brightness(nn.Module):
    """Logits that put class ``shift(k)`` first: the true class, or a wrong one for some."""

    def __init__(self, wrong: set[int]) -> None:
        super().__init__()
        self.wrong = wrong
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = ((x.mean(dim=(1, 2, 3)) * 255 - 40) / 50).round().long()
        logits = torch.zeros(len(x), 4)
        for i, c in enumerate(k.tolist()):
            first = (c + 1) % 4 if c in self.wrong else c
            logits[i, first] = 10 + self.p
            logits[i, (first + 1) % 4 if c in self.wrong else (c + 2) % 4] = 5
        return logits


def test_evaluate_reports_exact_top1_and_top5_fractions() -> None:
    task = toy_task()
    cpu = torch.device("cpu")
    perfect = task.evaluate(Brightness(set()), EvaluateSettings(split="test"), cpu)
    assert perfect["top1"] == 1.0 and perfect["items"] == 24
    half = task.evaluate(Brightness({0, 1}), EvaluateSettings(split="test"), cpu)
    assert half["top1"] == pytest.approx(0.5)
    assert half["top5"] == 1.0  # 4 classes: top-5 covers them all
    assert half["per_class_top1"] == {"c0": 0.0, "c1": 0.0, "c2": 1.0, "c3": 1.0}
    part = task.evaluate(Brightness({0, 1}), EvaluateSettings(split="test", max_items=6), cpu)
    assert part["items"] == 6


def test_serving_step_serves_one_batch_of_images() -> None:
    task = toy_task()
    fn = task.serving_step(Brightness(set()), 5, torch.device("cpu"), torch.float32)
    assert fn().shape == (5, 4)


def _ctx(task: ClassificationTask) -> CompressContext:
    return CompressContext(task=task, device=torch.device("cpu"), seed=0, batch_size=4)


def _digits_task() -> ClassificationTask:
    from energybench.data import DATASETS

    return ClassificationTask(DATASETS.create("digits", image_size=16))


@pytest.mark.parametrize("name", ["tv:resnet18", "timm:mobilenetv3_small_050"])
def test_structured_pruning_shrinks_residual_and_depthwise_models(name: str) -> None:
    task = _digits_task()
    model = MODELS.create(name, **task.model_context()).eval()
    step = Prune(method="prune", kind="structured", amount=0.5, finetune={"steps": 1})
    pruned, info = prune_model(step, model, _ctx(task))
    n0 = sum(p.numel() for p in model.parameters())
    n1 = sum(p.numel() for p in pruned.parameters())
    assert info["channels_removed"] > 0 and n1 < n0 and "finetune" in info
    x = torch.rand(2, 1, 16, 16)
    assert pruned.eval()(x).shape == (2, 10)
    if name == "tv:resnet18":  # block outputs (added to the skip) keep their width
        assert (
            pruned.layer1[0].conv2.out_channels == 64 and pruned.layer1[0].conv1.out_channels == 32
        )
    else:  # a depthwise conv shrank with the expansion conv feeding it
        dw = [m for m in pruned.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        orig = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        assert any(a.groups < b.groups for a, b in zip(dw, orig, strict=True))


def test_int8_quantisation_of_a_torchvision_classifier(tmp_path: Path) -> None:
    task = _digits_task()
    spec = {"name": "tv:resnet18", "params": model_kwargs("tv:resnet18", {}, task)}
    model = build_model(spec, [])
    model.train()
    with torch.no_grad():  # realistic BN statistics
        for x, _ in [next(task.train_batches(model, 16, s)) for s in range(3)]:
            model(x)
    model.eval()
    step = Quantize(method="quantize", dtype="int8", mode="static", calibration_batches=2)
    q, info = apply_method(step, model, _ctx(task))
    assert info["graph"] == "fx"
    x = task.dataset.sample_lr(8)
    with torch.inference_mode():
        a, b = model(x), q(x)
    assert b.shape == (8, 10) and b.dtype == torch.float32
    assert float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) > 0.9
    res = task.evaluate(q, EvaluateSettings(split="test", max_items=20), torch.device("cpu"))
    assert 0 <= res["top1"] <= 1
    # --resume reloads it: the quantised Linear's state (versioned) round-trips exactly
    save_checkpoint(q, tmp_path / "compress.pt")
    loaded = load_checkpoint(tmp_path / "compress.pt")
    with torch.inference_mode():
        assert torch.equal(loaded(x), q(x))


def test_distillation_loss_is_zero_for_a_student_equal_to_its_teacher() -> None:
    task = _digits_task()
    teacher = MODELS.create("timm:lcnet_050", **task.model_context()).eval()
    student = copy.deepcopy(teacher)
    batch = next(task.train_batches(student, 8, 0))
    loss_fn = task.distill_loss_fn(teacher, 1.0, torch.device("cpu"))
    assert float(loss_fn(student.eval(), batch)) == pytest.approx(0.0, abs=1e-5)
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert float(loss_fn(other, batch)) > 1e-4


def test_validate_refuses_pruning_a_model_the_pruner_cannot_handle(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ndefaults: {dataset: {name: digits}}\nentries:\n"
        "  - name: rep\n    model: {name: 'timm:repvgg_a0'}\n"
        "    compress: [{method: prune, amount: 0.5}]\n"
        "  - name: res\n    model: {name: 'tv:resnet18'}\n"
        "    compress: [{method: reparameterize}]\n"
        "  - name: ok\n    model: {name: 'timm:repvgg_a0'}\n"
        "    compress: [{method: reparameterize}, {method: prune, amount: 0.5}]\n"
    )
    res = CliRunner().invoke(app, ["validate", str(suite)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    out = " ".join(res.output.split())
    assert "structured pruning cannot handle model 'timm:repvgg_a0'" in out
    assert "no multi-branch blocks to merge" in out and "entries.2" not in out


def test_precise_bn_replaces_a_stale_moving_average_by_the_data_mean() -> None:
    task = toy_task()
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.BatchNorm2d(1, momentum=0.01))
    nn.init.constant_(model[0].weight, 2.0)
    model[1].running_mean.fill_(-5.0)  # stale: remembers an untrained network
    task.after_training(model, torch.device("cpu"), seed=0)
    pixels = task.dataset.load("train", np.arange(24)).mean()
    assert float(model[1].running_mean) == pytest.approx(2 * float(pixels), rel=1e-4)
    assert model[1].momentum == 0.01  # restored
