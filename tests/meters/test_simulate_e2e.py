"""Issue "measured means measured", end to end through the CLI on simulated NVIDIA servers.

Each test runs a tiny suite with ``energybench run --simulate PROFILE`` (the real NVML adapter on
the fake ``pynvml``) and checks what a user reads in the export and the report.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from energybench.cli import app

SUITE = """\
name: simtiny
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 1}
energy:
  meters: [nvml, estimate]
  idle_baseline_s: 0.2
  sample_period_s: 0.02
  min_window_s: 0.3
  min_window_iters: 2
  trials: 2
  max_trials: 2
metric:
  quality: psnr_db
  iec_scenario: main
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {name: main, scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
  - name: big
    model: {name: espcn, params: {channels: 8, layers: 3, first_kernel: 3}}
    serve:
      - {name: main, scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
      - {name: live, scenario: stream, fps: 50, frames: 4, warmup: 0}
"""


def run(tmp: Path, profile: str, *sets: str, name: str = "r") -> tuple[Path, pd.DataFrame]:
    suite = tmp / "simtiny.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    out = tmp / name
    args = ["run", str(suite), "--out", str(out), "--simulate", profile]
    args += [a for s in sets for a in ("--set", s)]
    res = CliRunner().invoke(app, [*args, "--report", str(tmp / f"{name}.html")])
    assert res.exit_code == 0, res.output
    (run_dir,) = out.glob("simtiny/*/")
    exp = CliRunner().invoke(app, ["export", str(run_dir), "--format", "csv", "-o", "-"])
    assert exp.exit_code == 0, exp.output
    return run_dir, pd.read_csv(io.StringIO(exp.stdout), low_memory=False)


def table(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["table"] == name]


def test_h100_ranks_on_gpu_energy_only_and_says_so(tmp_path: Path) -> None:
    run_dir, frame = run(tmp_path, "h100")
    board = table(frame, "leaderboard").set_index("entry")
    assert board["rank"].notna().all()
    assert (board["energy_scope"] == "GPU only; CPU/RAM not measured (estimate shown beside)").all()
    assert not board["is_estimate"].astype(bool).any()
    nvml = {"nvml-counter", "nvml-power-integrated"}  # integrated: a window shorter than a tick
    assert all(set(src.split(";")) <= nvml for src in board["sources"])
    assert (board["iec_estimated_j"] > 0).all()  # the CPU/RAM estimate, beside
    assert board["is_simulated"].astype(bool).all()
    phases = table(frame, "phases")
    gpu = phases[phases["device_kind"] == "gpu"]
    assert gpu["is_simulated"].astype(bool).all() and gpu["flags"].str.contains("simulated").all()
    # the ranked IEC is the GPU's J/item alone: equal to the scenario's measured J/item
    scen = table(frame, "scenarios").set_index(["entry", "scenario"])
    for entry in board.index:
        assert board.loc[entry, "iec_j"] == pytest.approx(
            scen.loc[(entry, "main"), "measured_energy_per_item_j"]
        )
    html = (tmp_path / "r.html").read_text()
    assert "SIMULATED" in html and "GPU only; CPU/RAM not measured" in html


def test_with_estimates_allowed_any_estimated_joule_makes_an_estimate(tmp_path: Path) -> None:
    _, frame = run(tmp_path, "h100", "energy.allow_estimates_in_ranking=true")
    board = table(frame, "leaderboard").set_index("entry")
    assert board["is_estimate"].astype(bool).all()
    assert (board["energy_scope"] == "GPU measured + CPU/RAM estimated").all()


def test_gh200_module_energy_gets_no_cpu_ram_estimate_on_top(tmp_path: Path) -> None:
    _, frame = run(tmp_path, "gh200")
    phases = table(frame, "phases").dropna(subset=["device"])
    assert set(phases["device_kind"]) == {"module"}
    assert not phases["device"].str.contains("estimate").any()
    board = table(frame, "leaderboard")
    assert (board["energy_scope"] == "GPU + CPU + memory module measured").all()
    assert board["rank"].notna().all()


def test_mig_is_unranked_unless_allowed(tmp_path: Path) -> None:
    _, frame = run(tmp_path, "h100-mig")
    board = table(frame, "leaderboard")
    assert board["rank"].isna().all() and board["is_shared"].astype(bool).all()
    assert board["rank_note"].str.contains("shared device").all()
    _, frame = run(tmp_path, "h100-mig", "energy.allow_shared_devices=true", name="allowed")
    assert table(frame, "leaderboard")["rank"].notna().all()


def test_another_process_on_the_gpu_is_flagged_shared(tmp_path: Path) -> None:
    _, frame = run(tmp_path, "h100-shared")
    phases = table(frame, "phases")
    assert phases[phases["device_kind"] == "gpu"]["flags"].str.contains("shared-device").all()
    assert table(frame, "leaderboard")["rank"].isna().all()


def test_an_entry_is_charged_only_for_its_own_gpu(tmp_path: Path) -> None:
    run_dir, frame = run(tmp_path, "2xh100", "entries.big.device=cuda:1")
    phases = table(frame, "phases")
    gpus = phases[phases["device_kind"] == "gpu"]
    assert gpus["device"].nunique() == 2  # both GPUs are watched ...
    for entry, rows in gpus.groupby("entry"):
        charged = rows[rows["charged"].astype(bool)]["device"].unique()
        assert len(charged) == 1, entry  # ... but each entry is charged for its own only
    small = gpus[(gpus["entry"] == "small") & gpus["charged"].astype(bool)]["device"].unique()
    big = gpus[(gpus["entry"] == "big") & gpus["charged"].astype(bool)]["device"].unique()
    assert set(small) != set(big)
    # the device set is in every phase hash: resuming on another device set is refused
    suite = tmp_path / "simtiny.yaml"
    res = CliRunner().invoke(
        app, ["run", str(suite), "--resume", str(run_dir), "--simulate", "2xh100", "--no-report"]
    )
    assert res.exit_code == 2 and "different configuration" in res.output


def test_unknown_profile_and_unlike_scenarios_are_bad_input(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    res = CliRunner().invoke(app, ["run", str(suite), "--simulate", "h900", "--no-report"])
    assert res.exit_code == 2 and "h100" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["validate", str(suite), "--set", "metric.iec_scenario=live"])
    assert res.exit_code == 0
    assert "entry 'small' cannot be ranked" in res.output.replace("\n", " ")


@pytest.mark.parametrize("meters", ["[rapl]", "[nvml]"])
def test_a_forced_meter_that_cannot_work_is_bad_input_before_any_folder(
    tmp_path: Path, meters: str
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    out = tmp_path / "out"
    args = ["run", str(suite), "--out", str(out), "--set", f"energy.meters={meters}"]
    res = CliRunner().invoke(app, args)
    if res.exit_code == 0:  # this machine has the meter (a GPU server, readable RAPL)
        pytest.skip(f"{meters} works here")
    assert res.exit_code == 2 and "energy.meters asks for" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_container_ranks_normally_with_sharing_not_checked(tmp_path: Path) -> None:
    """NVML reports the run's host pid inside Docker: never "shared", always "not checked"."""
    _, frame = run(tmp_path, "h100-container")
    board = table(frame, "leaderboard")
    assert board["rank"].notna().all() and not board["is_shared"].astype(bool).any()
    phases = table(frame, "phases")
    gpu = phases[phases["device_kind"] == "gpu"]
    assert gpu["flags"].str.contains("sharing-not-checked").all()
    assert not gpu["flags"].str.contains("shared-device").any()
    assert gpu["note"].str.contains("sharing not checked").all()
    html = (tmp_path / "r.html").read_text()
    assert "sharing not checked" in html and "PID namespace" in html


def test_4xgh200_cpu_entry_charged_the_same_with_or_without_a_gpu_entry(tmp_path: Path) -> None:
    def cpu_charged(frame: pd.DataFrame) -> set[str]:
        phases = table(frame, "phases")
        rows = phases[(phases["entry"] == "small") & phases["charged"].astype(bool)]
        return set(rows["device"].dropna())

    _, alone = run(tmp_path, "4xgh200", "entries.small.device=cpu", "entries.big.device=cpu")
    _, mixed = run(tmp_path, "4xgh200", "entries.small.device=cpu", name="mixed")
    assert len(cpu_charged(alone)) == 4 and cpu_charged(alone) == cpu_charged(mixed)
