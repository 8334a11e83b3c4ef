"""Idle twice: a cold baseline before any work and an active one after a warm-up; the split
uses the active one, and idle.json says so (older runs read as split on the cold one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energybench.meters.base import EnergyMonitor
from energybench.meters.sim.doubles import ManualClock
from energybench.records.phases import parse_idle
from energybench.run.idle import measure_baselines, restore, warm_up
from tests.meters.test_energy_monitor import ConstantMeter

FIXTURE = Path(__file__).parents[1] / "fixtures" / "run-0.1.0" / "idle.json"


def _monitor() -> tuple[EnergyMonitor, ConstantMeter, ManualClock]:
    clock = ManualClock()
    meter = ConstantMeter(clock, {"gpu:a": 30.0})  # a GPU resting in a deep power state
    return EnergyMonitor([meter], clock=clock), meter, clock


def test_cold_then_active_and_the_split_uses_the_active_one() -> None:
    mon, meter, clock = _monitor()
    warmed: list[list[int]] = []

    def warm(gpus: list[int]) -> list[str]:  # the context is open: the GPU now idles at 60 W
        warmed.append(gpus)
        meter.powers = {"gpu:a": 60.0}
        return ["cpu", "cuda:0"]

    idle = measure_baselines(mon, 2.0, [0], warm)
    assert warmed == [[0]]
    assert idle["before"]["power_w"] == {"gpu:a": pytest.approx(30.0)}
    assert idle["active"]["power_w"] == {"gpu:a": pytest.approx(60.0)}
    assert idle["active"]["warmed"] == ["cpu", "cuda:0"] and idle["split_basis"] == "active"
    meter.powers = {"gpu:a": 100.0}
    with mon.window("serve") as w:
        clock.sleep(10.0)
    (d,) = w.measurement.devices
    assert (d.idle_power_w, d.static_j, d.dynamic_j) == pytest.approx((60.0, 600.0, 400.0))
    rec = parse_idle(json.loads(json.dumps(idle)))
    assert rec.split_uses == "active" and rec.split_baseline == rec.active


def test_resume_restores_the_baseline_the_split_used() -> None:
    mon, _, _ = _monitor()
    idle = {
        "before": {"seconds": 1, "power_w": {"gpu:a": 30.0}, "temp_c": {"gpu:a": 31.0}},
        "active": {"seconds": 1, "power_w": {"gpu:a": 60.0}},
        "split_basis": "active",
    }
    assert restore(mon, idle) and mon.idle_w == {"gpu:a": 60.0}
    assert mon.idle_temp_c == {"gpu:a": 31.0}  # the cool-down still aims at the cold state
    old = {"before": idle["before"]}  # a run written before the active baseline existed
    assert restore(mon, old) and mon.idle_w == {"gpu:a": 30.0}
    assert not restore(mon, {})


def test_an_old_idle_record_reads_as_split_on_the_cold_baseline() -> None:
    rec = parse_idle(json.loads(FIXTURE.read_text()))
    assert rec.active is None and rec.split_uses == "before"
    assert rec.split_baseline is rec.before
    assert parse_idle({}).split_uses is None


def test_warm_up_runs_on_the_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert warm_up([0, 1], seconds=0.01) == ["cpu"]


def test_the_report_shows_both_baselines_and_which_one_the_split_uses() -> None:
    from energybench.records.store import RunData
    from energybench.report.html import _idle_rows

    idle = {
        "before": {"seconds": 1, "power_w": {"gpu:a": 30.0}},
        "active": {"seconds": 1, "power_w": {"gpu:a": 60.0}},
        "split_basis": "active",
    }
    run = RunData.from_records(Path("r"), {"suite": {}}, {}, idle=idle)
    rows = _idle_rows(run)
    assert [(r["label"].split()[0], r["used"]) for r in rows] == [
        ("cold", False),
        ("active", True),
    ]
    assert "gpu:a 60 W" in rows[1]["power"]
    old = RunData.from_records(Path("r"), {"suite": {}}, {}, idle={"before": idle["before"]})
    assert [r["used"] for r in _idle_rows(old)] == [True]
