"""Issue 28: a run folder is untrusted input. A link where the tool reads or writes, a hand-edited
value in any record or the manifest, a future store version: each is refused by every command
(exit 2, the file and field named, no traceback, within a time bound), and nothing outside
``--out`` (here: the folder a link points to) changes. Implausible figures are never ranked.

Every case runs the real CLI on a private copy of one tiny finished run (built once per module).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from tests.hostile.test_run_folders import (
    SUITE,
    assert_nothing_outside_out,
    assert_user_error,
    cli,
    edit,
    rec,
    snapshot,
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(suite, run_dir)`` of a finished two-entry run (``child`` inherits ``teacher``)."""
    tmp = tmp_path_factory.mktemp("tiny-untrusted")
    suite = tmp / "tiny.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp / "out"), "--no-report"])
    assert res.exit_code == 0, res.output
    (manifest,) = (tmp / "out").glob("tiny/*/manifest.json")
    return suite, manifest.parent


@pytest.fixture
def run(
    finished: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """``(suite, run_dir)``: a private copy under ``tmp_path/out``; cwd is ``tmp_path``."""
    suite, run_dir = finished
    mine = tmp_path / "out" / "tiny" / run_dir.name
    shutil.copytree(run_dir, mine)
    shutil.copy(suite, tmp_path / "tiny.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "tiny.yaml", mine


@pytest.fixture
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the run and outside the working folder: where a link points."""
    return tmp_path_factory.mktemp("elsewhere")


def command(kind: str, suite: Path, run_dir: Path, tmp_path: Path) -> list[Any]:
    """The CLI arguments of ``kind`` on ``run_dir`` (outputs written under ``out/``)."""
    return {
        "resume": ["run", suite, "--resume", run_dir, "--no-report"],
        "report": ["report", run_dir, "-o", tmp_path / "out" / "r.html"],
        "export": ["export", run_dir, "--format", "csv", "-o", tmp_path / "out" / "r.csv"],
        "plan": ["plan", run_dir, "--p99-ms", "100", "--rate", "1"],
        "site": ["site", run_dir, "-o", tmp_path / "out" / "site"],
    }[kind]


COMMANDS = ("resume", "report", "export", "site")


# --------------------------------------------------------------------------- links
def _file_link(rel: str) -> Callable[[Path, Path], Path]:
    """Replace the run's file ``rel`` by a link to a file elsewhere (a copy of it, or new)."""

    def plant(run_dir: Path, elsewhere: Path) -> Path:
        here = run_dir / rel
        target = elsewhere / "victim"
        target.write_bytes(here.read_bytes() if here.is_file() else b"precious\n")
        here.unlink(missing_ok=True)
        here.parent.mkdir(parents=True, exist_ok=True)
        here.symlink_to(target)
        return here

    return plant


def _dir_link(rel: str) -> Callable[[Path, Path], Path]:
    """Move the run's folder ``rel`` elsewhere and leave a link to it in its place."""

    def plant(run_dir: Path, elsewhere: Path) -> Path:
        here = run_dir / rel
        target = elsewhere / "moved"
        if here.is_dir():
            shutil.move(str(here), target)
        else:
            target.mkdir()
        here.symlink_to(target, target_is_directory=True)
        return here

    return plant


def _fifo(rel: str) -> Callable[[Path, Path], Path]:
    def plant(run_dir: Path, elsewhere: Path) -> Path:
        here = run_dir / rel
        here.unlink(missing_ok=True)
        os.mkfifo(here)
        return here

    return plant


LINKS: dict[str, Callable[[Path, Path], Path]] = {
    "run.lock": _file_link("run.lock"),
    "manifest.json": _file_link("manifest.json"),
    "idle.json": _file_link("idle.json"),
    "entries": _dir_link("entries"),
    "entries/teacher": _dir_link("entries/teacher"),
    "entries/child/evaluate.json": _file_link("entries/child/evaluate.json"),
    "entries/teacher/checkpoints": _dir_link("entries/teacher/checkpoints"),
    "entries/teacher/checkpoints/train.pt": _file_link("entries/teacher/checkpoints/train.pt"),
    "traces": _dir_link("traces"),
    "traces/power-nvml.csv": _file_link("traces/power-nvml.csv"),
    "fifo serve.json": _fifo("entries/teacher/serve.json"),
}


@pytest.mark.parametrize("kind", COMMANDS)
@pytest.mark.parametrize("where", sorted(LINKS))
def test_a_link_in_the_run_folder_is_refused(
    run: tuple[Path, Path], tmp_path: Path, elsewhere: Path, where: str, kind: str
) -> None:
    """A link (or FIFO) where the tool reads or writes: exit 2 naming it, nothing followed."""
    suite, run_dir = run
    link = LINKS[where](run_dir, elsewhere)
    outside, inside = snapshot(elsewhere), snapshot(run_dir)
    res, took = cli(command(kind, suite, run_dir, tmp_path))
    assert_user_error(res, took, 2, link, "refusing to follow it")
    assert snapshot(elsewhere) == outside  # the link's target: not written, not truncated
    assert snapshot(run_dir) == inside  # the run folder: unchanged (no lock, no manifest)
    assert_nothing_outside_out(tmp_path)
    for made in ("r.html", "r.csv", "site"):
        assert not (tmp_path / "out" / made).exists()


def test_a_run_folder_given_through_a_link_is_used(
    run: tuple[Path, Path], tmp_path: Path, elsewhere: Path
) -> None:
    """The folder named on the command line may itself be a link; only what is inside may not."""
    _, run_dir = run
    alias = elsewhere / "alias"
    alias.symlink_to(run_dir, target_is_directory=True)
    res, _ = cli(["export", alias, "--format", "csv", "-o", tmp_path / "out" / "r.csv"])
    assert res.exit_code == 0, res.output


# --------------------------------------------------------------------------- hand-edited values
def _serve_group(r: dict) -> dict:
    return r["scenarios"]["throughput"]["by_batch"]["1"]


def _devices(r: dict) -> None:
    r["measurement"]["devices"][0]["energy_j"] = 1e308


EDITS: dict[str, tuple[str, Callable[[dict], object], tuple[str, ...]]] = {
    # records: energies, qualities, latencies, rates, fractions, counts
    "train energy 1e308": (
        "teacher/train",
        lambda r: r["measurement"].update(energy_j=1e308),
        ("measurement.energy_j", "more than any benchmark phase"),
    ),
    "device energy 1e308": ("teacher/train", _devices, ("devices[0].energy_j",)),
    "quality NaN": (
        "teacher/evaluate",
        lambda r: r["quality"].update(psnr_db=float("nan")),
        ("quality.psnr_db", "NaN"),
    ),
    "quality -Infinity": (
        "teacher/evaluate",
        lambda r: r["quality"].update(psnr_db=-math.inf),
        ("quality.psnr_db", "-Infinity"),
    ),
    "ssim Infinity": (
        "child/evaluate",
        lambda r: r["quality"].update(ssim=math.inf),
        ("quality.ssim", "Infinity"),
    ),
    "quality an empty list": (
        "teacher/evaluate",
        lambda r: r["quality"].update(psnr_db=[]),
        ("quality.psnr_db", "found a list"),
    ),
    "quality string": (
        "teacher/evaluate",
        lambda r: r["quality"].update(psnr_db="high"),
        ("quality.psnr_db", "found a string"),
    ),
    "latency p99 Infinity": (
        "teacher/serve",
        lambda r: _serve_group(r)["latency_ms"].update(p99=math.inf),
        ("by_batch.1.latency_ms.p99", "a latency in ms"),
    ),
    "latency negative": (
        "child/serve",
        lambda r: _serve_group(r)["latency_ms"].update(mean=-3),
        ("latency_ms.mean", "must be >= 0"),
    ),
    "items_per_s -5": (
        "teacher/serve",
        lambda r: _serve_group(r)["items_per_s"].update(mean=-5),
        ("items_per_s.mean", "a rate per second"),
    ),
    "trial items -1": (
        "teacher/serve",
        lambda r: _serve_group(r)["trials"][0].update(items=-1),
        ("trials[0].items", "a count"),
    ),
    "trial items of 400 digits": (
        "teacher/serve",
        lambda r: _serve_group(r)["trials"][0].update(items=10**400),
        ("trials[0].items", "a count"),
    ),
    "trials_total 1.5": (
        "teacher/serve",
        lambda r: _serve_group(r).update(trials_total=1.5),
        ("trials_total", "whole number"),
    ),
    "per-item energy 1e308": (
        "teacher/serve",
        lambda r: _serve_group(r)["trials"][0].update(energy_per_item_j=1e308),
        ("trials[0].energy_per_item_j",),
    ),
    "duration NaN": (
        "teacher/train",
        lambda r: r.update(duration_s=float("nan")),
        ("duration_s", "finite"),
    ),
    "uncertainty NaN": (
        "teacher/train",
        lambda r: r["measurement"].update(uncertainty_j=float("nan")),
        ("measurement.uncertainty_j", "NaN"),
    ),
    "device uncertainty 1e308": (
        "teacher/train",
        lambda r: r["measurement"]["devices"][0].update(uncertainty_j=1e308),
        ("devices[0].uncertainty_j", "more than any benchmark phase"),
    ),
    "static energy -1": (
        "teacher/train",
        lambda r: r["measurement"]["devices"][0].update(static_j=-1),
        ("devices[0].static_j", "cannot be negative"),
    ),
    "mean power -1": (
        "teacher/train",
        lambda r: r["measurement"]["devices"][0].update(mean_power_w=-1),
        ("devices[0].mean_power_w", "a power in W"),
    ),
    "window duration NaN": (
        "teacher/train",
        lambda r: r["measurement"].update(duration_s=float("nan")),
        ("measurement.duration_s", "a time in seconds"),
    ),
    "start time 1e308": (
        "teacher/train",
        lambda r: r.update(started_unix_s=1e308),
        ("started_unix_s", "seconds since 1970"),
    ),
    "model size -1": (
        "teacher/train",
        lambda r: r["model"].update(size_bytes=-1),
        ("model.size_bytes", "a count"),
    ),
    "sparsity 5": (
        "teacher/train",
        lambda r: r["model"].update(sparsity=5),
        ("model.sparsity", "a fraction"),
    ),
    "FLOPs per item -1": (
        "child/serve",
        lambda r: r.update(flops_per_item=-1),
        ("flops_per_item", "a FLOP count"),
    ),
    # the manifest: store version and metric settings
    "store_version abc": ("manifest", lambda m: m.update(store_version="abc"), ("store_version",)),
    "store_version 1e999": (
        "manifest",
        lambda m: m.update(store_version=math.inf),
        ("store_version", "whole number"),
    ),
    "store_version [2]": ("manifest", lambda m: m.update(store_version=[2]), ("store_version",)),
    "store_version of 4000 digits": (
        "manifest",
        lambda m: m.update(store_version=int("9" * 4000)),
        ("store_version", "whole number"),
    ),
    "store_version 0": ("manifest", lambda m: m.update(store_version=0), ("store_version",)),
    "tau -1": (
        "manifest",
        lambda m: m["suite"]["metric"].update(tau=-1),
        ("suite.metric.tau", "between 0 and 100"),
    ),
    "tau NaN": (
        "manifest",
        lambda m: m["suite"]["metric"].update(tau=float("nan")),
        ("suite.metric.tau",),
    ),
    "mui -1000": (
        "manifest",
        lambda m: m["suite"]["metric"]["usage_intensities"][0].update(mui=-1000),
        ("usage_intensities[0].mui",),
    ),
    "usage_intensities []": (
        "manifest",
        lambda m: m["suite"]["metric"].update(usage_intensities=[]),
        ("suite.metric.usage_intensities", "1 to 100"),
    ),
    "weight x": (
        "manifest",
        lambda m: m["suite"]["metric"]["usage_intensities"][0].update(weight="x"),
        ("usage_intensities[0].weight", "found a string"),
    ),
    "peak NaN": (
        "manifest",
        lambda m: m.update(peaks={"cpu": {"fp32": float("nan")}}),
        ("peaks.cpu.fp32", "FLOP/s"),
    ),
    "peak -5": (
        "manifest",
        lambda m: m.update(peaks={"cpu": {"fp32": -5}}),
        ("peaks.cpu.fp32", "FLOP/s"),
    ),
    "peaks a list": ("manifest", lambda m: m.update(peaks=[1]), ("peaks", "an object")),
    "created NaN": (
        "manifest",
        lambda m: m.update(created_unix_s=float("nan")),
        ("created_unix_s", "seconds since 1970"),
    ),
    "created 1e308": (
        "manifest",
        lambda m: m.update(created_unix_s=1e308),
        ("created_unix_s", "seconds since 1970"),
    ),
    "meters [1]": ("manifest", lambda m: m.update(meters=[1]), ("meters[0]", "an object")),
    "cool-downs a string": ("manifest", lambda m: m.update(cooldowns="x"), ("cooldowns",)),
    "weights all 0": (
        "manifest",
        lambda m: [u.update(weight=0) for u in m["suite"]["metric"]["usage_intensities"]],
        ("every weight is 0",),
    ),
}


def _target(run_dir: Path, key: str) -> Path:
    return run_dir / "manifest.json" if key == "manifest" else rec(run_dir, key)


@pytest.mark.parametrize("kind", ["report", "export", "site"])
@pytest.mark.parametrize("case", sorted(EDITS))
def test_a_hand_edited_value_is_a_located_error(
    run: tuple[Path, Path], tmp_path: Path, case: str, kind: str
) -> None:
    suite, run_dir = run
    key, change, located = EDITS[case]
    path = _target(run_dir, key)
    edit(path, change)
    before = snapshot(run_dir)
    res, took = cli(command(kind, suite, run_dir, tmp_path))
    assert_user_error(res, took, 2, path, *located)
    assert snapshot(run_dir) == before
    assert_nothing_outside_out(tmp_path)


@pytest.mark.parametrize(
    "case", ["store_version abc", "tau NaN", "weight x", "usage_intensities []"]
)
def test_resume_never_rewrites_a_manifest_it_cannot_read(
    run: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    suite, run_dir = run
    _, change, located = EDITS[case]
    edit(run_dir / "manifest.json", change)
    before = snapshot(run_dir)
    res, took = cli(command("resume", suite, run_dir, tmp_path))
    assert_user_error(res, took, 2, run_dir / "manifest.json", *located)
    assert snapshot(run_dir) == before
    assert_nothing_outside_out(tmp_path)


@pytest.mark.parametrize("kind", ["resume", "report", "export", "plan", "site"])
def test_a_future_store_version_is_refused_by_every_command(
    run: tuple[Path, Path], tmp_path: Path, kind: str
) -> None:
    suite, run_dir = run
    manifest = run_dir / "manifest.json"
    edit(manifest, lambda m: m.update(store_version=99))
    before = snapshot(run_dir)
    res, took = cli(command(kind, suite, run_dir, tmp_path))
    assert_user_error(res, took, 2, manifest, "store_version", "newer energybench")
    assert snapshot(run_dir) == before  # not downgraded, not rewritten
    assert json.loads(manifest.read_text())["store_version"] == 99
    assert_nothing_outside_out(tmp_path)


# --------------------------------------------------------------------------- implausible figures
def test_an_iec_of_zero_is_not_ranked(run: tuple[Path, Path], tmp_path: Path) -> None:
    """IEC edited to 0 J per item: the entry is listed unranked with its reason, never #1 with
    an infinite score."""
    _, run_dir = run

    def zero(r: dict) -> None:
        g = _serve_group(r)
        g["energy_per_item_j"]["mean"] = 0.0
        g["estimated_energy_per_item_j"]["mean"] = 0.0

    edit(rec(run_dir, "child/serve"), zero)
    out = tmp_path / "out" / "r.csv"
    res, took = cli(["export", run_dir, "--format", "csv", "-o", out])
    assert res.exit_code == 0, res.output
    rows = [r for r in csv.DictReader(out.open()) if r["table"] in ("leaderboard", "metric")]
    child = [r for r in rows if r["entry"] == "child"]
    assert len(child) == 4, rows  # the suite score and three usage intensities
    assert all(not r["rank"] for r in child), child
    assert all("IEC = 0 J per item is not a plausible measurement" in r["rank_note"] for r in child)
    assert {r["rank"] for r in rows if r["entry"] == "teacher"} == {"1"}
    assert not any("inf" in (r["score"] + r["greenness"]).lower() for r in rows)
    assert took < 120


# --------------------------------------------------------------------------- readers write nothing
def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root``, folders included, with its mode and mtime."""
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    }


@pytest.mark.parametrize("kind", ["report", "export", "site", "plan"])
def test_a_reading_command_leaves_the_run_folder_as_it_was(
    run: tuple[Path, Path], tmp_path: Path, kind: str
) -> None:
    """Commands that read a run create nothing in it, not even an empty folder, and work on a
    run without ``traces/`` (as one without a power meter is)."""
    suite, run_dir = run
    shutil.rmtree(run_dir / "traces", ignore_errors=True)
    before = _tree(run_dir)
    res, _ = cli(command(kind, suite, run_dir, tmp_path))
    assert res.exit_code in ((0, 1) if kind == "plan" else (0,)), res.output  # plan: 1 = no answer
    assert _tree(run_dir) == before


#: Outputs written inside the run folder: (the command's arguments, the output path in the run)
OUTPUTS_IN_RUN: dict[str, tuple[list[str], str]] = {
    "report": (["report", "{run}", "-o", "{run}/report.html"], "report.html"),
    "export-csv": (["export", "{run}", "--format", "csv", "-o", "{run}/b.csv"], "b.csv"),
    "export-latex": (["export", "{run}", "--format", "latex", "-o", "{run}/b.tex"], "b.tex"),
    "figures": (["report", "{run}", "-o", "{run}/r.html", "--figures", "{run}/figs"], "figs"),
    "site": (["site", "{run}", "-o", "{run}/site"], "site"),
}


@pytest.mark.parametrize("case", sorted(OUTPUTS_IN_RUN))
def test_an_output_in_the_run_folder_never_follows_a_link_planted_after_the_read(
    case: str,
    run: tuple[Path, Path],
    elsewhere: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A link planted between the read-time scan and the write (the scan is skipped here, as a
    race would) is refused where the output is written: exit 2 naming it, the target unchanged."""
    from energybench.records import safefs

    _, run_dir = run
    args, target = OUTPUTS_IN_RUN[case]
    victim = elsewhere / "victim"
    if target in ("figs", "site"):  # a folder of outputs: the link is the folder
        victim.mkdir()
        (victim / "keep.txt").write_text("mine")
    else:
        victim.write_text("mine")
    (run_dir / target).symlink_to(victim)
    monkeypatch.setattr(safefs, "check_run_folder", lambda *a, **k: None)  # the race
    res, took = cli([a.replace("{run}", str(run_dir)) for a in args])
    assert_user_error(res, took, 2, run_dir / target, "symbolic link")
    if victim.is_dir():
        assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
        assert (victim / "keep.txt").read_text() == "mine"
    else:
        assert victim.read_text() == "mine"
