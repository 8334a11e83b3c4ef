"""benchmarks/gpu_validate.py runs under ``--simulate h100`` and writes a labelled report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import gpu_validate  # noqa: E402


def test_simulated_validation_writes_a_labelled_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Environment and meter checks run for real against the simulated H100; the commands are
    recorded (their own smoke tests run them)."""
    seen: list[list[str]] = []

    def fake_run(step: Any, argv: list[str], timeout_s: float, env: dict[str, str]) -> Any:
        seen.append(argv)
        step.rc, step.output = 0, "3 skipped in 0.1s"
        if step.name == "CKBG benchmark":
            step.output = '{"peaks": {"fp32": {}}, "models": {"m": {"eager": {"median_fps": 5}}}}'
        return step

    monkeypatch.setattr(gpu_validate, "run_cmd", fake_run)
    assert gpu_validate.main(["--simulate", "h100", "--out", str(tmp_path)]) == 0
    (report,) = tmp_path.glob("*-nvidia-h100-80gb-hbm3-SIMULATED.md")
    text = report.read_text()
    assert text.startswith("# SIMULATED GPU validation: NVIDIA H100 80GB HBM3")
    assert "**SIMULATED**" in text and "| power_limit_w | 700.0 |" in text
    assert "| mig_mode_current_pending | [0, 0] |" in text
    for name in ("pytest -m gpu", "energybench meters", "CKBG benchmark", "short suite run"):
        assert f"## {name}: passed" in text
    assert "`python -m energybench meters --simulate h100`" in text
    assert "idle_cold_w" in text and "idle_warm_w" in text and "rel_diff" in text
    suite = next(a for a in seen if "run" in a)
    assert "--simulate" in suite and "suites/vsr.yaml" in suite
    assert any("bench_ckbg.py" in " ".join(a) for a in seen)


def test_real_mode_asks_cuda_for_every_dtype_and_compile(tmp_path: Path) -> None:
    args = gpu_validate.argparse.Namespace(simulate=None, gpu=1)
    steps = {s.name: argv for s, argv, _ in gpu_validate.command_steps(args, tmp_path)}
    bench = " ".join(steps["CKBG benchmark"])
    assert "--device cuda:1" in bench and "--compile" in bench and "fp32,fp16,bf16" in bench
    assert steps["pytest -m gpu"][-1] == "tests"
    assert sum(limit for _, _, limit in gpu_validate.command_steps(args, tmp_path)) <= 540
    suite = " ".join(steps["short suite run"])
    assert "suites/vsr-gpu.yaml" in suite and "--only ckbg-merged-ort" in suite
    assert "defaults.train.steps=100" in suite  # minutes, not the suite's quarter hour


def test_the_suite_run_reports_the_batch_sized_on_the_device(tmp_path: Path) -> None:
    entry = tmp_path / "vsr-gpu" / "run1" / "entries" / "ckbg-grafted"
    entry.mkdir(parents=True)
    sizing = {"batch_size": 128, "rule": "r", "device": "cuda:0", "per_item_bytes": 90 * 2**20}
    rec = {"entry": "ckbg-grafted", "train": {"batch_size": 128, "batch_sizing": sizing}}
    (entry / "train.json").write_text(json.dumps(rec))
    figs = gpu_validate.suite_figures(tmp_path)
    assert figs == {"ckbg-grafted batch": "128 (auto: 90 MiB/item measured)"}


def test_missing_packages_are_named_with_how_to_bring_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gpu_validate, "missing", lambda mods: ["pydantic"] if "typer" in mods
                        else [])  # fmt: skip
    args = gpu_validate.argparse.Namespace(simulate="h100")
    (line,) = gpu_validate.preflight(args)
    assert "pydantic" in line and "wheels" in line


@pytest.mark.slow
def test_simulated_validation_runs_end_to_end(tmp_path: Path) -> None:
    """The whole script as CI runs it (every command for real, on the CPU)."""
    proc = subprocess.run(
        [sys.executable, str(gpu_validate.ROOT / "benchmarks" / "gpu_validate.py"),
         "--simulate", "h100", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=gpu_validate.ROOT,
    )  # fmt: skip
    assert "SIMULATED report:" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert list(tmp_path.glob("*-SIMULATED.md"))
