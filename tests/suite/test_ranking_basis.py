"""What the leaderboard ranks: measured joules only unless estimates are allowed; like with like.

Runs are built in memory (records as the runner stores them), so each rule is checked on the
exact figures: an NVML GPU counter beside codecarbon's CPU/RAM estimate, as on a data-centre
server where RAPL is unreadable.
"""

from __future__ import annotations

from typing import Any

import pytest

from energybench.report.tables import break_even_rows, entry_costs, leaderboard
from tests.helpers.runs import make_run


def test_without_estimates_in_ranking_tec_and_iec_cover_measured_devices_only() -> None:
    board = leaderboard(make_run(allow_estimates=False)).set_index("entry")
    base = board.loc["base"]
    assert base["tec_j"] == pytest.approx(990.0)  # GPU counter only: no 26 J + 65 J estimate
    assert base["tec_estimated_j"] == pytest.approx(91.0)  # shown beside, never summed in
    assert base["iec_j"] == pytest.approx(3.0)
    assert base["iec_estimated_j"] == pytest.approx(0.7)
    assert not base["is_estimate"] and base["rank"] == 2
    assert base["energy_scope"] == "GPU only; CPU/RAM not measured (estimate shown beside)"
    assert "estimate" not in base["sources"]
    assert board.loc["variant", "tec_j"] == pytest.approx(1090.0)  # inherited training + own


def test_with_estimates_in_ranking_any_estimated_joule_makes_an_estimate() -> None:
    board = leaderboard(make_run(allow_estimates=True)).set_index("entry")
    base = board.loc["base"]
    assert base["tec_j"] == pytest.approx(1081.0)  # every charged device; cuda:1 never
    assert base["iec_j"] == pytest.approx(3.7)
    assert base["is_estimate"] and base["tec_is_estimate"] and base["iec_is_estimate"]
    assert base["energy_scope"] == "GPU measured + CPU/RAM estimated"
    assert base["rank"] == 2  # allowed: ranked, and marked as an estimate
    be = break_even_rows(make_run(allow_estimates=True))
    assert be["is_estimate"].all()


def test_estimates_unranked_when_not_allowed_and_nothing_measured() -> None:
    run = make_run(allow_estimates=False)
    for rec in (run.phases["base"].train, run.phases["variant"].compress):
        assert rec is not None and rec.measurement is not None
        m = rec.measurement
        m.devices = [d for d in m.devices if d.source == "estimate"]
    board = leaderboard(run).set_index("entry")
    assert board.loc["base", "tec_is_estimate"] and board.loc["base", "rank"] is None
    assert "estimates" in board.loc["base", "rank_note"]


def test_a_shared_device_is_unranked_unless_allowed() -> None:
    run = make_run(allow_estimates=False, shared=True)
    board = leaderboard(run).set_index("entry")
    assert board.loc["variant", "is_shared"] and pd_isna(board.loc["variant", "rank"])
    assert "shared device" in board.loc["variant", "rank_note"]
    run.suite.energy.allow_shared_devices = True  # the typed suite the report reads
    assert leaderboard(run).set_index("entry").loc["variant", "rank"] == 1


def test_unlike_scenarios_are_never_ranked_together() -> None:
    run = make_run(allow_estimates=False, kinds=("stream", "throughput"))
    costs = {c.name: c for c in entry_costs(run)}
    assert costs["variant"].iec_j is None and costs["variant"].iec_scenario is None
    board = leaderboard(run).set_index("entry")
    assert board.loc["base", "rank"] == 1
    assert pd_isna(board.loc["variant", "rank"])
    assert "same scenario kind and batch size" in board.loc["variant", "rank_note"]


def test_break_even_on_one_device_uses_trial_spread_only() -> None:
    be = break_even_rows(make_run(allow_estimates=False)).iloc[0]
    assert be["kind"] == "at" and "gain error cancels" in be["note"]
    assert not be["is_estimate"]


def pd_isna(v: Any) -> bool:
    import pandas as pd

    return v is None or bool(pd.isna(v))


def test_break_even_across_devices_keeps_the_meters_gain_error() -> None:
    # the suite placed both on "cuda:0", but the variant's figures were read from another GPU:
    # its meter's gain error differs from base's and must not be cancelled
    run = make_run(allow_estimates=False, variant_gpu="gpu:c")
    costs = {c.name: c for c in entry_costs(run)}
    assert costs["base"].devices == ("gpu:a@nvml-counter",)
    assert costs["variant"].devices == ("gpu:c@nvml-counter",)
    be = break_even_rows(run).iloc[0]
    assert "gain error cancels" not in be["note"]
    same = break_even_rows(make_run(allow_estimates=False)).iloc[0]
    # on one device the band is narrower (trial spread only): across devices it is wider
    assert (same["mui_lo"], same["mui_hi"]) != (be["mui_lo"], be["mui_hi"])


def test_break_even_on_one_device_ignores_placement_labels() -> None:
    run = make_run(allow_estimates=False)
    run.info.placements = {"base": "cuda:0", "variant": "cuda:1"}  # labels only
    assert "gain error cancels" in break_even_rows(run).iloc[0]["note"]
