"""CUDA_VISIBLE_DEVICES -> NVML devices: indices, UUIDs, prefixes, MIG, invalid entries."""

from __future__ import annotations

import pytest

from energybench.meters.factory import build_monitor
from energybench.meters.gpu_select import GpuSelectionError, select_gpus, visible_gpus
from energybench.meters.nvml import NvmlMeter
from energybench.meters.nvml_device import PynvmlBackend
from energybench.meters.sim.doubles import ManualClock
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml
from energybench.suite.schema import EnergySettings


class Backend(PynvmlBackend):
    """The real adapter over four fake GPUs; ``gpus`` are the fake's, ``closed`` counts closes."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        gpus = [FakeGpu(power=100.0 + 10 * i) for i in range(4)]
        gpus[3].uuid = "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"
        gpus[2].mig = (1, 1)
        gpus[2].mig_devices = ["MIG-2a5f7c1e-0000-5b1d-9d4c-000000000001"]
        self.fake = FakeNvml(gpus, self.clock)
        self.gpus = self.fake.gpus
        self.closed = 0
        super().__init__(self.fake)

    def close(self) -> None:
        self.closed += 1
        super().close()


@pytest.fixture
def backend() -> Backend:
    return Backend()


def uuids(targets) -> list[str]:
    return [t.device.uuid() for t in targets]


def test_unset_means_all_in_pci_order_with_a_note(backend):
    devs, notes = visible_gpus(None, backend)
    assert [d.index for d, _ in devs] == [0, 1, 2, 3]
    assert notes and "CUDA_DEVICE_ORDER" in notes[0]
    assert visible_gpus(None, backend, order="PCI_BUS_ID")[1] == []


def test_indices_in_cuda_order(backend):
    t = select_gpus(backend, [0, 1], env="2,0")
    assert uuids(t) == [backend.gpus[2].uuid, backend.gpus[0].uuid]
    assert [x.cuda_position for x in t] == [0, 1]
    assert uuids(select_gpus(backend, [1], env="3,1")) == [backend.gpus[1].uuid]


def test_full_uuidand_prefixes(backend):
    g3 = backend.gpus[3].uuid
    assert uuids(select_gpus(backend, [0], env=g3)) == [g3]
    assert uuids(select_gpus(backend, [0], env="GPU-8932f937")) == [g3]
    assert uuids(select_gpus(backend, [1], env=f"1,{g3[4:12]}")) == [g3]


def test_invalid_entry_hides_it_and_everything_after(backend):
    devs, notes = visible_gpus("0,7,1", backend)
    assert [d.index for d, _ in devs] == [0]
    assert "'7'" in notes[0]
    with pytest.raises(GpuSelectionError, match="only 1 GPU"):
        select_gpus(backend, [1], env="0,7,1")
    # an ambiguous prefix is invalid too (every simulated uuid but one starts with GPU-0000)
    assert visible_gpus("GPU-0000", backend)[0] == []


def test_empty_means_no_gpu(backend):
    assert select_gpus(backend, None, env="") == []
    with pytest.raises(GpuSelectionError):
        select_gpus(backend, [0], env="")


def test_mig_ids_map_to_parent_with_warning(backend):
    parent0 = backend.gpus[0].uuid
    t = select_gpus(backend, [0], env=f"MIG-{parent0}/1/0")
    assert uuids(t) == [parent0] and t[0].mig_id
    assert any("whole" in i and "parent GPU" in i for i in t[0].issues)
    t = select_gpus(backend, [0], env="MIG-2a5f7c1e")
    assert uuids(t) == [backend.gpus[2].uuid] and t[0].mig
    t = select_gpus(backend, [0], env="MIG-2a5f7c1e-0000-5b1d-9d4c-000000000001")
    assert uuids(t) == [backend.gpus[2].uuid] and t[0].mig
    # MIG mode on without a MIG id in the environment: still flagged
    t = select_gpus(backend, [0], env="2")
    assert t[0].mig and any("MIG mode on" in i for i in t[0].issues)
    assert not select_gpus(backend, [0], env="1")[0].mig


def test_torch_uuids_win_over_environment(backend):
    t = select_gpus(backend, [0], env="0", torch_uuids=[backend.gpus[1].uuid[4:]])
    assert uuids(t) == [backend.gpus[1].uuid]


def test_monitor_measures_exactly_the_used_gpus(backend, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"3,{backend.gpus[1].uuid}")
    clock = backend.clock
    mon = build_monitor(
        EnergySettings(meters=["nvml"]),
        [1],
        None,
        gpu_backend=backend,
        clock=clock,
        probe_s=0,
        background=False,
    )
    (meter,) = [m for m in mon.meters if isinstance(m, NvmlMeter)]
    assert [d["uuid"] for d in meter.describe()] == [backend.gpus[1].uuid]
    assert meter.describe()[0]["cuda_position"] == 1
    mon.begin_window("w")
    clock.sleep(2.0)
    m = mon.end_window("w")
    assert [d.device for d in m.devices] == [f"gpu:{backend.gpus[1].uuid}"]
    assert m.devices[0].energy_j == pytest.approx(110 * 2.0, rel=0.02)
    mon.close()
    assert backend.closed == 1


def test_single_gpu_needs_no_order_note():
    b = PynvmlBackend(FakeNvml([FakeGpu()], ManualClock()))
    assert visible_gpus(None, b) == ([(b.devices()[0], None)], [])


def test_note_text_and_it_reaches_the_targets(backend):
    (note,) = visible_gpus(None, backend)[1]
    assert note.startswith("CUDA_VISIBLE_DEVICES is unset and CUDA_DEVICE_ORDER is not PCI_BUS_ID")
    t = select_gpus(backend, [0], env=None, order="FASTEST_FIRST")
    assert t[0].issues == [note]


def test_index_past_the_end_and_duplicates_are_invalid(backend):
    devs, notes = visible_gpus("4", backend)
    assert devs == [] and "'4'" in notes[0]
    devs, notes = visible_gpus("1,1,2", backend)
    assert [d.index for d, _ in devs] == [1] and "'1'" in notes[0]
    devs, notes = visible_gpus("MIG-ffff0000", backend)
    assert devs == [] and "MIG-ffff0000" in notes[0]


def test_environment_is_read_when_not_given(backend, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    (t,) = select_gpus(backend, [0])
    assert t.device.uuid() == backend.gpus[3].uuid and t.issues == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert len(select_gpus(backend, None)) == 4


def test_torch_uuids_of_plain_gpus_are_not_mig_and_short_lists_fall_back(backend):
    # position 0 from torch (GPU 1), position 1 past torch's list: from the environment (GPU 2)
    t = select_gpus(backend, [0, 1], env="0,2", torch_uuids=[backend.gpus[1].uuid])
    assert uuids(t) == [backend.gpus[1].uuid, backend.gpus[2].uuid]
    assert t[0].mig_id is None and not t[0].mig and t[0].issues == []


def test_two_mig_instances_of_one_gpu_are_one_target(backend):
    parent = backend.gpus[0].uuid
    t = select_gpus(backend, [0, 1], env=f"MIG-{parent}/1/0,MIG-{parent}/2/0")
    assert uuids(t) == [parent] and t[0].cuda_position == 0 and t[0].mig
    assert sum("whole parent GPU" in i for i in t[0].issues) == 2  # one per instance


def test_device_order_from_the_environment(backend, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert select_gpus(backend, [0])[0].issues == []
    monkeypatch.delenv("CUDA_DEVICE_ORDER")
    assert "CUDA_DEVICE_ORDER" in select_gpus(backend, [0])[0].issues[0]
    two = PynvmlBackend(FakeNvml([FakeGpu(), FakeGpu()], ManualClock()))
    assert len(visible_gpus(None, two)[1]) == 1


def test_a_mig_instance_named_by_torch_is_metered_as_its_parent(backend):
    parent, mig = backend.gpus[2].uuid, "MIG-2a5f7c1e-0000-5b1d-9d4c-000000000001"
    for torch_uuid in (mig, mig.removeprefix("MIG-")):  # torch may report it without "MIG-"
        (t,) = select_gpus(backend, [0], env="1", torch_uuids=[torch_uuid])
        assert t.device.uuid() == parent and t.mig and t.cuda_position == 0
        assert t.mig_id is not None and t.mig_id.lower() == mig.lower()
        assert t.issues == [
            f"MIG instance {t.mig_id}: NVML reports energy for the whole parent GPU {parent}, "
            "shared with every other instance on it"
        ]
    # a torch UUID NVML does not know (not even as a MIG instance): the environment decides
    (t,) = select_gpus(backend, [0], env="1", torch_uuids=["GPU-ffffffff-0000-0000-0000-0"])
    assert t.device.uuid() == backend.gpus[1].uuid and not t.mig and t.mig_id is None
