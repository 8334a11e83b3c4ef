"""The CUDA path on a real NVIDIA GPU (``pytest -m gpu``; skipped where CUDA is absent).

What CPU tests cannot show: training, serving, ``torch.compile`` and autocast really run on the
GPU the entry names; an entry on ``cuda:1`` leaves GPU 0 alone; DDP trains with NCCL on two
GPUs; a GPU in MIG mode is reported as shared. Each test runs a tiny suite through the CLI (a
few seconds of work) and reads what the run recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from energybench.cli import app

CUDA = torch.cuda.is_available()
GPUS = torch.cuda.device_count() if CUDA else 0
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="no CUDA GPU here")]
two_gpus = pytest.mark.skipif(GPUS < 2, reason="needs two CUDA GPUs")

SUITE = """\
name: gpu-check
defaults:
  device: DEVICE
  dataset:
    name: photos
    params: {patch_size: 32, test_crop: 64x64, serve_lr: 64x64, seq_size: 64x64, seq_frames: 4}
  train: {steps: 5, batch_size: 4}
  evaluate: {max_items: 1}
  serve:
    - {name: stream, scenario: stream, fps: 50, frames: 20, warmup: 2}
    - {name: throughput, scenario: throughput, batch_sizes: [1, 4], warmup: 2, iterations: 8}
energy: {idle_baseline_s: 1, min_window_s: 0.5, min_window_iters: 8, trials: 1, max_trials: 1}
metric: {quality: psnr_db, iec_scenario: stream}
entries:
  - name: ckbg
    model: {name: ckbg, params: {channels: 8, blocks: 1}}
EXTRA"""

EXTRA = """\
  - name: ckbg-fp16
    model: {name: ckbg, params: {channels: 8, blocks: 1}}
    inherit: ckbg
    backend: {name: eager, autocast: fp16}
  - name: ckbg-bf16
    model: {name: ckbg, params: {channels: 8, blocks: 1}}
    inherit: ckbg
    backend: {name: eager, autocast: bf16}
  - name: ckbg-compile
    model: {name: ckbg, params: {channels: 8, blocks: 1}}
    inherit: ckbg
    backend: {name: compile}
"""


def _run(tmp: Path, device: str, extra: str = "", *args: str) -> Path:
    suite = tmp / "gpu-check.yaml"
    suite.write_text(textwrap.dedent(SUITE).replace("DEVICE", device).replace("EXTRA", extra))
    res = CliRunner().invoke(
        app, ["run", str(suite), "--out", str(tmp / "out"), "--no-report", *args]
    )
    assert res.exit_code == 0, res.output
    (run_dir,) = (tmp / "out" / "gpu-check").glob("*/")
    return run_dir


def _rec(run_dir: Path, entry: str, phase: str) -> dict[str, Any]:
    return json.loads((run_dir / "entries" / entry / f"{phase}.json").read_text())


def _charged_gpus(window: dict[str, Any]) -> set[int]:
    return {
        d["cuda_position"]
        for d in window["devices"]
        if d.get("kind") == "gpu" and d.get("charged", True)
    }


def test_train_serve_compile_and_autocast_run_on_the_gpu(tmp_path: Path) -> None:
    run = _run(tmp_path, "cuda:0", EXTRA)
    train = _rec(run, "ckbg", "train")
    assert train["status"] == "done" and train["memory"]["device"] == "cuda:0"
    assert train["memory"]["peak_allocated_bytes"] > 0
    assert _charged_gpus(train["measurement"]) == {0}
    for entry in ("ckbg", "ckbg-fp16", "ckbg-bf16", "ckbg-compile"):
        serve = _rec(run, entry, "serve")
        assert serve["status"] == "done" and serve["device"] == "cuda:0", entry
        assert serve["memory"]["peak_allocated_bytes"] > 0
        tp = serve["scenarios"]["throughput"]
        assert tp["items_per_s"]["mean"] > 0 and tp["energy_per_item_j"]["mean"] > 0
        assert _rec(run, entry, "evaluate")["quality"]["psnr_db"] > 10, entry


SCRIPT = """
import sys, torch
from energybench.run.devices import device_scope, memory_peaks
from energybench.serve.trials import WindowTimer
dev = torch.device("cuda", 1)
with device_scope(dev), memory_peaks(dev) as peaks:
    x = torch.randn(256, 256, device=dev)
    timer = WindowTimer(dev)
    for _ in range(20):
        timer.run(lambda: x @ x)
    lat = timer.latencies_s()
print(torch.cuda.memory_reserved(0), peaks.read()["peak_allocated_bytes"], len(lat), min(lat))
"""


@two_gpus
def test_an_entry_on_cuda1_leaves_gpu0_alone(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    reserved0, peak1, n, fastest = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    assert reserved0 == 0 and peak1 > 0 and n == 20 and fastest > 0
    run = _run(tmp_path, "cuda:1")
    serve = _rec(run, "ckbg", "serve")
    assert serve["device"] == "cuda:1" and serve["memory"]["device"] == "cuda:1"
    trial = serve["scenarios"]["stream"]["trials"][0]["measurement"]
    assert _charged_gpus(trial) == {1}


@two_gpus
def test_ddp_trains_with_nccl_on_two_gpus(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        "cuda:0",
        "",
        "--set",
        "entries.ckbg.train.distributed={nproc_per_node: 2, timeout_s: 120}",
    )
    train = _rec(run, "ckbg", "train")
    dist = train["train"]["distributed"]
    assert dist["backend"] == "nccl" and dist["world_size"] == 2 and dist["timeout_s"] == 120
    assert sorted(r["device"] for r in train["ranks"]) == ["cuda:0", "cuda:1"]
    assert _charged_gpus(train["measurement"]) == {0, 1}


def _mig_on_gpu0() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetMigMode(pynvml.nvmlDeviceGetHandleByIndex(0))[0] == 1
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML, or a GPU without MIG support
        return False


@pytest.mark.skipif(not _mig_on_gpu0(), reason="GPU 0 is not in MIG mode")
def test_a_mig_gpu_is_reported_as_shared(tmp_path: Path) -> None:
    run = _run(tmp_path, "cuda:0")
    stream = _rec(run, "ckbg", "serve")["scenarios"]["stream"]
    assert stream["is_shared"] and any(f.startswith("shared-device") for f in stream["flags"])
