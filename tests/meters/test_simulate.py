"""``--simulate PROFILE``: profiles, the CPU load model, build_monitor(simulate=...), the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.meters.base import FLAG_SIMULATED, SYSTEM_CLOCK
from energybench.meters.estimate import EstimateMeter
from energybench.meters.factory import (
    SIMULATE_PROFILES,
    UnknownProfileError,
    build_monitor,
    simulated_gpu_count,
)
from energybench.meters.nvml import NvmlMeter
from energybench.meters.rapl import RaplFs
from energybench.meters.sim import profiles as sim_mod
from energybench.meters.sim.fakenvml import FakeNvml
from energybench.meters.sim.profiles import CpuLoadPower
from energybench.suite.schema import EnergySettings
from tests.helpers.nvml import run_for


class Busy:
    """CPU seconds of a process whose ``threads`` threads are all busy while ``on`` is True."""

    def __init__(self, clock, threads: int = 2) -> None:
        self.clock, self.threads, self.on = clock, threads, False
        self.cpu, self.t = 0.0, clock.monotonic()

    def __call__(self) -> float:
        now = self.clock.monotonic()
        if self.on:
            self.cpu += self.threads * (now - self.t)
        self.t = now
        return self.cpu


@pytest.fixture
def busy(clock, monkeypatch) -> Busy:
    b = Busy(clock)
    monkeypatch.setattr(sim_mod, "process_cpu_s", b)
    monkeypatch.setattr(sim_mod, "default_threads", lambda: 2)
    return b


def build(profile: str, clock, tmp_path, cuda=None, **settings_kw):
    n = simulated_gpu_count(profile)
    return build_monitor(
        EnergySettings(sample_period_s=0.05, min_window_s=0, **settings_kw),
        list(range(n)) if cuda is None else cuda,
        tmp_path,
        simulate=profile,
        rapl_fs=RaplFs(tmp_path / "no-powercap"),
        clock=clock,
        probe_s=0,
        background=False,
    )


def nvml(mon) -> NvmlMeter:
    return next(m for m in mon.meters if isinstance(m, NvmlMeter))


def test_profiles_and_counts():
    assert {"h100", "a100", "2xh100", "gh200", "h100-mig", "h100-shared"} <= set(SIMULATE_PROFILES)
    assert [simulated_gpu_count(p) for p in ("h100", "2xh100", "gh200")] == [1, 2, 1]
    with pytest.raises(UnknownProfileError) as exc:
        simulated_gpu_count("h200")
    assert isinstance(exc.value, ValueError)
    assert all(p in str(exc.value) for p in SIMULATE_PROFILES)
    with pytest.raises(ValueError, match="gh200"):
        build_monitor(EnergySettings(), [0], None, simulate="nope")


def test_load_model_follows_cpu_utilisation(clock):
    b = Busy(clock, threads=1)
    p = CpuLoadPower(70.0, 700.0, clock=clock, threads=2, cpu_s=b, t0=clock.monotonic())
    clock.sleep(1.0)
    assert p.energy_j(1.0) == pytest.approx(70.0)
    b.on = True
    clock.sleep(1.0)  # one of two threads busy: u = 0.5
    assert p.energy_j(2.0) - p.energy_j(1.0) == pytest.approx(385.0, rel=0.02)
    assert p.utilisation(10.0, 1.0) == 1.0 and p.utilisation(-1.0, 1.0) == 0.0
    assert p.utilisation(1.0, 0.0) == 0.0
    e = p.energy_j(2.0)
    clock.sleep(0.5)
    assert p.energy_j(2.0) == e  # the past never changes: counters cannot go backwards


def test_h100_profile_measures_the_load_model_through_the_real_adapter(clock, busy, tmp_path):
    mon = build("h100", clock, tmp_path)
    assert mon.sync.__func__ is FakeNvml.synchronize  # windows synchronise with the fake
    meter = nvml(mon)
    assert [type(m) for m in mon.meters] == [NvmlMeter, EstimateMeter]  # the host CPU is real
    mon.start()
    run_for(clock, meter, 1.0)
    mon.begin_window("idle", gpus=[0])
    run_for(clock, meter, 2.0)
    idle = mon.end_window("idle")
    busy.on = True
    mon.begin_window("busy", gpus=[0])
    run_for(clock, meter, 2.0)
    hot = mon.end_window("busy")
    g_idle = next(d for d in idle.devices if d.kind == "gpu")
    g_hot = next(d for d in hot.devices if d.kind == "gpu")
    assert g_idle.energy_j == pytest.approx(140.0, rel=0.05)
    assert g_hot.energy_j == pytest.approx(1400.0, rel=0.05)
    assert g_hot.simulated and g_hot.cuda_position == 0 and FLAG_SIMULATED in hot.flags
    assert hot.is_simulated and "H100" in g_hot.name
    mon.close()


def test_2xh100_profile_charges_each_entry_for_its_gpus(clock, busy, tmp_path):
    mon = build("2xh100", clock, tmp_path)
    meter = nvml(mon)
    mon.start()
    mon.begin_window("w", gpus=[1])
    run_for(clock, meter, 1.0)
    m = mon.end_window("w")
    gpus = [d for d in m.devices if d.kind == "gpu"]
    assert [d.cuda_position for d in gpus] == [0, 1]
    assert [d.charged for d in gpus] == [False, True]
    assert all(d.simulated for d in gpus)


def test_gh200_profile_has_no_cpu_estimate(clock, busy, tmp_path):
    mon = build("gh200", clock, tmp_path, meters=["auto", "estimate"])
    assert [type(m) for m in mon.meters] == [NvmlMeter]
    mon.start()
    mon.begin_window("w")
    run_for(clock, nvml(mon), 1.0)
    m = mon.end_window("w")
    (d,) = m.devices
    assert d.kind == "module" and d.simulated and not m.is_estimate
    assert d.energy_j == pytest.approx(150.0, rel=0.05)


@pytest.mark.parametrize("profile,reason", [("h100-mig", "MIG"), ("h100-shared", "pids")])
def test_shared_profiles_are_marked_shared(clock, busy, tmp_path, profile, reason):
    mon = build(profile, clock, tmp_path)
    mon.start()
    mon.begin_window("w")
    run_for(clock, nvml(mon), 1.5)
    m = mon.end_window("w")
    d = next(d for d in m.devices if d.kind == "gpu")
    assert d.shared and m.is_shared and any(reason in i for i in d.issues)


def test_a100_profile_samples_instantaneous_power_usage(clock, busy, tmp_path):
    """Uncertainty follows the channel's nature: GA100's nvmlDeviceGetPowerUsage is
    instantaneous, so the integrated channel's resolution is the sensor period, not 1 s."""
    mon = build("a100", clock, tmp_path)
    meter = nvml(mon)
    mon.start()
    info = meter.describe()[0]
    assert info["power_channel"] == "average" and info["power_usage_average_s"] == 0.0
    assert meter.effective_power_period_s(meter._gpus[0]) == pytest.approx(0.1)
    mon.begin_window("w")
    run_for(clock, meter, 1.0)
    d = mon.end_window("w").devices[0]
    assert any("instantaneous on this GPU" in i for i in d.issues)
    h100 = nvml(build("h100", clock, tmp_path / "h"))
    h100.start()
    h100._gpus[0].power_channel = "average"  # as if the instant field were missing
    assert h100.effective_power_period_s(h100._gpus[0]) == pytest.approx(1.0)


def test_simulated_monitor_on_the_real_clock(tmp_path):
    mon = build_monitor(
        EnergySettings(sample_period_s=0.02, min_window_s=0),
        [0],
        tmp_path,
        simulate="h100",
        rapl_fs=RaplFs(tmp_path / "none"),
        probe_s=0,
    )
    with mon:
        with mon.window("w") as w:
            SYSTEM_CLOCK.sleep(0.3)
    d = next(d for d in w.measurement.devices if d.kind == "gpu")
    assert d.simulated and d.energy_j is not None and 0.3 * 60 < d.energy_j < 0.4 * 700
    assert (tmp_path / "power-nvml.csv").exists()


def test_cli_meters_simulate():
    runner = CliRunner()
    res = runner.invoke(app, ["meters", "--simulate", "gh200"])
    assert res.exit_code == 0, res.output
    assert "simulated: gh200" in res.output and "superchip" in res.output
    assert "not used here" in res.output
    bad = runner.invoke(app, ["meters", "--simulate", "h200"])
    assert bad.exit_code != 0 and "h100-shared" in bad.output
    help_text = runner.invoke(app, ["meters", "--help"]).output
    assert all(p in help_text for p in SIMULATE_PROFILES)


def test_only_the_gpus_of_the_running_entry_draw_load(clock) -> None:
    from energybench.meters.sim.profiles import BusyGpus

    b = Busy(clock, threads=1)
    gpus = BusyGpus()
    t0 = clock.monotonic()
    p0, p1 = (
        CpuLoadPower(
            70.0, 700.0, clock=clock, threads=1, cpu_s=b, t0=t0, busy=lambda i=i: gpus.busy(i)
        )
        for i in (0, 1)
    )
    b.on = True
    gpus.set(frozenset({1}))  # the monitor's charging block of an entry on cuda:1
    clock.sleep(1.0)
    assert p0.energy_j(1.0) == pytest.approx(70.0)  # unused GPU: idle power
    assert p1.energy_j(1.0) == pytest.approx(700.0, rel=0.02)
    gpus.set(None)  # no charging block: every GPU follows the load
    clock.sleep(1.0)
    assert p0.energy_j(2.0) - p0.energy_j(1.0) == pytest.approx(700.0, rel=0.02)
