"""The NVML adapter in detail: value types, error mapping, channel nature, identity, backend."""

from __future__ import annotations

import pytest

from energybench.meters.nvml_device import (
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
    GpuReadError,
    NvmlUnavailableError,
    PynvmlBackend,
    PynvmlDevice,
    _Nvml,
    _positive_mw,
    _text,
)
from energybench.meters.sim import fakenvml
from energybench.meters.sim.doubles import ManualClock
from energybench.meters.sim.fakenvml import NVML_ERROR_NOT_SUPPORTED, FakeGpu, FakeNvml, Fault


class OneField:
    """An NVML stand-in whose only field value has the given type and value."""

    def __init__(self, value_type: int, member: str, value: float) -> None:
        self.vt, self.member, self.value = value_type, member, value
        self.NVMLError = fakenvml.NVMLError
        self.NVML_SUCCESS = 0
        self.NVML_ERROR_GPU_IS_LOST = 15
        self.NVML_ERROR_NOT_SUPPORTED = 3
        self.NVML_ERROR_FUNCTION_NOT_FOUND = 13
        self.requests: list = []

    def nvmlDeviceGetFieldValues(self, handle, ids):  # noqa: N802
        self.requests.append(list(ids))
        v = (fakenvml.c_nvmlFieldValue_t * 1)()
        v[0].valueType = self.vt
        setattr(v[0].value, self.member, self.value)
        return v


@pytest.mark.parametrize(
    "vt,member,value",
    [
        (0, "dVal", 123.5),
        (1, "uiVal", 4_000_000_000),
        (2, "ulVal", 2**40),
        (3, "ullVal", 2**50),
        (4, "sllVal", -(2**40)),
        (5, "siVal", -7),
        (6, "usVal", 65_000),
    ],
)
def test_every_value_type_is_read_from_its_union_member(vt, member, value):
    lib = OneField(vt, member, value)
    assert _Nvml(lib).field("h", 186, 1) == value
    assert _Nvml(lib).field("h", 186) == value
    assert lib.requests == [[(186, 1)], [186]]


def test_an_unknown_value_type_is_a_read_error():
    with pytest.raises(GpuReadError, match="unknown value type 9"):
        _Nvml(OneField(9, "uiVal", 1)).field("h", 186, 0)


def test_errors_are_mapped_with_their_code():
    nv = _Nvml(FakeNvml([], ManualClock()))
    lost = nv.error(fakenvml.NVMLError(15))
    assert type(lost) is GpuLostError and str(lost) == "GPU is lost (NVML error 15)"
    ns = nv.error(fakenvml.NVMLError(13))
    assert type(ns) is GpuNotSupportedError and str(ns) == "Function Not Found (NVML error 13)"
    assert type(nv.error(fakenvml.NVMLError(3))) is GpuNotSupportedError
    other = nv.error(fakenvml.NVMLError(999))
    assert type(other) is GpuError and str(other) == "Unknown Error (NVML error 999)"


def test_positive_power_and_text_helpers():
    assert _positive_mw(1, "x") == 1
    with pytest.raises(GpuReadError, match=r"^power read 0 mW: a failed read"):
        _positive_mw(0, "power")
    with pytest.raises(GpuReadError):
        _positive_mw(-5, "power")
    assert _text(b"GPU-1") == "GPU-1" and _text("GPU-2") == "GPU-2"
    assert str(NvmlUnavailableError("no driver")) == "no driver"
    e = NvmlUnavailableError("no driver", "install it")
    assert str(e) == "no driver. install it" and (e.reason, e.fix) == ("no driver", "install it")


def test_device_built_from_a_plain_module_and_its_identity():
    clock = ManualClock()
    fake = FakeNvml([FakeGpu(power=100.0)], clock)
    fake.nvmlInit()
    dev = PynvmlDevice(fake, 0, fake.nvmlDeviceGetHandleByIndex(0))
    assert dev.uuid() == fake.gpus[0].uuid and dev.name() == "NVIDIA H100 80GB HBM3"
    assert dev.uuid() == dev.uuid() and fake.calls["nvmlDeviceGetUUID"] == 1  # cached
    assert dev.total_energy_mj() == fake.gpus[0].counter_offset_mj
    assert dev.temperature_c() == 36.0 and dev.sm_clock_mhz() == 345.0
    assert dev.utilization_pct() == 14.0 and dev.power_limit_mw() == 700_000
    assert dev.compute_pids() == []


@pytest.mark.parametrize(
    "name,arch,avg",
    [
        ("NVIDIA H100 80GB HBM3", "hopper", 1.0),
        ("NVIDIA A100-SXM4-40GB", "ampere", 0.0),
        ("NVIDIA A30", "ampere", 0.0),
        ("NVIDIA A10", "ampere", 1.0),
        ("NVIDIA A100-SXM4-40GB", "hopper", 1.0),
        ("Tesla V100-SXM2-16GB", "volta", 0.0),
        ("Tesla P100", "pascal", 0.0),
        ("NVIDIA L4", "ada", 1.0),
        ("Mystery GPU", "unknown", 1.0),
    ],
)
def test_power_usage_average_window_by_part(name, arch, avg):
    dev = PynvmlBackend(FakeNvml([FakeGpu(name=name, arch=arch)], ManualClock())).devices()[0]
    assert dev.power_usage_average_s() == avg


def test_architecture_names_and_unknown_codes():
    fake = FakeNvml([FakeGpu(arch="ampere"), FakeGpu(arch="unknown")], ManualClock())
    a, b = PynvmlBackend(fake).devices()
    assert a.architecture() == "ampere" and b.architecture() == "unknown"
    fake.gpus[1].faults.append(Fault("nvmlDeviceGetArchitecture", 0.0, code=999))
    b2 = PynvmlBackend(FakeNvml([FakeGpu(arch="blackwell")], ManualClock())).devices()[0]
    assert b2.architecture() == "blackwell"


def test_unknown_architecture_code_is_its_number():
    class Arch(FakeNvml):
        def nvmlDeviceGetArchitecture(self, handle):  # noqa: N802
            return 77

    dev = PynvmlBackend(Arch([FakeGpu()], ManualClock())).devices()[0]
    assert dev.architecture() == "77"
    failing = FakeNvml([FakeGpu()], ManualClock())
    failing.gpus[0].faults.append(Fault("nvmlDeviceGetArchitecture", 0.0, code=999))
    assert PynvmlBackend(failing).devices()[0].architecture() is None
    failing.gpus[0].faults.append(Fault("nvmlDeviceGetEnforcedPowerLimit", 0.0, code=999))
    assert PynvmlBackend(failing).devices()[0].power_limit_mw() is None


def test_mig_mode_unsupported_is_off():
    fake = FakeNvml([FakeGpu(arch="volta"), FakeGpu(mig=(1, 0))], ManualClock())
    a, b = PynvmlBackend(fake).devices()
    assert a.mig_enabled() is False and b.mig_enabled() is True


def test_backend_lifecycle():
    fake = FakeNvml([FakeGpu(), FakeGpu()], ManualClock())
    backend = PynvmlBackend(fake)
    assert backend.driver_version() == "550.54.15"
    assert [d.index for d in backend.devices()] == [0, 1]
    assert backend.devices() is backend.devices()
    backend.close()
    backend.close()
    assert fake.calls["nvmlShutdown"] == 1 and fake._init_count == 0
    with pytest.raises(NvmlUnavailableError, match="Driver Not Loaded"):
        PynvmlBackend(FakeNvml([], ManualClock(), init_error=9))


def test_mig_parent_by_full_uuid_uses_the_direct_lookup():
    g = FakeGpu(mig=(1, 1), mig_devices=["MIG-aaaa-1111", "MIG-bbbb-2222"])
    fake = FakeNvml([FakeGpu(), g], ManualClock())
    backend = PynvmlBackend(fake)
    assert backend.mig_parent_uuid("MIG-bbbb-2222") == g.uuid
    assert fake.calls.get("nvmlDeviceGetMaxMigDeviceCount", 0) == 0
    assert backend.mig_parent_uuid("MIG-aaaa") == g.uuid  # a prefix: searched
    assert backend.mig_parent_uuid("MIG-cccc") is None


def test_module_instant_power_without_the_field_is_not_supported():
    fake = FakeNvml(
        [FakeGpu(name="NVIDIA GH200 480GB", module=True, instant_supported=False)],
        ManualClock(),
    )
    dev = PynvmlBackend(fake).devices()[0]
    with pytest.raises(GpuNotSupportedError):
        dev.power_instant_mw()
    fake.gpus[0].faults.append(
        Fault("nvmlDeviceGetFieldValues", 0.0, code=NVML_ERROR_NOT_SUPPORTED)
    )
    assert dev.total_energy_mj() == fake.gpus[0].counter_offset_mj  # plain counter fallback


def test_gpu_scope_probe_is_made_with_the_gpu_scope():
    fake = FakeNvml([FakeGpu(name="NVIDIA H100 80GB HBM3")], ManualClock())
    seen = []
    orig = fake.nvmlDeviceGetFieldValues

    def spy(handle, ids):
        seen.append(list(ids))
        return orig(handle, ids)

    fake.nvmlDeviceGetFieldValues = spy
    dev = PynvmlBackend(fake).devices()[0]
    assert dev.scope() == "gpu"
    assert seen == [[186]]  # GPU scope: a plain field id, as old nvidia-ml-py needs
    dev.power_instant_mw()
    assert seen[-1] == [186]


def test_lost_gpu_during_scope_probe_raises_lost():
    fake = FakeNvml([FakeGpu(name="Some GPU", lost_at_s=0.0)], ManualClock())
    fake.gpus[0].lost_at_s = None
    fake.nvmlInit()
    dev = PynvmlDevice(fake, 0, fake.nvmlDeviceGetHandleByIndex(0))
    dev.name()
    fake.gpus[0].lost_at_s = 0.0
    with pytest.raises(GpuLostError):
        dev.scope()


def test_zero_power_messages_name_the_channel():
    fake = FakeNvml([FakeGpu(zero_power_s=[(0.0, 1e9)])], ManualClock())
    dev = PynvmlBackend(fake).devices()[0]
    with pytest.raises(GpuReadError, match=r"^nvmlDeviceGetPowerUsage read 0 mW"):
        dev.power_usage_mw()
    with pytest.raises(GpuReadError, match=r"^instantaneous power read 0 mW"):
        dev.power_instant_mw()
    gh = FakeNvml([FakeGpu(name="GH200", module=True, zero_power_s=[(0, 1e9)])], ManualClock())
    with pytest.raises(GpuReadError, match=r"^power read 0 mW"):
        PynvmlBackend(gh).devices()[0].power_usage_mw()


def test_mig_prefix_search_skips_an_unreadable_instance():
    class Holey(FakeNvml):
        def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):  # noqa: N802
            if index == 0:
                raise self.NVMLError(6)
            return super().nvmlDeviceGetMigDeviceHandleByIndex(handle, index)

    g = FakeGpu(mig=(1, 1), mig_devices=["MIG-aaaa-0000", "MIG-bbbb-1111"])
    backend = PynvmlBackend(Holey([g], ManualClock()))
    assert backend.mig_parent_uuid("MIG-bbbb") == g.uuid
