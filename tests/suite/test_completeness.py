"""Completeness is part of the label: a window with a charged device that has no figure, or a
figure flagged incomplete, is never summed as if whole.

The two cases of issue 24: a GPU lost 3 s into a 10 s window at 300 W (900 J integrated,
``complete: false``), and an unreadable GPU beside a 500 J RAPL figure. Both leave the window
without energy; a serving trial with such a window is left out of the interval and counted in
``trials_without_energy``; an entry whose TEC has one is unranked with the reason, in the
records, the leaderboard, the export, the terminal and the report.
"""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console

from energybench.meters.base import FLAG_METER_ERROR, DeviceEnergy, Source
from energybench.records.types import Window
from energybench.report.export import _table
from energybench.report.tables import entry_costs, leaderboard, window_energy
from energybench.report.terminal import glance
from tests.helpers.runs import make_run, window


def gpu_lost() -> Window:
    """300 W for 3 s, then the GPU fell off the bus: 900 J integrated, the true figure ~3000 J."""
    return Window(
        name="w", start_unix_s=0.0, duration_s=10.0,
        devices=[
            DeviceEnergy(
                "gpu:a", "gpu", "H100", Source("nvml-power-integrated"), 900.0, 45.0,
                complete=False, issues=["GPU lost after 3.0 s (NVML_ERROR_GPU_IS_LOST)"],
                cuda_position=0,
            ),
            DeviceEnergy("cpu:estimate", "cpu", "cpu", Source("estimate"), 20.0, 10.0),
        ],
    )  # fmt: skip


def gpu_unreadable() -> Window:
    """A GPU no meter can read, beside a 500 J RAPL package figure."""
    return Window(
        name="w", start_unix_s=0.0, duration_s=10.0,
        devices=[
            DeviceEnergy(
                "gpu:a", "gpu", "gpu:a", Source("unmeasured"), None, complete=False,
                issues=["NVML cannot read this GPU"], cuda_position=0,
            ),
            DeviceEnergy("cpu:package-0", "cpu", "package-0", Source("rapl"), 500.0, 5.0),
        ],
    )  # fmt: skip


@pytest.mark.parametrize("make", [gpu_lost, gpu_unreadable])
def test_a_window_with_a_gap_has_no_energy_on_any_basis_that_includes_the_gpu(make) -> None:
    m = make()
    assert m.energy_j is None and m.measured_energy_j is None and m.uncertainty_j is None
    assert m.gaps() and m.gaps()[0].startswith("gpu:a: ")
    assert m.to_json()["gaps"] == m.gaps()
    for allow in (False, True):
        w = window_energy(Window.model_validate(m.to_json()), allow)
        assert w.energy_j is None and w.gap is not None and "gpu:a" in w.gap


def test_the_estimate_beside_a_whole_measured_figure_is_not_a_gap() -> None:
    m = window(900.0, 20.0, 5.0)
    m.devices[2].complete = False  # the CPU estimate failed once
    assert m.measured_energy_j == pytest.approx(900.0) and m.gaps(False) == []
    assert m.energy_j is None and m.estimated_energy_j is None  # the sum with it is not whole


def test_a_failed_meter_leaves_every_sum_unknown() -> None:
    m = window(900.0, 20.0, 5.0)
    m.flags.append(f"{FLAG_METER_ERROR}:rapl:OSError: gone")
    assert m.energy_j is None and m.measured_energy_j is None
    assert any(g.startswith(FLAG_METER_ERROR) for g in m.gaps())


@pytest.mark.parametrize("make", [gpu_lost, gpu_unreadable])
@pytest.mark.parametrize("allow", [False, True])
def test_an_incomplete_tec_is_unranked_with_the_reason_everywhere(make, allow: bool) -> None:
    run = make_run(allow_estimates=allow, train=make())
    costs = {c.name: c for c in entry_costs(run)}
    assert costs["base"].tec_j is None and costs["base"].gaps
    board = leaderboard(run).set_index("entry")
    for name in ("base", "variant"):  # the variant inherits base's training: incomplete too
        assert pd.isna(board.loc[name, "rank"]) and pd.isna(board.loc[name, "tie_group"])
        note = board.loc[name, "rank_note"]
        assert "energy incomplete, never summed as if whole" in note and "gpu:a" in note
        assert "train of base" in board.loc[name, "energy_gaps"]
    exported = _table(run, "leaderboard").set_index("entry")
    assert "gpu:a" in exported.loc["base", "energy_gaps"]
    assert "energy incomplete" in exported.loc["base", "rank_note"]
    metric = _table(run, "metric")
    assert metric["rank"].isna().all() and metric["rank_note"].str.contains("incomplete").all()
    console = Console(width=400, record=True)
    console.print(glance(run))
    text = console.export_text()
    assert "not ranked:" in text and "base: energy incomplete" in text


def test_a_serving_trial_with_a_gap_is_left_out_and_counted() -> None:
    lost = gpu_lost()
    lost.devices[0].energy_j = 9.0  # 0.9 J/frame: would pull the mean down if it were summed
    windows = [window(20.0, 2.0, 5.0), lost, window(20.0, 2.0, 5.0)]
    run = make_run(allow_estimates=False, variant_windows=windows)
    g = run.results("variant")["main"].groups()[""]
    assert g.trials_total == 3 and g.trials_without_energy == 1
    assert g.precision is not None and g.precision.trials_without_energy == 1
    assert g.energy_per_item_j is not None and g.energy_per_item_j.mean == pytest.approx(2.7)
    board = leaderboard(run).set_index("entry")
    assert board.loc["variant", "iec_j"] == pytest.approx(2.0)  # the two whole trials only
    assert board.loc["variant", "trials_without_energy"] == 1
    assert board.loc["variant", "rank"] == 1


def test_an_iec_whose_every_trial_has_a_gap_is_unranked_with_the_reason() -> None:
    run = make_run(allow_estimates=True, variant_windows=[gpu_unreadable(), gpu_unreadable()])
    board = leaderboard(run).set_index("entry")
    assert pd.isna(board.loc["variant", "iec_j"]) and pd.isna(board.loc["variant", "rank"])
    note = board.loc["variant", "rank_note"]
    assert "IEC: 2 of 2 trial(s) without a whole figure" in note and "gpu:a: no figure" in note
    assert board.loc["base", "rank"] == 1


def test_the_html_report_says_why_an_incomplete_entry_is_unranked(tmp_path) -> None:
    from energybench.report.html import write_report

    out = tmp_path / "r.html"
    write_report([make_run(allow_estimates=False, train=gpu_lost())], out)
    html = out.read_text()
    assert "energy incomplete, never summed as if whole" in html and "GPU lost after 3.0 s" in html


def test_a_phase_that_never_ran_or_failed_is_not_zero_joules() -> None:
    run = make_run(allow_estimates=False)
    run.phases["base"].compress = None  # never ran: no record at all
    costs = {c.name: c for c in entry_costs(run)}
    assert costs["base"].tec_j is None
    assert "compress of base: not run (no record)" in costs["base"].gaps
    board = leaderboard(run).set_index("entry")
    assert pd.isna(board.loc["base", "rank"]) and "not run" in board.loc["base", "rank_note"]
