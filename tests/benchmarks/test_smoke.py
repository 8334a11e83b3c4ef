"""Every benchmark runs in its ``--smoke`` form (a few seconds) so that none can rot unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str, flags: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if flags is not None:  # simulate a CPU with these flags (energybench's CPU-unit probe)
        env["ENERGYBENCH_CPU_FLAGS"] = flags
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def rows(out: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m, c): r for m, res in out["models"].items() for c, r in res.items()}


def test_bench_backends_reports_peaks_and_fraction_of_peak() -> None:
    out = json.loads(run("bench_backends.py", "--json").stdout)
    assert out["smoke"] and out["environment"]["allocator"]["allocator"]
    assert out["peaks"]["fp32"]["gemm_flops"] > 0 and out["peaks"]["copy_bytes_per_s"] > 0
    got = rows(out)
    eager, comp = got[("ckbg-merged", "eager")], got[("ckbg-merged", "compile")]
    assert not eager["compiled"] and comp["compiled"]
    for r in got.values():
        assert "error" not in r, r
        if r["dtype"] in out["peaks"]:
            assert (
                r["frac_gemm_peak"] == r["achieved_flops"] / out["peaks"][r["dtype"]]["gemm_flops"]
            )
    assert out["best_fraction_of_gemm_peak"] > 0
    cap = out["environment"]["cpu_capability"]
    lowp = {c: r for (m, c), r in got.items() if r["dtype"] in ("bf16", "int8")}
    if cap["bf16"] and cap["int8"]:
        assert {"eager+bf16", "eager+int8"} <= set(lowp)
        assert out["peaks"]["int8"]["conv3x3_flops"] > 0
        for r in lowp.values():
            assert r["quality"]["bound_db"] == {"bf16": 0.05, "int8": 0.1}[r["dtype"]]
            assert r["quality"]["psnr_drop_db"] == pytest.approx(
                r["quality"]["fp32_psnr_y_db"] - r["quality"]["psnr_y_db"]
            )
            assert r["frac_gemm_peak"] == pytest.approx(
                r["achieved_flops"] / out["peaks"][r["dtype"]]["gemm_flops"]
            )
        assert out["best_reduced_backend"] in lowp and "goals" in out


def test_bench_backends_on_a_cpu_without_the_units_reports_fp32_only() -> None:
    out = json.loads(run("bench_backends.py", "--json", flags="fpu avx2 fma").stdout)
    cap = out["environment"]["cpu_capability"]
    assert not cap["bf16"] and not cap["int8"] and "fp32 only" in cap["note"]
    assert {r["dtype"] for r in rows(out).values()} == {"fp32"}
    assert set(out["peaks"]) & {"bf16", "int8"} == set()
    assert out["best_reduced_backend"] is None
    assert out["goals"]["reduced_at_least_2x_best_fp32"] is None


def test_bench_ckbg_compile_rows_are_compiled() -> None:
    out = json.loads(run("bench_ckbg.py", "--compile", "--json").stdout)
    got = rows(out)
    merged = "ckbg merged (single path)"
    assert got[(merged, "compile")]["compiled"] and not got[(merged, "eager")]["compiled"]
    assert all("error" not in r for r in got.values())
    assert got[(merged, "eager")]["vs_multi_branch"] > 0


def test_bench_sampler_runs() -> None:
    text = run("bench_sampler.py").stdout
    assert "of one core; target < 0.3 %" in text and "target <= 1.01" in text


def test_bench_serving_runs() -> None:
    text = run("bench_serving.py").stdout
    assert "1. energybench" in text and "target <= 1.01" in text and "3. int8" in text
