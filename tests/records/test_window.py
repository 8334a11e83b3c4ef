"""The window record from a meter to a reader: the monitor closes a ``Window``, the trial and
the store keep it, a run read back gets it again; its sums are functions of its devices, a
stored sum that disagrees with them is refused, and one the meter table decides is recomputed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from energybench.errors import UserError
from energybench.meters.base import DeviceEnergy, EnergyMonitor, Meter, Source
from energybench.records.store import load_run
from energybench.records.window import Window
from energybench.serve.trials import trial_summary

RUN_0_1_0 = Path(__file__).resolve().parents[1] / "fixtures" / "run-0.1.0"


class TwoDevices(Meter):
    name = "two"

    def begin(self, key: str) -> None:
        pass

    def end(self, key: str) -> list[DeviceEnergy]:
        return [
            DeviceEnergy("gpu:a", "gpu", "H100", Source("nvml-counter"), 30.0, 3.0),
            DeviceEnergy("cpu:estimate", "cpu", "cpu", Source("estimate"), 4.0, 4.0),
        ]


def test_the_window_a_monitor_closes_is_the_record_a_trial_keeps_and_the_store_writes() -> None:
    mon = EnergyMonitor([TwoDevices()])
    with mon.window("serve/t0") as w:
        pass
    win = w.measurement
    assert isinstance(win, Window)
    trial = trial_summary(win, 10, [0.1])
    assert trial.measurement is win  # one object from the meter to the record, not a copy
    stored = trial.to_json()["measurement"]
    assert list(stored) == [  # the layout of every window written, spelt out
        "name",
        "start_unix_s",
        "duration_s",
        "energy_j",
        "uncertainty_j",
        "measured_energy_j",
        "measured_uncertainty_j",
        "estimated_energy_j",
        "measured_kinds",
        "estimated_kinds",
        "sources",
        "is_estimate",
        "is_shared",
        "is_simulated",
        "complete",
        "gaps",
        "flags",
        "devices",
    ]
    assert (stored["energy_j"], stored["measured_energy_j"], stored["estimated_energy_j"]) == (
        34.0,
        30.0,
        4.0,
    )
    back = Window.model_validate(json.loads(json.dumps(stored)))
    assert back.to_json() == stored and back.energy_j == 34.0 and back.is_estimate


def _window(**stored: Any) -> dict[str, Any]:
    dev = {"device": "gpu:a", "kind": "gpu", "name": "H100", "source": "nvml-counter"}
    return {"duration_s": 1.0, "devices": [dev | {"energy_j": 5.0}], **stored}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("energy_j", 50.0),
        ("uncertainty_j", 1.0),
        ("sources", ["rapl"]),
        ("is_shared", True),
        ("is_simulated", True),
        ("complete", False),
        ("gaps", ["gpu:a: no figure (edited)"]),
    ],
)
def test_a_stored_sum_that_disagrees_with_the_devices_is_refused(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{key} is .* but the window's devices give"):
        Window.model_validate(_window(**{key: value}))
    Window.model_validate(_window(energy_j=5.0 + 1e-12, sources=["nvml-counter"]))  # rounding


def test_an_edited_total_in_an_old_run_names_the_file_and_the_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN_0_1_0, run)
    path = run / "entries" / "teacher" / "train.json"
    rec = json.loads(path.read_text())
    rec["measurement"]["energy_j"] *= 2
    path.write_text(json.dumps(rec))
    with pytest.raises(UserError, match=r"train\.json.*measurement.*energy_j is"):
        load_run(run)


def test_what_the_meter_table_decides_is_recomputed_not_read() -> None:
    # a source nobody declared is an estimate (never shown as measured), whatever the file says
    dev = {"device": "x", "kind": "cpu", "name": "x", "source": "acme-model", "energy_j": 2.0}
    w = Window.model_validate(
        {"duration_s": 1.0, "devices": [dev], "is_estimate": False, "measured_energy_j": 2.0}
    )
    assert w.is_estimate and w.measured_energy_j is None and w.estimated_energy_j == 2.0


def test_an_old_window_read_and_written_again_keeps_its_layout() -> None:
    rec = json.loads((RUN_0_1_0 / "entries" / "teacher" / "train.json").read_text())
    stored = rec["measurement"]
    assert "gaps" not in stored  # 0.1.0 wrote no gaps
    again = Window.model_validate(stored).to_json()
    assert list(again) == list(stored)  # no sum added, none moved
    assert {k: v for k, v in again.items() if k != "devices"} == {
        k: v for k, v in stored.items() if k != "devices"
    }


def test_a_stored_nan_total_reads_back_only_where_the_devices_give_nan_too() -> None:
    nan = float("nan")
    dev = _window()["devices"][0] | {"energy_j": nan}
    assert math.isnan(Window.model_validate(_window(energy_j=nan) | {"devices": [dev]}).energy_j)
    with pytest.raises(ValueError, match="energy_j is nan but the window's devices give 5.0"):
        Window.model_validate(_window(energy_j=nan))


def test_a_stored_sum_is_compared_to_a_picojoule_and_a_part_in_a_billion() -> None:
    zero = {"device": "gpu:a", "kind": "gpu", "name": "H100", "source": "nvml-counter"}
    zero |= {"energy_j": 0.0}
    ok = Window.model_validate({"duration_s": 1.0, "devices": [zero], "energy_j": 5e-13})
    assert ok.energy_j == 0.0  # rounding below 1 pJ around zero
    with pytest.raises(ValueError, match="energy_j is 0.5 but"):
        Window.model_validate({"duration_s": 1.0, "devices": [zero], "energy_j": 0.5})
    with pytest.raises(ValueError, match="energy_j is 5.00000005 but"):
        Window.model_validate(_window(energy_j=5.00000005))  # 1e-8 relative: not rounding


def test_a_window_read_back_is_written_in_the_order_it_was_read() -> None:
    stored = {"devices": _window()["devices"], "energy_j": 5.0, "duration_s": 1.0}
    assert list(Window.model_validate(stored).to_json()) == ["devices", "energy_j", "duration_s"]


def test_a_device_record_from_its_json_ignores_keys_it_does_not_declare() -> None:
    dev = DeviceEnergy("gpu:a", "gpu", "H100", Source("nvml-counter"), 5.0, 0.5, shared=True)
    d = dev.to_dict() | {"written_by": "a later version"}
    assert DeviceEnergy.from_dict(d) == dev


def test_a_key_a_writer_adds_to_a_closed_window_is_written_after_its_layout() -> None:
    dev = DeviceEnergy("gpu:a", "gpu", "H100", Source("nvml-counter"), 5.0)
    w = Window(name="w", start_unix_s=0.0, duration_s=1.0, devices=[dev], flags=[])
    w.host = "node-7"  # type: ignore[attr-defined]  # Record keeps what a writer adds
    out = w.to_json()
    assert list(out)[-2:] == ["devices", "host"] and out["host"] == "node-7"


def _mixed() -> Window:
    """Charged: a measured GPU, a RAPL DRAM zone and a RAM model without figures. Seen but not
    charged (another entry's): a shared, simulated, incomplete module and a CPU estimate."""

    def dev(device: str, kind: str, source: str, energy_j: float | None, **kw: Any) -> Any:
        return DeviceEnergy(device, kind, device, Source(source), energy_j, **kw)

    return Window(
        duration_s=1.0,
        devices=[
            dev("gpu:a", "gpu", "nvml-counter", 300.0),
            dev("dram:0", "dram", "rapl", None),
            dev("ram:estimate", "ram", "estimate", None),
            dev(
                "module:b",
                "module",
                "nvml-power-integrated",
                90.0,
                charged=False,
                shared=True,
                simulated=True,
                complete=False,
            ),
            dev("cpu:estimate", "cpu", "estimate", 40.0, charged=False),
        ],
    )


def test_kinds_sources_and_flags_are_those_of_the_charged_devices_with_a_figure() -> None:
    w = _mixed()
    assert (w.measured_kinds, w.estimated_kinds) == (["gpu"], [])  # no figure: no kind
    assert w.sources == ["estimate", "nvml-counter", "rapl"]  # charged devices only
    assert not w.is_estimate  # the only charged estimate has no figure; the other is not charged
    assert not w.is_shared and w.complete  # the shared, incomplete module is not charged
    assert w.is_simulated  # a simulated device seen at all marks the window
    assert w.energy_j is None and w.measured_energy_j is None  # DRAM has no figure
    w.devices[2].energy_j = 4.0
    assert (w.estimated_kinds, w.is_estimate, w.estimated_energy_j) == (["ram"], True, 4.0)
    w.devices[4].charged = True
    assert w.estimated_kinds == ["cpu", "ram"] and w.estimated_energy_j == 44.0
    w.devices[3].charged = True
    assert w.measured_kinds == ["gpu", "module"] and w.is_shared and not w.complete


def test_one_shared_or_incomplete_charged_device_marks_the_window() -> None:
    w = _mixed()
    w.devices[0].shared = True
    w.devices[1].complete = False
    assert w.is_shared and not w.complete
    w.devices[3].simulated = False
    assert not w.is_simulated
    w.devices[4].simulated = True
    assert w.is_simulated  # one simulated device of several
