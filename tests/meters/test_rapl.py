"""RAPL meter on a fake powercap tree: domains, sockets, wraparound, permission errors."""

from __future__ import annotations

import threading
import time

import pytest

from energybench.meters import rapl
from energybench.meters.base import EnergyMonitor, Source
from energybench.meters.context import MeterContext
from energybench.meters.rapl import (
    RAPL_MISSING_FIX,
    RaplFs,
    RaplMeter,
    RaplUnavailableError,
    discover_domains,
    rapl_status,
    wrap_delta_uj,
)
from energybench.meters.sim.doubles import DeniedRaplFs, FakeRaplTree, ManualClock


@pytest.fixture
def tree(tmp_path) -> FakeRaplTree:
    t = FakeRaplTree(tmp_path / "powercap")
    t.add_package(0)
    t.add_package(1)
    t.add_psys()
    return t


def test_discovers_packages_and_dram_per_socket_only(tree):
    doms = discover_domains(RaplFs(tree.root))
    assert sorted(d.device for d in doms) == ["cpu:package-0", "cpu:package-1", "dram:0", "dram:1"]
    assert {d.kind for d in doms} == {"cpu", "dram"}  # core and psys are not double counted


def test_window_energy_per_domain(tree):
    clock = ManualClock()
    meter = RaplMeter(RaplFs(tree.root), clock=clock, background=False)
    mon = EnergyMonitor([meter], clock=clock)
    mon.begin_window("w")
    tree.add_energy("intel-rapl:0", 120.0)
    tree.add_energy("intel-rapl:1", 80.5)
    tree.add_energy("intel-rapl:0:1", 10.0)
    clock.sleep(2.0)
    m = mon.end_window("w")
    e = {d.device: d for d in m.devices}
    assert e["cpu:package-0"].energy_j == pytest.approx(120.0)
    assert e["cpu:package-1"].energy_j == pytest.approx(80.5)
    assert e["dram:0"].energy_j == pytest.approx(10.0) and e["dram:1"].energy_j == 0.0
    assert e["cpu:package-0"].mean_power_w == pytest.approx(60.0)
    assert e["cpu:package-0"].uncertainty_j == pytest.approx(6.0)
    assert e["dram:0"].uncertainty_j == pytest.approx(1.0)
    assert all(d.source is Source("rapl") and d.complete for d in m.devices)
    assert m.energy_j == pytest.approx(210.5)


def test_wraparound(tmp_path):
    tree = FakeRaplTree(tmp_path)
    rng = 1_000_000_000  # 1 kJ
    zone = tree.add_package(0, dram=False, max_range_uj=rng, energy_uj=rng - 50_000_000)
    clock = ManualClock()
    meter = RaplMeter(RaplFs(tree.root), clock=clock, background=False)
    meter.begin("w")
    tree.add_energy(zone, 300.0)  # crosses the wrap once
    assert tree.energy_uj(zone) == 250_000_000
    (d,) = meter.end("w")
    assert d.energy_j == pytest.approx(300.0)
    assert wrap_delta_uj(rng - 1, 1, rng) == 2


def test_several_wraps_in_a_long_window_are_followed_by_polling(tmp_path):
    tree = FakeRaplTree(tmp_path)
    zone = tree.add_package(0, dram=False, max_range_uj=1_000_000_000)
    meter = RaplMeter(RaplFs(tree.root), clock=ManualClock(), background=False)
    meter.begin("long")
    for _ in range(7):  # 7 x 700 J = 4.9 kJ, almost five wraps of 1 kJ
        tree.add_energy(zone, 700.0)
        meter.poll()
    (d,) = meter.end("long")
    assert d.energy_j == pytest.approx(4900.0)


def test_permission_denied_is_actionable(tree):
    with pytest.raises(RaplUnavailableError) as err:
        RaplMeter(DeniedRaplFs(tree.root))
    assert "chmod -R a+r /sys/class/powercap/intel-rapl" in err.value.fix
    assert "root" in err.value.fix
    st = rapl_status(DeniedRaplFs(tree.root))
    assert not st.ok and "Permission denied" in st.reason and "chmod" in st.fix


def test_read_error_mid_window_is_incomplete_not_raised(tree):
    fs = DeniedRaplFs(tree.root, zones={"intel-rapl:1"}, after_reads=3)
    meter = RaplMeter(fs, clock=ManualClock(), background=False)  # discovery + first poll: 2 reads
    meter.begin("w")  # third read
    tree.add_energy("intel-rapl:0", 50.0)
    recs = {d.device: d for d in meter.end("w")}
    assert recs["cpu:package-0"].complete and recs["cpu:package-0"].energy_j == pytest.approx(50)
    bad = recs["cpu:package-1"]
    assert not bad.complete and "PermissionError" in bad.issues[0]


def test_missing_powercap_says_why(tmp_path):
    st = rapl_status(RaplFs(tmp_path / "nope"))
    assert not st.ok and "does not exist" in st.reason and "estimate" in st.fix
    ok = rapl_status(RaplFs(FakeRaplTree(tmp_path / "pc").root))
    assert not ok.ok and "no package" in ok.reason


def test_a_later_window_counts_only_its_own_joules_and_its_live_power(tmp_path):
    tree = FakeRaplTree(tmp_path)
    zone = tree.add_package(0, dram=False)
    clock = ManualClock()
    meter = RaplMeter(RaplFs(tree.root), clock=clock, background=False)
    meter.begin("first")
    tree.add_energy(zone, 500.0)
    clock.sleep(1.0)
    meter.end("first")
    meter.begin("second")
    tree.add_energy(zone, 30.0)
    clock.sleep(0.5)
    meter.poll()
    assert meter.live_power_w() == 60.0  # 30 J over the 0.5 s since the last read
    (d,) = meter.end("second")
    assert d.energy_j == 30.0 and d.mean_power_w == 60.0  # exact: 30 J in 0.5 s
    assert (d.device, d.kind, d.complete) == ("cpu:package-0", "cpu", True)
    assert d.name and d.name == meter.domains[0].name


def test_failed_reads_are_counted_per_window_and_stop_the_live_power(tmp_path):
    tree = FakeRaplTree(tmp_path)
    zone = tree.add_package(0, dram=False)
    clock = ManualClock()
    fs = DeniedRaplFs(tree.root, after_reads=10**9)
    meter = RaplMeter(fs, clock=clock, background=False)
    meter.begin("w")
    tree.add_energy(zone, 10.0)
    clock.sleep(1.0)
    meter.poll()  # 10 J in 1 s
    assert meter.live_power_w() == 10.0
    fs.after_reads = fs.reads  # every later read is denied
    meter.poll()  # fails
    assert meter.live_power_w() is None
    (d,) = meter.end("w")  # fails again
    assert d.energy_j == 10.0 and not d.complete
    assert d.issues[0].startswith("2 failed read(s) of ")
    (nope,) = meter.end("never")
    assert nope.energy_j is None and not nope.complete
    assert nope.issues == ["window 'never' was not opened on the RAPL meter"]


def test_missing_or_empty_powercap_carries_the_fix(tmp_path):
    for fs in (RaplFs(tmp_path / "nope"), RaplFs(FakeRaplTree(tmp_path / "pc").root)):
        with pytest.raises(RaplUnavailableError) as err:
            discover_domains(fs)
        assert err.value.fix == RAPL_MISSING_FIX
        st = rapl_status(fs)
        assert st.ok is False and st.details == []
        assert (
            st.fix
            == f"{RAPL_MISSING_FIX}. Without RAPL, 'auto' estimates CPU energy (codecarbon model)"
        )


def test_status_lists_every_domain_with_its_socket_and_range(tree):
    st = rapl_status(RaplFs(tree.root))
    assert st.ok is True and (st.reason, st.fix) == ("", "")
    root = str(tree.root)
    pkg_range_j, dram_range_j = 262_143_328_850 / 1e6, 65_712_999_613 / 1e6
    assert st.details == [
        {"device": "cpu:package-0", "zone": "intel-rapl:0", "name": "package-0", "socket": 0,
         "max_energy_range_j": pkg_range_j, "root": root},
        {"device": "dram:0", "zone": "intel-rapl:0:1", "name": "dram", "socket": 0,
         "max_energy_range_j": dram_range_j, "root": root},
        {"device": "cpu:package-1", "zone": "intel-rapl:1", "name": "package-1", "socket": 1,
         "max_energy_range_j": pkg_range_j, "root": root},
        {"device": "dram:1", "zone": "intel-rapl:1:1", "name": "dram", "socket": 1,
         "max_energy_range_j": dram_range_j, "root": root},
    ]  # fmt: skip
    assert [d.socket for d in discover_domains(RaplFs(tree.root))] == [0, 0, 1, 1]


def test_build_passes_the_context_clock_and_background_choice(tree):
    clock = ManualClock()
    meter = rapl.build(MeterContext(rapl_fs=RaplFs(tree.root), clock=clock, background=False))
    assert meter.clock is clock and meter.background is False
    assert meter.fs.root == tree.root
    meter.start()  # background=False: no poll thread
    assert not any(t.name == "energybench-rapl" for t in threading.enumerate())
    polled = rapl.build(MeterContext(rapl_fs=RaplFs(tree.root)))
    assert polled.background is True
    polled.close()


def test_a_meter_polls_in_the_background_by_default(tree):
    fs = DeniedRaplFs(tree.root, after_reads=10**9)  # counts energy_uj reads, denies none
    meter = RaplMeter(fs, poll_s=0.01)
    assert meter.background is True
    reads0 = fs.reads
    meter.start()
    try:
        assert "energybench-rapl" in {t.name for t in threading.enumerate()}
        deadline = time.monotonic() + 5.0
        while fs.reads < reads0 + 5 * 2 * len(meter.domains) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        meter.close()
    assert fs.reads >= reads0 + 5 * 2 * len(meter.domains)  # several polls, not one


def test_a_failing_zone_does_not_stop_the_zones_after_it(tree):
    fs = DeniedRaplFs(tree.root, zones={"intel-rapl:0"}, after_reads=3)  # 0 is read first
    meter = RaplMeter(fs, clock=ManualClock(), background=False)
    meter.begin("w")  # third read of zone 0; the fourth (at the end) fails
    tree.add_energy("intel-rapl:1", 50.0)
    tree.add_energy("intel-rapl:1:1", 5.0)
    recs = {d.device: d for d in meter.end("w")}
    assert not recs["cpu:package-0"].complete
    assert recs["cpu:package-1"].energy_j == 50.0 and recs["dram:1"].energy_j == 5.0
    assert recs["cpu:package-1"].complete and recs["dram:1"].complete


def test_a_window_never_opened_gives_one_incomplete_record_per_domain(tree):
    meter = RaplMeter(RaplFs(tree.root), clock=ManualClock(), background=False)
    recs = meter.end("never")
    assert [d.device for d in recs] == ["cpu:package-0", "dram:0", "cpu:package-1", "dram:1"]
    assert all(d.complete is False and d.energy_j is None for d in recs)
