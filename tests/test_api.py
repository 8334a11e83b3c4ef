"""The public Python API, used only through ``import energybench``: measure a user's own code,
record it in a run folder, and read it back with the same commands a suite's run uses."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import multiprocessing as mp
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

import energybench

REPO = Path(__file__).resolve().parents[1]
FAST = {"sample_period_s": 0.02, "min_window_s": 0.0, "trials": 2, "max_trials": 4}
H100 = {"devices": [0], "simulate": "h100", "energy": FAST}

SCRIPT = """
import energybench, torch
run = energybench.Run({path!r}, suite="loops", entry="matmul", energy={{"meters": ["auto"]}})
a = torch.randn(64, 64)
with energybench.measure("finetune", run=run):
    for _ in range(50): a = torch.tanh(a @ a)
for _ in range(2):
    with energybench.measure("serve", run=run) as m:
        for _ in range(20): a @ a; m.tick()
run.record_quality(psnr_db=30.0, ssim=0.9)
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "energybench", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_a_ten_line_script_writes_a_run_that_report_and_export_render(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(path=str(run_dir)))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr

    run = energybench.load_run(run_dir)
    phases = run.entry("matmul")
    assert phases.train is not None and phases.train.measurement is not None
    assert phases.train.measurement.energy_j and phases.train.measurement.energy_j > 0
    serve = run.results("matmul")["serve"]
    group = serve.by_batch["1"]  # type: ignore[attr-defined]
    assert group.trials_total == 2 and [t.items for t in group.trials] == [20, 20]
    assert group.energy_per_item_j.mean > 0
    # an estimate stays an estimate from the window to the record
    est = phases.train.measurement.is_estimate
    assert est == any(d.source == "estimate" for d in phases.train.measurement.devices)

    report = _cli("report", str(run_dir), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "r.html").read_text()
    assert "matmul" in html
    export = _cli("export", str(run_dir), "--format", "csv", "-o", str(tmp_path / "r.csv"))
    assert export.returncode == 0, export.stderr
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert any(",matmul,train,done," in r for r in rows)
    assert any(",matmul,serve," in r for r in rows)
    # the script's windows make a leaderboard row: TEC from the train window (no compress
    # window is no compression cost), IEC from the serve trials
    board = [r for r in csv.DictReader(rows) if r["table"] == "leaderboard"]
    assert [r["entry"] for r in board] == ["matmul"]
    assert float(board[0]["tec_j"]) > 0 and float(board[0]["iec_j"]) > 0
    assert board[0]["iec_scenario"] == "serve"
    assert phases.compress is not None and phases.compress.status == "skipped"


def test_windows_nest_and_the_outer_window_holds_the_inner_one() -> None:
    with energybench.measure("outer", **H100) as outer:
        with energybench.measure("inner", **H100) as inner:
            sum(range(200_000))
    assert inner.measurement is not None and outer.measurement is not None
    assert outer.measurement.duration_s >= inner.measurement.duration_s
    assert inner.measurement.energy_j is not None and outer.measurement.energy_j is not None
    assert outer.measurement.energy_j >= inner.measurement.energy_j
    gpu = [d for d in outer.measurement.devices if d.kind == "gpu"]
    assert gpu and all(d.simulated for d in gpu)
    assert "simulated" in outer.measurement.flags


def test_threads_measure_at_once_with_their_own_windows() -> None:
    results: list[energybench.measure] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with energybench.measure("thread", **H100) as m:
                sum(range(100_000))
            results.append(m)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(results) == 4 and all(m.measurement is not None for m in results)


def test_two_monitors_reading_one_gpu_are_refused() -> None:
    other = {**H100, "energy": {**FAST, "sample_period_s": 0.05}}
    with energybench.measure("first", **H100):
        with pytest.raises(energybench.MonitorConflictError, match="other settings"):
            with energybench.measure("second", **other):
                pass
    with energybench.measure("after", **other) as m:  # the first one is closed: allowed
        pass
    assert m.measurement is not None


def _hold_gpu(ready: mp.synchronize.Event, stop: mp.synchronize.Event) -> None:
    with energybench.measure("holder", **H100):
        ready.set()
        stop.wait(30)


def test_a_gpu_measured_by_another_process_is_refused() -> None:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_gpu, args=(ready, stop))
    proc.start()
    try:
        assert ready.wait(60)
        with pytest.raises(energybench.MonitorConflictError, match="another process"):
            with energybench.measure("here", **H100):
                pass
    finally:
        stop.set()
        proc.join(30)
    with energybench.measure("here", **H100) as m:  # released with the other window
        pass
    assert m.measurement is not None


def test_the_decorator_adds_one_serve_trial_per_call(tmp_path: Path) -> None:
    run = energybench.Run(tmp_path / "run", suite="deco", entry="f", energy=FAST)

    @energybench.measure("serve", run=run, items=8, **H100)
    def serve_batch() -> int:
        return sum(range(50_000))

    assert serve_batch() == sum(range(50_000))
    serve_batch()
    group = energybench.load_run(tmp_path / "run").results("f")["serve"].by_batch["1"]  # type: ignore[attr-defined]
    assert [t.items for t in group.trials] == [8, 8]
    assert group.sources and "nvml" in " ".join(group.sources)


def test_a_serve_window_without_items_is_refused(tmp_path: Path) -> None:
    run = energybench.Run(tmp_path / "run", suite="s", entry="e", energy=FAST)
    with pytest.raises(energybench.errors.UserError, match="served no items"):
        with energybench.measure("serve", run=run):
            pass


def test_a_phase_is_recorded_once_and_a_name_that_is_no_phase_needs_one(tmp_path: Path) -> None:
    run = energybench.Run(tmp_path / "run", suite="s", entry="e", energy=FAST)
    with energybench.measure("finetune", run=run):
        pass
    with pytest.raises(energybench.errors.UserError, match="already recorded"):
        with energybench.measure("train", run=run):
            pass
    with pytest.raises(energybench.errors.UserError, match="phase="):
        energybench.measure("warmup", run=run)


def test_entries_from_two_runs_share_one_folder(tmp_path: Path) -> None:
    for entry in ("a", "b"):
        run = energybench.Run(tmp_path / "run", suite="s", entry=entry, energy=FAST)
        with energybench.measure("train", run=run):
            pass
    loaded = energybench.load_run(tmp_path / "run")
    assert loaded.entries == ["a", "b"]
    with pytest.raises(energybench.errors.UserError, match="holds suite 's'"):
        energybench.Run(tmp_path / "run", suite="other", entry="c")


def _record_entry(run_dir: str, entry: str, start: mp.synchronize.Event) -> None:
    run = energybench.Run(run_dir, suite="s", entry=entry, energy=FAST)
    start.wait(60)
    with energybench.measure("train", run=run, devices="cpu"):
        sum(range(10_000))
    with energybench.measure("serve", run=run, devices="cpu", items=2):
        pass


def test_processes_record_their_entries_into_one_folder_at_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    entries = ["p0", "p1"]
    procs = [
        ctx.Process(target=_record_entry, args=(str(tmp_path / "run"), e, start)) for e in entries
    ]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    loaded = energybench.load_run(tmp_path / "run")  # the folder's lock kept every writer's
    assert sorted(loaded.entries) == entries
    for e in entries:
        assert loaded.entry(e).train is not None and loaded.entry(e).serve is not None


def test_the_public_surface_resolves_and_hides_the_rest() -> None:
    for name in energybench.__all__:
        assert getattr(energybench, name) is not None
    assert callable(energybench.load_suite) and callable(energybench.run_suite)
    assert issubclass(energybench.MonitorConflictError, energybench.UserError)
    with pytest.raises(AttributeError):
        energybench.no_such_name  # noqa: B018
    assert dir(energybench) == sorted(energybench.__all__)
    # no helper leaks as a public attribute (submodules are attributes once imported)
    leaked = [
        n
        for n, v in vars(energybench).items()
        if not n.startswith("_") and n not in energybench.__all__ and not isinstance(v, ModuleType)
    ]
    assert leaked == []


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, energybench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_decorated_calls_from_a_thread_pool_are_windows_of_their_own(tmp_path: Path) -> None:
    run = energybench.Run(tmp_path / "run", suite="pool", entry="f", energy=FAST)
    deco = energybench.measure("serve", run=run, items=4, **H100)

    @deco
    def serve(sleep_s: float) -> float:
        time.sleep(sleep_s)
        return sleep_s

    def call(delay_s: float, sleep_s: float) -> float:
        time.sleep(delay_s)
        return serve(sleep_s)

    # overlapping calls where the first to start ends first: a window closed by another
    # call's exit would last 0.3 s and 0.7 s instead of 0.4 s and 0.6 s
    calls = [(0.0, 0.4), (0.1, 0.6)]
    with energybench.measure("warm-up", **H100):  # the monitor is built: calls start on time
        pass
    with cf.ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call, d, s) for d, s in calls]
        assert [f.result() for f in futures] == [s for _, s in calls]
    group = energybench.load_run(tmp_path / "run").results("f")["serve"].by_batch["1"]  # type: ignore[attr-defined]
    assert [t.items for t in group.trials] == [4] * len(calls)
    durations_s = sorted(t.duration_s for t in group.trials)
    for got, slept in zip(durations_s, sorted(s for _, s in calls), strict=True):
        assert got >= slept - 0.01  # each window spans its own call
    assert deco.measurement is not None  # the latest finished call's window
    assert not any(m.open_windows for m in energybench.api._monitors.values())


@pytest.mark.parametrize("error", [RuntimeError("diverged"), KeyboardInterrupt()])
def test_a_window_that_raises_closes_records_a_failure_and_frees_its_gpu(
    tmp_path: Path, error: BaseException
) -> None:
    run = energybench.Run(tmp_path / "run", suite="s", entry="e", energy=FAST)
    with pytest.raises(type(error)):
        with energybench.measure("finetune", run=run, **H100) as m:
            sum(range(50_000))
            raise error
    assert m.measurement is not None and m.measurement.duration_s > 0  # the window closed
    train = energybench.load_run(tmp_path / "run").entry("e").train
    assert train is not None and train.status == "failed"
    assert train.error is not None and train.error.startswith(type(error).__name__)
    assert train.measurement is not None  # its energy kept, never counted as the phase's cost
    # the GPU is free: a monitor with other settings may read it now
    other = {**H100, "energy": {**FAST, "sample_period_s": 0.05}}
    with energybench.measure("other", **other) as after:
        pass
    assert after.measurement is not None
    # a later window of the phase replaces the failure; a finished phase stays
    with energybench.measure("train", run=run, **H100):
        pass
    assert energybench.load_run(tmp_path / "run").entry("e").train.status == "done"  # type: ignore[union-attr]


def test_a_serve_window_that_raises_adds_no_trial(tmp_path: Path) -> None:
    run = energybench.Run(tmp_path / "run", suite="s", entry="e", energy=FAST)
    with pytest.raises(ValueError):
        with energybench.measure("serve", run=run, items=4, **H100):
            raise ValueError("bad batch")
    assert energybench.load_run(tmp_path / "run").entry("e").serve is None


def test_without_a_meter_the_window_is_a_labelled_estimate() -> None:
    with energybench.measure("cpu", devices="cpu", energy={**FAST, "meters": ["estimate"]}) as m:
        sum(range(100_000))
    meas = m.measurement
    assert meas is not None and meas.is_estimate and "estimate" in meas.flags
    assert meas.devices and all(d.source == "estimate" for d in meas.devices)
    assert not any(d.kind == "gpu" for d in meas.devices)


@pytest.mark.parametrize("entry", ["../escape", "a/b", "", ".", "x" * 200])
def test_an_entry_name_that_is_no_name_is_refused_before_anything_is_written(
    tmp_path: Path, entry: str
) -> None:
    with pytest.raises(energybench.UserError, match="entries.0.name"):
        energybench.Run(tmp_path / "run", suite="s", entry=entry)
    with pytest.raises(energybench.UserError, match="suite name"):
        energybench.Run(tmp_path / "run", suite="../up", entry="e")
    assert not (tmp_path / "run").exists() and not (tmp_path / "escape").exists()


SUITE = """\
name: public
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 1}
energy: {meters: [estimate], idle_baseline_s: 0, min_window_s: 0, trials: 1, max_trials: 1}
metric: {quality: psnr_db}
entries:
  - name: small
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
"""


def test_a_suite_loads_runs_and_reads_back_through_the_public_names(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    loaded = energybench.load_suite(tmp_path / "s.yaml", ["entries.0.train.steps=1"])
    assert loaded.suite.entries[0].train is not None and loaded.suite.entries[0].train.steps == 1
    outcome = energybench.run_suite(loaded, out_root=tmp_path / "results")
    assert outcome.ok, outcome.failed
    run = energybench.load_run(outcome.run_dir)
    assert run.entries == ["small"]
    phases = run.entry("small")
    assert phases.train is not None and phases.train.done and phases.train.measurement
    assert phases.train.measurement.is_estimate  # the estimate meter, labelled as such
    assert run.results("small")["throughput"].by_batch["1"].trials_total == 1  # type: ignore[attr-defined]
    with pytest.raises(energybench.UserError):
        energybench.load_suite(tmp_path / "absent.yaml")
