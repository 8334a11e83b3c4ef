"""Containers: NVML reports host pids; the run's own work is never "another process"."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from energybench.meters import nvml_plugin
from energybench.meters.base import FLAG_SHARED_DEVICE, FLAG_SHARING_NOT_CHECKED, EnergyMonitor
from energybench.meters.context import MeterContext
from energybench.meters.factory import probe_meters
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.pidns import (
    PROC_PID_INIT_INO,
    PidView,
    ProcView,
    nspid,
    pid_view,
    run_keys,
)
from energybench.meters.rapl import RaplFs
from energybench.meters.sim.doubles import (
    CONTAINER_NS_INODE,
    FakeProcView,
    ManualClock,
    bare_metal_proc,
    docker_proc,
)
from energybench.meters.sim.fakenvml import NVML_ERROR_NO_PERMISSION, FakeGpu, FakeNvml, Fault
from tests.helpers.nvml import nvml_meter, run_for

ME = os.getpid()
HOST_ME = 3_100_000 + ME % 1000  # the run's pid as the host (and NVML) sees it
OTHER = 3_200_000  # another container's process, host pid


def host_visible_proc() -> FakeProcView:
    """A process in a PID namespace with the host's /proc: NSpid shows the host pid first."""
    return FakeProcView(
        {"self": [HOST_ME, ME]}, {"self": CONTAINER_NS_INODE, "1": PROC_PID_INIT_INO}
    )


def window(clock, proc, pids, seconds: float = 2.0, **gpu_kw):
    """One 2 s window at 200 W; NVML reports the run's host pid unless on bare metal."""
    isolated = pid_view(proc).isolated
    fake = FakeNvml(
        [FakeGpu(power=200.0, processes=[(p, 0.0, math.inf) for p in pids], **gpu_kw)],
        clock,
        host_pids={ME: HOST_ME} if isolated else {},
    )
    meter = nvml_meter(fake, clock, proc=proc)
    mon = EnergyMonitor([meter], sync=fake.synchronize, clock=clock)
    mon.start()
    mon.begin_window("w")
    run_for(clock, meter, seconds)
    return mon.end_window("w"), meter


# ------------------------------------------------------------------ reading /proc
def test_nspid_parsing_and_the_real_proc_reader(tmp_path: Path):
    assert nspid("Name:\tx\nNSpid:\t812\t7\n") == [812, 7]
    assert nspid("Name:\tx\n") == [] and nspid(None) == []
    (tmp_path / "self" / "ns").mkdir(parents=True)
    (tmp_path / "self" / "status").write_text("Pid:\t7\nNSpid:\t812\t7\n")
    (tmp_path / "self" / "ns" / "pid").symlink_to("pid:[4026532999]")
    proc = ProcView(tmp_path)
    assert nspid(proc.status("self")) == [812, 7]
    assert proc.pid_ns_inode("self") == 4026532999
    assert proc.status("1") is None and proc.pid_ns_inode("1") is None
    (tmp_path / "2" / "ns").mkdir(parents=True)
    (tmp_path / "2" / "ns" / "pid").symlink_to("net:[1]")
    assert proc.pid_ns_inode("2") is None


def test_the_namespace_is_detected_by_nspid_or_by_the_namespace_link():
    assert pid_view(bare_metal_proc(ME)) == PidView(False, True, ME)
    docker = pid_view(docker_proc(ME))  # one NSpid, a non-initial namespace
    assert docker == PidView(True, False, None) and "PID namespace" in docker.note
    assert pid_view(host_visible_proc()) == PidView(True, True, HOST_ME)
    assert pid_view(host_visible_proc()).note == ""
    # host pid listed, but /proc is not the host's (or unreadable): not a host pid
    nested = FakeProcView({"self": [40, 7]}, {"self": CONTAINER_NS_INODE, "1": 4026532000})
    assert pid_view(nested) == PidView(True, False, None)
    unread = FakeProcView({"self": [40, 7]}, {})
    assert pid_view(unread) == PidView(True, False, None)
    no_link = FakeProcView({"self": [ME]}, {})  # no namespace link and one NSpid: host
    assert pid_view(no_link) == PidView(False, True, ME)


def test_run_keys_add_host_pids_only_where_visible():
    child = ME + 1
    proc = FakeProcView(
        {"self": [HOST_ME, ME], str(child): [HOST_ME + 1, child]},
        {"self": CONTAINER_NS_INODE, "1": PROC_PID_INIT_INO},
    )
    view = pid_view(proc)
    assert run_keys({ME, child}, view, proc) == {ME, child, HOST_ME, HOST_ME + 1}
    assert run_keys({ME}, pid_view(docker_proc(ME)), docker_proc(ME)) == {ME}
    assert run_keys({ME}, pid_view(bare_metal_proc(ME)), bare_metal_proc(ME)) == {ME}


# ------------------------------------------------------------------ the meter
def test_in_docker_the_runs_host_pid_is_not_checked_never_shared(clock):
    m, meter = window(clock, docker_proc(ME), [ME])
    d = m.devices[0]
    assert not d.shared and not m.is_shared and d.complete
    assert not d.sharing_checked
    assert f"{FLAG_SHARING_NOT_CHECKED}:{d.device}" in m.flags
    assert f"{FLAG_SHARED_DEVICE}:{d.device}" not in m.flags
    assert any(f"NVML pids {HOST_ME} seen in this window" in i for i in d.issues)
    assert d.energy_j == pytest.approx(400.0, rel=0.02)  # measured all the same
    notes = meter.describe()[0]["notes"]
    assert any("PID namespace" in n and "sharing not checked" in n for n in notes)


def test_in_docker_a_window_without_unknown_pids_is_checked(clock):
    m, _ = window(clock, docker_proc(ME), [])  # no CUDA context yet: nothing to match
    d = m.devices[0]
    assert d.sharing_checked and not d.shared and m.flags == []


def test_with_the_host_pid_visible_the_run_is_matched_and_others_are_shared(clock):
    m, _ = window(clock, host_visible_proc(), [ME])
    d = m.devices[0]
    assert d.sharing_checked and not d.shared and m.flags == []
    m, _ = window(clock, host_visible_proc(), [ME, OTHER])
    d = m.devices[0]
    assert d.shared and d.sharing_checked
    assert any(f"pids {OTHER}" in i for i in d.issues)
    assert str(HOST_ME) not in next(i for i in d.issues if "pids" in i)


def test_on_bare_metal_an_unmatched_pid_is_another_process(clock):
    m, _ = window(clock, bare_metal_proc(ME), [ME])
    assert not m.devices[0].shared and m.devices[0].sharing_checked
    m, _ = window(clock, bare_metal_proc(ME), [ME, OTHER])
    d = m.devices[0]
    assert d.shared and d.sharing_checked


def test_no_permission_on_the_process_list_is_not_checked(clock):
    fault = Fault("nvmlDeviceGetComputeRunningProcesses", 0.0, code=NVML_ERROR_NO_PERMISSION)
    m, meter = window(clock, bare_metal_proc(ME), [OTHER], faults=[fault])
    d = m.devices[0]
    assert not d.shared and not d.sharing_checked and d.complete
    assert f"{FLAG_SHARING_NOT_CHECKED}:{d.device}" in m.flags
    assert any("no permission" in i and "sharing not checked" in i for i in d.issues)


def test_a_transient_process_list_error_is_not_a_verdict(clock):
    fault = Fault("nvmlDeviceGetComputeRunningProcesses", 0.0, 0.5, code=10)  # a timeout
    m, _ = window(clock, bare_metal_proc(ME), [ME], faults=[fault])
    assert m.devices[0].sharing_checked and not m.devices[0].shared


def test_meters_simulate_container_says_sharing_is_not_checked(tmp_path: Path):
    nvml = probe_meters(simulate="h100-container", rapl_fs=RaplFs(tmp_path), probe_s=0.05)[0]
    assert nvml.ok and nvml.details[0]["other_processes"] is None
    assert "PID namespace" in nvml.fix and "sharing not" in nvml.fix
    plain = probe_meters(simulate="h100", rapl_fs=RaplFs(tmp_path), probe_s=0.05)[0]
    assert plain.details[0]["other_processes"] == [] and "PID namespace" not in plain.fix
    shared = probe_meters(simulate="h100-shared", rapl_fs=RaplFs(tmp_path), probe_s=0.05)[0]
    assert shared.details[0]["other_processes"] == [4_242_424]


def test_the_probe_matches_a_childs_host_pid_through_the_given_proc(monkeypatch):
    # a child of the run, seen by NVML under its host pid: the probe's sharing check reads the
    # child's NSpid from the context's /proc (not the real one), so it is the run's own work
    child = ME + 1
    proc = FakeProcView(
        {"self": [HOST_ME, ME], str(child): [HOST_ME + 1, child]},
        {"self": CONTAINER_NS_INODE, "1": PROC_PID_INIT_INO},
    )
    monkeypatch.setattr(nvml_plugin, "run_pids", lambda: {ME, child})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu = FakeGpu(processes=[(HOST_ME, 0.0, math.inf), (HOST_ME + 1, 0.0, math.inf)])
    backend = PynvmlBackend(FakeNvml([gpu], ManualClock()))
    st = nvml_plugin.probe(MeterContext(gpu_backend=backend, proc=proc, probe_s=0))
    assert st.details[0]["other_processes"] == [] and "other processes" not in st.fix
