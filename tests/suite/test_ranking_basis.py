"""What the leaderboard ranks: measured joules only unless estimates are allowed; like with like.

Runs are built in memory (records as the runner stores them), so each rule is checked on the
exact figures: an NVML GPU counter beside codecarbon's CPU/RAM estimate, as on a data-centre
server where RAPL is unreadable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from energybench.meters.base import DeviceEnergy, Measurement, Source
from energybench.records.store import RunData
from energybench.report.tables import break_even_rows, entry_costs, leaderboard
from energybench.serve.trials import aggregate_trials, trial_summary
from energybench.suite.schema import EnergySettings, Suite


def window(gpu_j: float, cpu_j: float, ram_j: float, *, shared: bool = False) -> Measurement:
    return Measurement(
        "w",
        0.0,
        10.0,
        [
            DeviceEnergy(
                "gpu:a", "gpu", "H100", Source("nvml-counter"), gpu_j, 0.05 * gpu_j,
                cuda_position=0, shared=shared,
            ),
            DeviceEnergy("gpu:b", "gpu", "H100", Source("nvml-counter"), 700.0, charged=False),
            DeviceEnergy("cpu:estimate", "cpu", "cpu", Source("estimate"), cpu_j, 0.5 * cpu_j),
            DeviceEnergy("ram:estimate", "ram", "ram", Source("estimate"), ram_j, 0.5 * ram_j),
        ],
    )  # fmt: skip


def scenario(
    kind: str, per_frame_gpu: list[float], shared: bool = False, allow: bool = False
) -> dict[str, Any]:
    trials = [
        trial_summary(window(g * 10, 2.0, 5.0, shared=shared), 10, [0.01]) for g in per_frame_gpu
    ]
    settings = EnergySettings(allow_estimates_in_ranking=allow)
    agg = aggregate_trials(trials, [0.01], 1, "frame", settings)
    if kind == "throughput":
        return {"scenario": kind, "batch_sizes": [1], "by_batch": {"1": agg}}
    stream = {"target_fps": 30.0, "frames_per_trial": 10, "deadline_miss_rate": 0.0}
    stream |= {"deadline_misses": 0, "fps_achieved": None}
    return {"scenario": kind, **stream, **agg}


def make_run(
    allow_estimates: bool, *, shared: bool = False, kinds: tuple[str, str] = ("stream", "stream")
) -> RunData:
    suite = Suite.model_validate(
        {
            "name": "t",
            "energy": {"allow_estimates_in_ranking": allow_estimates},
            "metric": {"quality": "psnr_db", "usage_intensities": [{"mui": 1000}]},
            "entries": [
                {
                    "name": "base",
                    "model": {"name": "espcn"},
                    "train": {"steps": 1},
                    "serve": [{"scenario": kinds[0], "name": "main"}],
                },
                {
                    "name": "variant",
                    "model": {"name": "espcn"},
                    "inherit": "base",
                    "compress": [{"method": "reparameterize"}],
                    "serve": [{"scenario": kinds[1], "name": "main"}],
                },
            ],
        }
    ).model_dump(mode="json")

    def phase(entry: str, name: str, meas: Measurement | None, **kw: Any) -> dict[str, Any]:
        rec = {"entry": entry, "phase": name, "status": "done", "config_hash": "h", **kw}
        rec["measurement"] = meas.to_dict() if meas else None
        return rec

    def evaluate(entry: str, q: float) -> dict[str, Any]:
        return phase(entry, "evaluate", None, quality={"psnr_db": q})

    phases = {
        "base": {
            "train": phase("base", "train", window(990.0, 26.0, 65.0)),
            "serve": phase(
                "base", "serve", None, scenarios={"main": scenario(kinds[0], [3.0, 3.0], allow=allow_estimates)}
            ),
            "evaluate": evaluate("base", 30.0),
        },
        "variant": {
            "train": phase("variant", "train", None) | {"status": "skipped"},
            "compress": phase("variant", "compress", window(100.0, 5.0, 7.0)),
            "serve": phase(
                "variant", "serve", None, scenarios={"main": scenario(kinds[1], [2.0, 2.0], shared, allow_estimates)}
            ),
            "evaluate": evaluate("variant", 30.0),
        },
    }  # fmt: skip
    manifest = {"suite": suite, "placements": {"base": "cuda:0", "variant": "cuda:0"}}
    return RunData.from_records(Path("/nonexistent/run"), manifest, phases)


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
    run.manifest["suite"]["energy"]["allow_shared_devices"] = True
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
