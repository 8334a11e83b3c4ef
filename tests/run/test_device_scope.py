"""Every phase of an entry runs under its own GPU: a patched ``torch.cuda`` records which GPU
each call is about and fails when one is wrong (an entry on ``cuda:1`` must never queue work,
read memory, synchronise or empty a cache on ``cuda:0``)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from energybench.records.store import RunStore, load_run
from energybench.report.html import memory_rows
from energybench.run.context import PhaseContext
from energybench.run.runner import Runner
from energybench.suite.load import load_suite
from energybench.suite.schema import Entry
from tests.helpers.cuda import CudaRecorder, WrongDevice

SUITE = """\
name: devices
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 1, batch_size: 2}
energy: {idle_baseline_s: 0, min_window_s: 0, meters: [estimate]}
entries:
  - name: second
    device: DEVICE
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    train: TRAIN
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
"""


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest's environment snapshot asks the (absent) driver for GPU names."""
    monkeypatch.setattr("energybench.run.runner.snapshot", lambda *a, **k: {})


def _runner(tmp_path: Path, device: str = "cuda:1", train: str = "{steps: 1}") -> Runner:
    path = tmp_path / "devices.yaml"
    path.write_text(textwrap.dedent(SUITE).replace("DEVICE", device).replace("TRAIN", train))
    loaded = load_suite(path)
    store = RunStore.create(tmp_path / "out", loaded.suite.name, loaded.config_hash)
    return Runner(loaded, store, Console(quiet=True))


def _fake_phase(seen: list[tuple[str, int]]) -> Any:
    """A phase that works the way kernels do: on the *current* GPU, inside a window."""

    def run_phase(self: Runner, e: Entry, phase: str, model: Any, task: Any, dev: Any) -> Any:
        with self.meter.window(f"{e.name}/{phase}"):
            torch.cuda.synchronize()  # no device named: the current one, as a launch would
            seen.append((phase, torch.cuda.current_device()))
        self._record(e, phase, "done", measurement=None)
        return model

    return run_phase


def test_every_phase_runs_on_the_entrys_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cuda = CudaRecorder(monkeypatch, count=2, expect=1)
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(Runner, "_run_phase", _fake_phase(seen))
    runner = _runner(tmp_path)
    outcome = runner.run()
    assert outcome.ok, outcome.failed  # a call about cuda:0 raises WrongDevice: the entry fails
    assert seen == [(p, 1) for p in ("train", "compress", "serve", "evaluate")]
    # window edges synchronise the charged GPU, named explicitly
    assert cuda.names("synchronize").count(1) >= 8
    assert cuda.names("reset_peak") == [1, 1, 1, 1]  # peaks reset per phase, on its GPU
    assert cuda.names("empty_cache") == [1]  # the entry's cache emptied once it is done
    run = load_run(runner.store.root)
    rows = memory_rows(run)
    assert {(r["phase"], r["device"]) for r in rows} == {
        (p, "cuda:1") for p in ("train", "compress", "serve", "evaluate")
    }
    assert {(r["allocated"], r["reserved"]) for r in rows} == {(2000, 4000)}


def test_a_call_about_another_gpu_is_caught(monkeypatch: pytest.MonkeyPatch):
    """The seam itself: work on the current GPU (0) while the entry is on cuda:1 fails."""
    CudaRecorder(monkeypatch, count=2, expect=1)
    with pytest.raises(WrongDevice, match="cuda:0"):
        torch.cuda.synchronize()
    with torch.cuda.device(1):
        torch.cuda.synchronize()


def test_ddp_parent_touches_no_gpu_while_the_ranks_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cuda = CudaRecorder(monkeypatch, count=2)
    during: list[list[tuple[str, int]]] = []

    def fake_ddp(ctx: PhaseContext, e: Entry, steps: int) -> tuple[Any, dict[str, Any]]:
        during.append(list(cuda.calls))
        raise RuntimeError("ranks stop here")

    monkeypatch.setattr("energybench.train.distributed.train_distributed", fake_ddp)
    runner = _runner(
        tmp_path, "cuda:0", "{steps: 1, batch_size: 2, distributed: {nproc_per_node: 2}}"
    )
    outcome = runner.run()
    assert "ranks stop here" in outcome.failed["second"]
    assert during and during[0] == [], f"the parent used the ranks' GPUs: {during[0]}"
    rec = runner.store.read_phase("second", "train")
    assert rec["status"] == "failed" and rec["memory"] is None  # no parent figure for ranks


def test_served_models_are_released_after_their_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cuda = CudaRecorder(monkeypatch, count=2, expect=1)
    runner = _runner(tmp_path)
    runner._served = {"a": torch.nn.Linear(1, 1), "b": torch.nn.Linear(1, 1)}
    later = runner.suite.entries[0].model_copy(update={"name": "b"})
    dropped = runner.release_served([later], torch.device("cuda", 1))
    assert dropped == ["a"] and list(runner._served) == ["b"]
    assert cuda.names("empty_cache") == [1]
