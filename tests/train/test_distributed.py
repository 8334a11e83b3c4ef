"""Distributed train phases (issue 14): DDP ranks under torch's elastic launcher, per-rank energy.

Each test launches real ranks (``gloo`` on the CPU) through ``energybench run``; the launch costs
a few torch imports, so the tests launch as few times as they can.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import RunStore, load_run
from energybench.run.checkpoint import load_checkpoint
from energybench.run.runner import Runner
from energybench.suite import load_suite
from energybench.suite.schema import DEFAULT_DIST_TIMEOUT_S
from energybench.train.distributed import TEST_RANK_EXIT_ENV, merge_measurements, shard
from energybench.train.loop import train_steps

SMOKE = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"
DIST = "entries.teacher.train.distributed={nproc_per_node: 2, backend: auto}"
FAST = ["--set", "energy.idle_baseline_s=0.2", "--set", DIST]


def _run(tmp: Path, *extra: str, code: int = 0) -> Path:
    args = ["run", str(SMOKE), "--out", str(tmp / "out"), "--only", "teacher", "--no-report"]
    res = CliRunner().invoke(app, [*args, *FAST, *extra])
    assert res.exit_code == code, res.output
    (run_dir,) = (tmp / "out" / "smoke").glob("*/")
    return run_dir


def _single_process_model(tmp: Path) -> tuple[torch.nn.Module, Runner]:
    """The teacher trained in this process with the suite's settings (the reference)."""
    loaded = load_suite(SMOKE)
    runner = Runner(loaded, RunStore(tmp / "ref"), Console(quiet=True))
    e = loaded.suite.entry("teacher")
    task = runner._task(e)
    torch.manual_seed(e.train.seed)
    model = runner._build_model(e, torch.device("cpu"), task)
    tr = e.train
    train_steps(
        model, task, steps=tr.steps, batch_size=tr.batch_size, lr=tr.lr,
        device=torch.device("cpu"), seed=tr.seed, log_every=tr.log_every,
    )  # fmt: skip
    return model, runner


def test_a_dead_rank_fails_the_phase_then_two_cpu_ranks_sum_and_train_like_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a rank that dies fails the phase with its log; --resume runs the phase again
    monkeypatch.setenv(TEST_RANK_EXIT_ENV, "1")
    run_dir = _run(tmp_path, code=1)
    rec = json.loads((run_dir / "entries/teacher/train.json").read_text())
    assert rec["status"] == "failed"
    assert "rank 1 exited with code 17" in rec["error"]
    log = Path(re.search(r"log: (\S+)", rec["error"]).group(1))
    assert log.is_file() and "exiting on" in log.read_text()
    monkeypatch.delenv(TEST_RANK_EXIT_ENV)
    res = CliRunner().invoke(
        app,
        ["run", str(SMOKE), "--resume", str(run_dir), "--only", "teacher", "--no-report", *FAST],
    )
    assert res.exit_code == 0, res.output
    rec = json.loads((run_dir / "entries/teacher/train.json").read_text())
    assert rec["status"] == "done"
    ranks = rec["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert rec["train"]["distributed"]["backend"] == "gloo"
    assert rec["train"]["distributed"]["world_size"] == 2
    # collectives fail after the documented default instead of hanging (the ranks' spec)
    assert rec["train"]["distributed"]["timeout_s"] == DEFAULT_DIST_TIMEOUT_S == 600.0
    spec = json.loads((run_dir / "entries/teacher/ranks/train.launch.json").read_text())
    assert spec["timeout_s"] == 600.0
    # host devices (CPU/RAM) are metered once per node, by local rank 0 only
    assert ranks[0]["meters_host"] and ranks[0]["host_energy_j"] > 0
    assert not ranks[1]["meters_host"] and ranks[1]["host_energy_j"] is None
    total = sum(r["energy_j"] or 0.0 for r in ranks)
    assert rec["measurement"]["energy_j"] == pytest.approx(total, rel=1e-9)
    assert rec["duration_s"] == max(r["duration_s"] for r in ranks)
    assert rec["measurement"]["duration_s"] == rec["duration_s"]
    # rank 0's model is the checkpoint; it matches a one-process run within tolerance
    dist_model = load_checkpoint(run_dir / "entries/teacher/checkpoints/train.pt")
    ref, runner = _single_process_model(tmp_path)
    got = dist_model.state_dict()
    for name, a in ref.state_dict().items():
        assert torch.allclose(a, got[name], atol=1e-4), name
    e = runner.suite.entry("teacher")
    q_ref = runner._task(e).evaluate(ref.eval(), e.evaluate, torch.device("cpu"))
    ev = load_run(run_dir).phases["teacher"].evaluate
    assert ev is not None
    q_dist = ev.quality
    assert q_dist["psnr_db"] == pytest.approx(q_ref["psnr_db"], abs=0.01)


def test_per_rank_gpu_figures_on_simulated_2xh100(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "--simulate", "2xh100")
    rec = json.loads((run_dir / "entries/teacher/train.json").read_text())
    ranks = rec["ranks"]
    assert [r["gpu"] for r in ranks] == [0, 1]
    for r in ranks:  # each rank charged its own simulated GPU, and only that one
        assert r["is_simulated"] and r["gpu_energy_j"] > 0
        gpus = [d for d in r["devices"] if d["kind"] == "gpu"]
        assert [d["charged"] for d in gpus].count(True) == 1
    charged = [d for d in rec["measurement"]["devices"] if d["kind"] == "gpu" and d["charged"]]
    assert sorted(d["cuda_position"] for d in charged) == [0, 1]
    assert len({d["device"] for d in charged}) == 2  # two distinct GPUs, not one counted twice
    assert rec["measurement"]["energy_j"] == pytest.approx(
        sum(r["energy_j"] for r in ranks), rel=1e-9
    )
    assert "simulated" in rec["measurement"]["flags"]
    exp = CliRunner().invoke(app, ["export", str(run_dir), "--format", "json", "-o", "-"])
    assert exp.exit_code == 0, exp.output


def test_shards_are_equal_contiguous_parts_of_the_global_batch() -> None:
    x, y = torch.arange(8).reshape(8, 1), torch.arange(8)
    parts = [shard((x, y), r, 2) for r in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), x)
    assert parts[1][1].tolist() == [4, 5, 6, 7]


def test_merge_sums_charged_devices_and_keeps_uncharged_ones_once() -> None:
    def meas(dur: float, charged: str, other: str, j: float) -> dict:
        dev = {"kind": "gpu", "name": "g", "source": "nvml-counter"}
        return {
            "name": "w",
            "start_unix_s": 10.0 + dur,
            "duration_s": dur,
            "devices": [
                {**dev, "device": charged, "energy_j": j, "charged": True},
                {**dev, "device": other, "energy_j": 1.0, "charged": False},
            ],
            "flags": [],
        }

    m = merge_measurements("t", [meas(2.0, "a", "b", 5.0), meas(3.0, "b", "a", 7.0)])
    assert m.energy_j == 12.0 and m.duration_s == 3.0 and m.start_unix_s == 12.0
    assert sorted(d.device for d in m.devices) == ["a", "b"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("{nproc_per_node: 2, nnodes: 2}", "multi-node training is not supported"),
        ("{nproc_per_node: 2, timeout_s: 0}", "timeout_s"),
    ],
)
def test_multi_node_and_a_bad_timeout_are_refused_at_validate(setting: str, expected: str) -> None:
    """Before: nnodes > 1 ran every rank on this node; now validate refuses it (exit 2, located)."""
    res = CliRunner().invoke(
        app, ["validate", str(SMOKE), "--set", f"entries.teacher.train.distributed={setting}"]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert expected in res.output and "distributed" in res.output


def test_a_timeout_reaches_the_ranks_spec() -> None:
    from energybench.suite.schema import DistributedSettings
    from energybench.train.distributed import dist_timeout_s

    assert dist_timeout_s(DistributedSettings(timeout_s=30)) == 30.0
    assert dist_timeout_s(DistributedSettings()) == 600.0
    assert "timeout_s" not in DistributedSettings().model_dump()  # older hashes unchanged
