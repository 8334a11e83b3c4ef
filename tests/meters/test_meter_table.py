"""The meter table and the NVML plug-in's plumbing: what reaches each meter from the settings
and the seams, what ``probe`` reports, and the unmeasured stand-in. Written against the mutation
survivors of ``factory.py``, ``plugins.py`` and ``nvml_plugin.py``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from energybench.meters import estimate, factory, nvml_plugin
from energybench.meters.base import SYSTEM_CLOCK, MeterStatus
from energybench.meters.context import MeterContext
from energybench.meters.estimate import codecarbon_spec
from energybench.meters.factory import UnmeasuredMeter, build_monitor, probe_meters
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import NvmlUnavailableError, PynvmlBackend
from energybench.meters.pidns import pid_view
from energybench.meters.plugins import (
    ESTIMATED,
    MEASURED,
    METERS,
    MeterPlugin,
    MeterRegistry,
    MeterUnavailableError,
    Source,
)
from energybench.meters.rapl import RaplFs
from energybench.meters.sim.doubles import FakeRaplTree, ManualClock, docker_proc
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml
from energybench.meters.sim.fakepower import PowerTrace
from energybench.plugins.registry import Registry
from energybench.suite.schema import EnergySettings


class NoNvml:
    def __init__(self, *_: object) -> None:
        raise NvmlUnavailableError("NVML could not be initialised (test)", "install a driver")


def _backend(*gpus: FakeGpu, clock: object = None) -> PynvmlBackend:
    return PynvmlBackend(FakeNvml(list(gpus), clock or ManualClock()))  # type: ignore[arg-type]


def _ctx(backend: PynvmlBackend, **kw: object) -> MeterContext:
    base: dict[str, object] = {
        "settings": EnergySettings(),
        "gpu_backend": backend,
        "probe_s": 0,
        "background": False,
    }
    return MeterContext(**{**base, **kw})  # type: ignore[arg-type]


# ---------------------------------------------------------------- build_monitor wiring
def test_the_monitor_gets_the_settings_clock_and_a_cuda_sync(tmp_path, monkeypatch):
    monkeypatch.setattr(nvml_plugin, "PynvmlBackend", NoNvml)
    calls: list[list[int]] = []

    def fake_sync(devices):
        calls.append(list(devices))
        return "synced"

    monkeypatch.setattr(factory, "_cuda_sync", fake_sync)
    clock = ManualClock()
    settings = EnergySettings(min_window_s=1.5)
    none = RaplFs(tmp_path / "none")
    mon = build_monitor(settings, [0, 1], None, rapl_fs=none, clock=clock, background=False)
    assert mon.min_window_s == 1.5 and mon.clock is clock
    assert mon.sync == "synced" and calls == [[0, 1]]
    given = build_monitor(settings, [0], None, rapl_fs=none, sync=print, background=False)
    assert given.sync is print and len(calls) == 1  # a given sync is kept
    with_backend = build_monitor(
        settings, [0], None, rapl_fs=none, gpu_backend=_backend(FakeGpu()), background=False
    )
    assert with_backend.sync != "synced" and len(calls) == 1  # a seam backend: no CUDA sync
    cpu_only = build_monitor(settings, None, None, rapl_fs=none, background=False)
    assert len(calls) == 1 and cpu_only._on_charging is None


def test_simulated_runs_tell_the_simulator_which_gpus_are_charged(tmp_path):
    mon = build_monitor(
        EnergySettings(min_window_s=0),
        [0],
        None,
        simulate="2xh100",
        rapl_fs=RaplFs(tmp_path / "none"),
        clock=ManualClock(),
        probe_s=0,
        background=False,
    )
    assert mon._on_charging is not None
    (nv,) = [m for m in mon.meters if isinstance(m, NvmlMeter)]
    assert nv.simulated and [d["cuda_position"] for d in nv.describe()] == [0]


def test_the_nvml_meter_gets_every_setting_and_seam(tmp_path):
    backend = _backend(FakeGpu(), FakeGpu())
    clock, pids = ManualClock(), (lambda: {1})
    settings = EnergySettings(sample_period_s=0.2, cross_check_threshold=0.3)
    ctx = _ctx(
        backend,
        settings=settings,
        cuda_devices=(1,),
        trace_dir=tmp_path,
        clock=clock,
        probe_s=0.25,
        own_pids=pids,
        env="0,1",
    )
    nv = nvml_plugin.build(ctx)
    assert nv.driver_version == backend.driver_version() == "550.54.15"
    assert nv.sample_period_s == 0.2 and nv.cross_check_threshold == 0.3
    assert nv.trace_path == tmp_path / "power-nvml.csv" and nv.clock is clock
    assert nv.probe_s == 0.25 and nv.background is False and nv._own_pids is pids
    assert nv.simulated is False
    proc = docker_proc(4242)
    assert nvml_plugin.build(_ctx(_backend(FakeGpu()), forced=True, proc=proc))._proc is proc
    assert (
        nvml_plugin.build(_ctx(_backend(FakeGpu()), forced=True, simulated=True)).simulated is True
    )


def test_nvml_build_selects_by_the_context_env_and_torch_uuids(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    backend = _backend(FakeGpu(), FakeGpu())
    uuids = [g.uuid() for g in backend.devices()]
    by_env = nvml_plugin.build(_ctx(backend, cuda_devices=(0,), env="1"))
    assert [d["uuid"] for d in by_env.describe()] == [uuids[1]]
    by_torch = nvml_plugin.build(
        _ctx(_backend(FakeGpu(), FakeGpu()), cuda_devices=(0,), env="0,1", torch_uuids=[uuids[1]])
    )
    assert [d["uuid"] for d in by_torch.describe()] == [uuids[1]]


def test_torch_is_asked_for_uuids_only_for_a_real_backend_and_used_gpus(monkeypatch):
    asked: list[bool] = []
    fakes = iter([_backend(FakeGpu()) for _ in range(3)])
    monkeypatch.setattr(nvml_plugin, "PynvmlBackend", lambda: next(fakes))
    monkeypatch.setattr(nvml_plugin, "_torch_uuids", lambda: asked.append(True) or None)
    base = {"settings": EnergySettings(), "probe_s": 0, "background": False, "env": "0"}
    nvml_plugin.build(MeterContext(cuda_devices=(0,), **base))  # type: ignore[arg-type]
    assert asked == [True]
    nvml_plugin.build(MeterContext(cuda_devices=(0,), torch_uuids=["x"], **base))  # type: ignore[arg-type]
    nvml_plugin.build(MeterContext(forced=True, **base))  # type: ignore[arg-type]
    assert asked == [True]


def test_nvml_build_explains_why_it_cannot_work(monkeypatch):
    plain = _backend(FakeGpu())
    with pytest.raises(MeterUnavailableError, match="no superchip module is visible") as exc:
        nvml_plugin.build(_ctx(plain, env="0"))
    assert exc.value.reason == str(exc.value)
    assert plain.lib._init_count == 0  # closed
    module = _backend(FakeGpu(module=True, name="NVIDIA GH200"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert nvml_plugin.build(_ctx(module, env="0")).module_devices  # the context's env wins
    with pytest.raises(MeterUnavailableError, match="no GPU is visible"):
        nvml_plugin.build(_ctx(_backend(FakeGpu()), forced=True, env=""))
    monkeypatch.setattr(nvml_plugin, "PynvmlBackend", NoNvml)
    with pytest.raises(MeterUnavailableError) as missing:
        nvml_plugin.build(MeterContext(settings=EnergySettings(), cuda_devices=(0,)))
    assert missing.value.fix == "install a driver"


# ---------------------------------------------------------------- the unmeasured stand-in
def test_unmeasured_gpus_say_so_per_device():
    meter = UnmeasuredMeter(["gpu:cuda:0", "gpu:cuda:2"], "why", [0, 2], simulated=True)
    a, b = meter.end("w")
    for rec, pos in ((a, 0), (b, 2)):
        assert rec.kind == "gpu" and rec.name == rec.device and rec.cuda_position == pos
        assert rec.energy_j is None and rec.complete is False and rec.issues == ["why"]
        assert rec.simulated is True and rec.source is Source("unmeasured")
    (plain,) = UnmeasuredMeter(["gpu:cuda:0"], "why").end("w")
    assert plain.cuda_position is None and plain.simulated is False
    with pytest.raises(ValueError):
        UnmeasuredMeter(["a", "b"], "why", [0]).end("w")


# ---------------------------------------------------------------- probe
def test_probe_reports_every_fact_of_a_gpu_with_real_update_periods(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    other = (424242, 0.0, 1e12)

    def varying() -> PowerTrace:  # a new reading every 10 ms, so every sensor update differs
        return PowerTrace.from_function(lambda t: 100.0 + int(t * 100) % 7 * 10, 60, 0.01)

    gpus = [
        FakeGpu(power=varying(), processes=[other]),
        FakeGpu(power=varying(), name="Tesla P100", arch="pascal", counter_supported=False),
        FakeGpu(power=varying(), instant_supported=False, mig=(1, 1)),
    ]
    st = nvml_plugin.probe(MeterContext(gpu_backend=_backend(*gpus, clock=SYSTEM_CLOCK), probe_s=1))
    assert st.ok and st.name == "nvml"
    first, old, mig = st.details
    assert first["index"] == 0 and first["uuid"].startswith("GPU-") and first["driver"]
    assert first["name"] == "NVIDIA H100 80GB HBM3" and first["architecture"] == "hopper"
    assert first["kind"] == "gpu" and first["visible"] is True and first["mig"] is False
    assert first["power_limit_w"] == 700.0 and first["power_usage_average_s"] == 1.0
    assert first["counter_supported"] is True
    assert first["other_processes"] == [424242] and "424242" in st.fix
    assert first["counter_supported"] is True and first["instant_power_supported"] is True
    assert first["counter_update_period_s"] == pytest.approx(0.1, rel=0.3)
    assert first["power_update_period_s"] == pytest.approx(0.1, rel=0.3)
    assert "simulated" not in first
    assert old["counter_supported"] is False and old["counter_update_period_s"] is None
    assert old["power_update_period_s"] == pytest.approx(0.1, rel=0.3) and "pre-Volta" in st.fix
    assert mig["instant_power_supported"] is False and mig["mig"] is True
    assert mig["power_update_period_s"] is not None and "MIG mode" in st.fix
    assert "would be marked shared; GPU 1 has no energy counter" in st.fix


def test_probe_sees_what_cuda_visible_devices_hides(monkeypatch):
    # probe_s=0: no update-period probe (1 s per GPU otherwise), so this runs in mutation tests
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    st = nvml_plugin.probe(MeterContext(gpu_backend=_backend(FakeGpu(), FakeGpu()), probe_s=0))
    assert [d["visible"] for d in st.details] == [False, True]
    assert "hides every GPU" not in st.fix and "CUDA_DEVICE_ORDER" not in st.fix
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    st = nvml_plugin.probe(MeterContext(gpu_backend=_backend(FakeGpu()), probe_s=0))
    assert st.ok and "CUDA_VISIBLE_DEVICES='7' hides every GPU" in st.fix
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    st = nvml_plugin.probe(MeterContext(gpu_backend=_backend(FakeGpu()), probe_s=0))
    assert "hides every GPU" not in st.fix
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    two = nvml_plugin.probe(MeterContext(gpu_backend=_backend(FakeGpu(), FakeGpu()), probe_s=0))
    assert "set CUDA_DEVICE_ORDER=PCI_BUS_ID" in two.fix  # CUDA may number GPUs otherwise
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    two = nvml_plugin.probe(MeterContext(gpu_backend=_backend(FakeGpu(), FakeGpu()), probe_s=0))
    assert "CUDA_DEVICE_ORDER" not in two.fix
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # "no GPU" on purpose
    st = nvml_plugin.probe(MeterContext(gpu_backend=_backend(FakeGpu()), probe_s=0))
    assert st.ok and st.fix == "CUDA_VISIBLE_DEVICES='' hides every GPU"
    none = nvml_plugin.probe(MeterContext(gpu_backend=_backend(), probe_s=0))
    assert none == MeterStatus(
        "nvml", ok=False, reason="NVML works but sees no GPU", fix="check `nvidia-smi`"
    )


def test_probe_waits_for_update_periods_only_as_long_as_asked(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def steady() -> PynvmlBackend:  # constant power: the probe waits for a change until max_s
        return _backend(FakeGpu(counter_supported=False), clock=SYSTEM_CLOCK)

    codecarbon_spec()  # cached: probe_meters' estimate probe is then instant
    t0 = time.monotonic()
    (st,) = [nvml_plugin.probe(MeterContext(gpu_backend=steady(), probe_s=0.05))]
    assert st.details[0]["power_update_period_s"] is None
    t1 = time.monotonic()
    probe_meters(gpu_backend=steady(), probe_s=0.05)
    assert time.monotonic() - t1 < 0.6 and t1 - t0 < 0.6  # the default would wait 1 s


def test_probe_without_nvml_or_gpus_says_why(monkeypatch):
    monkeypatch.setattr(nvml_plugin, "PynvmlBackend", NoNvml)
    st = nvml_plugin.probe(MeterContext())
    assert st.ok is False and st.fix == "install a driver" and "(test)" in st.reason
    empty = nvml_plugin.probe(MeterContext(gpu_backend=_backend()))
    assert empty.ok is False and "sees no GPU" in empty.reason


def test_probe_meters_marks_simulated_gpus_and_superchip_hosts(tmp_path):
    nvml, rapl, est = probe_meters(simulate="gh200", rapl_fs=RaplFs(tmp_path / "no"), probe_s=0)
    assert nvml.name == "nvml (simulated: gh200)"
    assert nvml.details and all(d["simulated"] is True for d in nvml.details)
    for st in (rapl, est):
        assert st.fix.startswith("not used here: the superchip module counter")
    assert rapl.fix.endswith("(codecarbon model)")  # the meter's own fix is kept after it
    tree = FakeRaplTree(tmp_path / "pc")
    tree.add_package(0)
    _, ok_rapl, _ = probe_meters(
        gpu_backend=_backend(FakeGpu(module=True)), rapl_fs=RaplFs(tree.root), probe_s=0
    )
    assert ok_rapl.ok and ok_rapl.fix == (
        "not used here: the superchip module counter (NVML) already includes the Grace CPU "
        "and memory"
    )
    plain, *_ = probe_meters(gpu_backend=_backend(FakeGpu()), probe_s=0)
    assert plain.name == "nvml" and "simulated" not in plain.details[0]


# ---------------------------------------------------------------- the table itself
def test_a_registry_knows_roles_sources_and_refuses_conflicts():
    reg = MeterRegistry()
    assert reg.sources == {"unmeasured": MEASURED} and reg.names() == ["auto"]
    gpu = MeterPlugin("g", "gpu", "m:b", "m:p", sources={"shared": MEASURED, "g-only": MEASURED})
    host = MeterPlugin("h", "host", "m:b", "m:p", sources={"shared": MEASURED, "h": ESTIMATED})
    reg.register(gpu)
    reg.register(host)
    assert reg.role("gpu") == [gpu] and reg.role("host") == [host]
    assert reg.names() == ["auto", "g", "h"] and reg.sources["h"] is ESTIMATED
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(MeterPlugin("g", "gpu", "m:b", "m:p"))
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(MeterPlugin("auto", "gpu", "m:b", "m:p"))
    with pytest.raises(ValueError, match="measured and estimated"):
        reg.register(MeterPlugin("x", "host", "m:b", "m:p", sources={"h": MEASURED}))
    reg.unregister("g")
    assert set(reg.sources) == {"unmeasured", "shared", "h"}  # 'shared' is still h's
    with pytest.raises(KeyError, match="unknown meter 'g'"):
        reg.get("g")


def test_built_in_sources_and_unavailability_messages():
    assert [p.name for p in METERS.role("gpu")] == ["nvml"]
    assert [p.name for p in METERS.role("host")] == ["rapl", "estimate"]
    assert Source("estimate").is_estimate and not Source("rapl").is_estimate
    assert not Source("unmeasured").is_estimate and Source("rapl").value == "rapl"
    assert str(MeterUnavailableError("no zones", "load the driver")) == "no zones. load the driver"
    assert str(MeterUnavailableError("no zones")) == "no zones"


def test_auto_finds_no_host_meter_and_says_why(tmp_path: Path, monkeypatch):
    def broken(ctx):
        raise MeterUnavailableError("codecarbon is broken", "reinstall it")

    # the table names the plug-in's build lazily ("energybench.meters.estimate:build")
    monkeypatch.setattr(estimate, "build", broken)
    reason = (
        r"^no meter can measure or estimate the CPU and memory here "
        r"\(rapl: .*; estimate: codecarbon.*\)$"
    )
    with pytest.raises(factory.MeterUnavailableError, match=reason):
        build_monitor(
            EnergySettings(), None, None, rapl_fs=RaplFs(tmp_path / "no"), background=False
        )


def test_build_monitor_hands_every_argument_and_seam_to_the_meters(tmp_path, monkeypatch):
    seen: list[MeterContext] = []

    def gpu_meter(ctx: MeterContext, names: set[str], auto: bool) -> None:
        seen.append(ctx)
        return None

    monkeypatch.setattr(factory, "_gpu_meter", gpu_meter)
    monkeypatch.setattr(factory, "_host_meters", lambda ctx, names, auto: [])
    clock, backend, fs = ManualClock(), _backend(FakeGpu()), RaplFs(tmp_path / "none")

    def pids() -> set[int]:
        return {7}

    build_monitor(
        EnergySettings(),
        [0],
        tmp_path,
        gpu_backend=backend,
        rapl_fs=fs,
        clock=clock,
        torch_uuids=["GPU-x"],
        probe_s=0.25,
        background=False,
        sync=print,
        own_pids=pids,
        host=False,
    )
    ctx = seen[-1]
    assert (ctx.cuda_devices, ctx.trace_dir, ctx.host, ctx.background) == (
        (0,),
        tmp_path,
        False,
        False,
    )
    assert (ctx.probe_s, ctx.clock, ctx.gpu_backend, ctx.rapl_fs) == (0.25, clock, backend, fs)
    assert ctx.torch_uuids == ["GPU-x"] and ctx.own_pids is pids and not ctx.simulated
    assert (ctx.env, ctx.proc, ctx.cpu_affinity) == (None, None, None)
    build_monitor(EnergySettings(), None, None, gpu_backend=backend, rapl_fs=fs, sync=print)
    ctx = seen[-1]  # the defaults: metered host, background polling, 1 s probe
    assert (ctx.host, ctx.background, ctx.probe_s, ctx.clock) == (True, True, 1.0, None)
    build_monitor(EnergySettings(), [0], None, simulate="h100-container", rapl_fs=fs, clock=clock)
    ctx = seen[-1]  # a simulated host's CUDA_VISIBLE_DEVICES and /proc reach the meter
    assert ctx.simulated and ctx.env == "0" and ctx.proc is not None
    assert pid_view(ctx.proc).isolated and ctx.cpu_affinity is None  # affinity unknown there
    mon = build_monitor(EnergySettings(), None, None, simulate="4xgh200", rapl_fs=fs, clock=clock)
    ctx = seen[-1]  # a superchip node: its CPUs per module reach the meter
    fake = ctx.gpu_backend.nvml.lib
    assert mon._on_charging is not None
    mon._on_charging(frozenset({2}))  # the simulated modules follow what the monitor charges
    assert [g.power.busy() for g in fake.gpus] == [False, False, True, False]
    assert ctx.env == "0,1,2,3" and ctx.cpu_affinity is not None
    cpus = ctx.cpu_affinity()
    assert cpus is not None and len(cpus) > 0


def test_a_simulated_gpu_no_meter_can_read_is_an_unmeasured_simulated_gpu(monkeypatch):
    monkeypatch.setattr(nvml_plugin, "PynvmlBackend", NoNvml)
    ctx = MeterContext(settings=EnergySettings(), cuda_devices=(0,), simulated=True)
    meter = factory._gpu_meter(ctx, {"auto"}, True)
    assert isinstance(meter, UnmeasuredMeter)
    (rec,) = meter.end("w")
    assert rec.simulated is True and rec.energy_j is None


def test_no_gpu_meter_unless_named_or_auto():
    ctx = _ctx(_backend(FakeGpu()), cuda_devices=(0,))
    assert factory._gpu_meter(ctx, {"rapl"}, False) is None  # only a host meter is named
    assert isinstance(factory._gpu_meter(ctx, {"auto"}, True), NvmlMeter)


def test_a_registry_keeps_help_the_unmeasured_label_and_refuses_non_plugins():
    reg = MeterRegistry()
    own = MeterPlugin("a", "gpu", "m:b", "m:p", help="the plug-in's own help")
    reg.register(own)
    reg.register("b", MeterPlugin("b", "host", "m:b", "m:p", help="b's help"), help="given")
    assert (reg.help("a"), reg.help("b")) == ("the plug-in's own help", "given")
    with pytest.raises(TypeError, match="as a MeterPlugin"):
        reg.register("c", "m:lazy")  # a lazy path is not a plug-in
    with pytest.raises(TypeError, match="must be a MeterPlugin"):
        Registry.register(reg, "d", object())  # the base check: entries are MeterPlugins
    odd = MeterPlugin("u", "host", "m:b", "m:p", sources={"unmeasured": MEASURED, "u": MEASURED})
    reg.register(odd)
    reg.unregister("u")
    assert reg.sources == {"unmeasured": MEASURED}  # the built-in label stays
    reg.unregister("never-registered")  # forgetting an unknown name is harmless
    assert reg.names() == ["auto", "a", "b"]


def test_a_named_gpu_meter_meters_every_gpu_it_sees():
    # energy.meters: [nvml] in a run that uses no GPU: the named meter is forced (every
    # visible GPU metered), not left to choose (none, as the run uses none)
    ctx = _ctx(_backend(FakeGpu(), FakeGpu()), cuda_devices=())
    meter = factory._gpu_meter(ctx, {"nvml"}, False)
    assert isinstance(meter, NvmlMeter) and len(meter.describe()) == 2
