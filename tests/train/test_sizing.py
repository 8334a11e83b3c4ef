"""``train.batch_size: auto``: sized from the device's measured training-step memory."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from energybench.errors import UserError
from energybench.records.phases import BatchSizing
from energybench.records.store import load_run
from energybench.run import runner as runner_mod
from energybench.run.checkpoint import build_model
from energybench.run.preflight import task_for
from energybench.run.runner import run_suite
from energybench.suite.load import load_suite
from energybench.train import sizing
from energybench.train.sizing import auto_batch_size, choose_batch_size

GIB = 1 << 30
MIB = 1 << 20


def test_choose_is_the_largest_power_of_two_within_the_fraction() -> None:
    # 0.6 x 10 GiB = 6 GiB; 1 GiB fixed leaves 5 GiB = 51.2 items of 100 MiB -> 32
    assert choose_batch_size(GIB, 100 * MIB, 10 * GIB) == 32
    # exactly at the budget fits: 1 + 64 x 0.078125 GiB = 6 GiB
    assert choose_batch_size(GIB, 5 * GIB // 64, 10 * GIB) == 64
    assert choose_batch_size(GIB, 5 * GIB // 64 + 1, 10 * GIB) == 32
    assert choose_batch_size(0, 1, 80 * GIB) == sizing.MAX_AUTO_BATCH  # capped
    assert choose_batch_size(0, 1, 80 * GIB, cap=100) == 64
    assert choose_batch_size(7 * GIB, MIB, 10 * GIB) == 1  # nothing fits: 1, the run says why


class FakeMemory:
    """A CUDA allocator seen through the probe: the peak of each probe step is fixed + b x item
    (``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``)."""

    def __init__(self, total: int, fixed: int, per_item: int) -> None:
        self.total, self.fixed, self.per_item = total, fixed, per_item
        self.peak, self.resets, self.batches = 0, 0, []

    def total_bytes(self) -> int:
        return self.total

    def reset_peak(self) -> None:
        self.resets += 1
        self.peak = 0

    def peak_bytes(self) -> int:
        return self.peak

    def step(self, model: nn.Module, task: object, b: int, device: torch.device) -> None:
        self.batches.append(b)
        self.peak = self.fixed + b * self.per_item


def test_probe_measures_fixed_and_per_item_and_adds_the_optimiser_state() -> None:
    model = nn.Linear(1024, 1024)  # 1M + 1k fp32 parameters = 4,198,400 bytes
    params = sum(p.numel() * 4 for p in model.parameters())
    mem = FakeMemory(total=80 * GIB, fixed=2 * GIB, per_item=300 * MIB)
    got = auto_batch_size(
        model,
        object(),
        torch.device("cpu"),
        "adam",
        memory=mem,
        probe_step=mem.step,  # type: ignore[arg-type]
    )
    assert mem.batches == [1, 2] and mem.resets == 2  # each probe's own peak
    assert got.per_item_bytes == 300 * MIB
    assert got.fixed_bytes == 2 * GIB + 2 * params  # Adam's two moments per parameter
    assert got.batch_size == 128  # (48 GiB - 2 GiB - 8 MiB) / 300 MiB = 156.9 -> 128
    assert got.predicted_peak_bytes == got.fixed_bytes + 128 * 300 * MIB
    assert got.device_total_bytes == 80 * GIB and "60%" in got.rule
    sgd = auto_batch_size(
        model,
        object(),
        torch.device("cpu"),
        "sgd",
        memory=mem,
        probe_step=mem.step,  # type: ignore[arg-type]
    )
    assert sgd.fixed_bytes == 2 * GIB + params  # momentum: one state per parameter


def test_a_smaller_gpu_gets_a_smaller_batch() -> None:
    model = nn.Linear(8, 8)
    sizes = {}
    for total_gib in (80, 40, 24):
        mem = FakeMemory(total=total_gib * GIB, fixed=GIB, per_item=200 * MIB)
        sizes[total_gib] = auto_batch_size(
            model,
            object(),
            torch.device("cpu"),
            memory=mem,
            probe_step=mem.step,  # type: ignore[arg-type]
        ).batch_size
    assert sizes == {80: 128, 40: 64, 24: 64}
    capped = auto_batch_size(
        model,
        object(),
        torch.device("cpu"),
        memory=mem,
        cap=16,
        probe_step=mem.step,  # type: ignore[arg-type]
    )
    assert capped.batch_size == 16 and "at most 16" in capped.rule


def _model_and_task(tmp_path: Path) -> tuple[nn.Module, object]:
    suite = load_suite(write(tmp_path, "steps: 1")).suite
    e = suite.entries[0]
    task = task_for(suite, e, {})
    model = build_model({"name": e.model.name, "params": e.model.params}, [])
    return model, task


def test_the_probe_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    model, task = _model_and_task(tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mem = FakeMemory(total=GIB, fixed=MIB, per_item=MIB)

    def real_step_then_fake_peak(m: nn.Module, t: object, b: int, d: torch.device) -> None:
        sizing._probe_step(m, t, b, d)  # type: ignore[arg-type]  # the real forward + backward
        mem.step(m, t, b, d)

    auto_batch_size(
        model,
        task,  # type: ignore[arg-type]
        torch.device("cpu"),
        memory=mem,
        probe_step=real_step_then_fake_peak,
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_on_the_cpu_auto_is_the_fixed_default() -> None:
    got = auto_batch_size(nn.Linear(2, 2), object(), torch.device("cpu"))  # type: ignore[arg-type]
    assert got.batch_size == sizing.CPU_BATCH and got.rule.startswith("cpu:")
    assert got.per_item_bytes is None
    assert auto_batch_size(nn.Linear(2, 2), object(), torch.device("cpu"), cap=4).batch_size == 4  # type: ignore[arg-type]


SUITE = """\
name: autosize
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16}
  train: {TRAIN}
  evaluate: {max_items: 1}
energy: {idle_baseline_s: 0, min_window_s: 0, trials: 1, max_trials: 1,
         allow_estimates_in_ranking: true, cooldown: {enabled: false}}
metric: {quality: psnr_db}
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    compress: [{method: prune, kind: unstructured, amount: 0.25, finetune: {steps: 1}}]
    serve: []
"""


def write(tmp_path: Path, train: str) -> Path:
    tmp_path.mkdir(exist_ok=True)
    p = tmp_path / "autosize.yaml"
    p.write_text(textwrap.dedent(SUITE).replace("TRAIN", train))
    return p


def test_schema_takes_auto_and_refuses_other_words_and_auto_with_ranks(tmp_path: Path) -> None:
    assert load_suite(write(tmp_path, "steps: 1, batch_size: auto")).suite.entries[0].train
    with pytest.raises(UserError) as bad:
        load_suite(write(tmp_path, "steps: 1, batch_size: big"))
    assert "batch_size" in str(bad.value) and "auto" in str(bad.value)
    with pytest.raises(UserError, match="max_batch_size applies to batch_size: auto only"):
        load_suite(write(tmp_path, "steps: 1, batch_size: 8, max_batch_size: 64"))
    with pytest.raises(UserError, match="batch_size: auto is sized on one device"):
        load_suite(write(tmp_path, "steps: 1, batch_size: auto, distributed: {nproc_per_node: 2}"))


def test_a_run_records_the_resolved_batch_and_epochs_use_it(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []

    def fake_auto(
        model: nn.Module, task: object, device: torch.device, optimizer: str, cap: int
    ) -> BatchSizing:
        calls.append(f"{optimizer} {cap}")
        return BatchSizing(batch_size=4, rule="test rule", device=str(device), per_item_bytes=1)

    monkeypatch.setattr(runner_mod, "auto_batch_size", fake_auto)
    loaded = load_suite(
        write(tmp_path, "steps: 2, batch_size: auto, max_batch_size: 64, optimizer: sgd")
    )
    out = run_suite(loaded, tmp_path / "results", console=Console(file=open("/dev/null", "w")))
    run = load_run(out.run_dir)
    train = run.entry("small").train
    assert train is not None and train.train is not None
    assert train.train.batch_size == 4 and train.train.steps == 2
    assert train.train.batch_sizing is not None and train.train.batch_sizing.rule == "test rule"
    assert calls == ["sgd 64"]  # resolved once for train and compress's fine-tuning

    # resumed with the compress phase to redo: the size training used, not a new probe
    def refuse(*a: object, **k: object) -> BatchSizing:
        raise AssertionError("probed again on resume")

    monkeypatch.setattr(runner_mod, "auto_batch_size", refuse)
    (out.run_dir / "entries" / "small" / "compress.json").unlink()
    again = run_suite(loaded, resume=out.run_dir, console=Console(file=open("/dev/null", "w")))
    assert not again.failed and "small/compress" in again.ran


def test_epochs_count_steps_with_the_resolved_batch(tmp_path: Path) -> None:
    e = load_suite(write(tmp_path, "epochs: 3, batch_size: auto")).suite.entries[0]

    class Data:
        train_items = 50

    class Task:
        dataset = Data()

    steps = runner_mod.Runner._train_steps(None, e, Task(), 16)  # type: ignore[arg-type]
    assert steps == 3 * math.ceil(50 / 16)


def test_cuda_memory_reads_the_entrys_own_gpu(monkeypatch) -> None:
    calls: list[tuple[str, object]] = []

    class Props:
        total_memory = 80 * GIB

    def rec(name: str, value: object = None):
        def f(dev: object = None) -> object:
            calls.append((name, dev))
            return value

        return f

    monkeypatch.setattr(torch.cuda, "get_device_properties", rec("props", Props()))
    monkeypatch.setattr(torch.cuda, "synchronize", rec("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", rec("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", rec("peak", 123))
    mem = sizing.CudaMemory(torch.device("cuda:1"))
    mem.reset_peak()
    assert mem.peak_bytes() == 123 and mem.total_bytes() == 80 * GIB
    dev = torch.device("cuda:1")
    # synchronised before each reading, so queued kernels' memory is counted
    assert calls == [("sync", dev), ("reset", dev), ("sync", dev), ("peak", dev), ("props", dev)]


@pytest.mark.parametrize("edited", [0, -5, "abc", None, [4]])
def test_a_hand_edited_recorded_batch_is_measured_again(
    tmp_path: Path, monkeypatch, edited: object
) -> None:
    import json

    sizes = iter([4, 2])

    def fake_auto(*a: object, **k: object) -> BatchSizing:
        return BatchSizing(batch_size=next(sizes), rule="test rule", device="cpu")

    monkeypatch.setattr(runner_mod, "auto_batch_size", fake_auto)
    loaded = load_suite(write(tmp_path, "steps: 2, batch_size: auto"))
    null = Console(file=open("/dev/null", "w"))
    out = run_suite(loaded, tmp_path / "results", console=null)
    train_json = out.run_dir / "entries" / "small" / "train.json"
    rec = json.loads(train_json.read_text())
    rec["train"]["batch_sizing"]["batch_size"] = edited
    train_json.write_text(json.dumps(rec))  # the train phase stays reused (its hash is the same)
    (out.run_dir / "entries" / "small" / "compress.json").unlink()
    again = run_suite(loaded, resume=out.run_dir, console=null)
    assert not again.failed and "small/compress" in again.ran
    assert next(sizes, None) is None  # measured again (2), not trusted and not raised
