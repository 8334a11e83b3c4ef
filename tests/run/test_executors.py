"""Cluster fan-out (issue 14): one submitit job per entry, ``--executor local|slurm``.

The local test runs real jobs (one interpreter each) through submitit's ``LocalExecutor``; the
Slurm test checks the sbatch scripts submitit generates, with fake ``sbatch``/``srun`` on PATH.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import textwrap
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app
from energybench.records.store import PHASES, RunStore, load_run
from energybench.run.executors import make_executor, submit_slurm
from energybench.suite import load_suite

SUITE = """\
name: fan
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 2, batch_size: 2}
  evaluate: {max_items: 1}
energy:
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: psnr_db
executor: {partition: gpu, account: energy-lab, gpus_per_job: 2, time_min: 30}
entries:
  - name: teacher
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
  - name: grafted
    model: {name: ckbg, params: {channels: 4, blocks: 1, grafts: true}}
    uses: [teacher]
    train: {steps: 1, batch_size: 1}
    serve:
      - {scenario: stream, fps: 200, frames: 3, warmup: 0}
  - name: merged
    model: {name: ckbg, params: {channels: 4, blocks: 1, grafts: true}}
    inherit: grafted
    uses: [teacher]
    compress: [{method: reparameterize}]
    serve:
      - {scenario: stream, fps: 200, frames: 3, warmup: 0}
"""


def _suite(tmp: Path) -> Path:
    path = tmp / "fan.yaml"
    path.write_text(textwrap.dedent(SUITE))
    return path


def _records(run_dir: Path) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(entry, phase) -> (status, record keys): what must match between executors."""
    run = load_run(run_dir)
    return {
        (e, p): (rec.status, sorted(rec.model_dump(exclude_unset=True)))
        for e, phases in run.phases.items()
        for p, rec in phases.items()
    }


def test_local_executor_matches_in_process_and_retries_a_killed_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = _suite(tmp_path)
    hold = tmp_path / "hold"
    hold.write_text("")
    monkeypatch.setenv("ENERGYBENCH_TEST_HOLD", f"grafted/serve:{hold}")
    result: dict[str, object] = {}

    def run() -> None:
        args = ["run", str(suite), "--out", str(tmp_path / "jobs"), "--executor", "local"]
        args += ["--only", "grafted"]  # and teacher, which it uses (2 jobs keep the test short)
        result["res"] = CliRunner().invoke(app, [*args, "--report", str(tmp_path / "j.html")])

    parent = threading.Thread(target=run)
    parent.start()
    deadline = time.monotonic() + 300
    while not Path(f"{hold}.ready").exists():  # the grafted job holds before its serve phase
        assert parent.is_alive() and time.monotonic() < deadline, result
        time.sleep(0.05)
    (run_dir,) = (tmp_path / "jobs" / "fan").glob("*/")
    train_before = json.loads((run_dir / "entries/grafted/train.json").read_text())
    assert not (run_dir / "entries/grafted/serve.json").exists()
    attempts = (run_dir / "jobs/grafted/attempts.jsonl").read_text().splitlines()
    os.kill(json.loads(attempts[-1])["pid"], signal.SIGKILL)  # the job dies mid-way
    hold.unlink()
    parent.join(300)
    res = result["res"]
    assert res.exit_code == 0, res.output
    assert "running it again" in res.output
    # the retried job resumed: the train phase finished before the kill was kept, not redone
    assert len((run_dir / "jobs/grafted/attempts.jsonl").read_text().splitlines()) == 2
    train_after = json.loads((run_dir / "entries/grafted/train.json").read_text())
    assert train_after["started_unix_s"] == train_before["started_unix_s"]
    # dependency order: each entry's job started after its upstream entries had finished
    run = load_run(run_dir)

    def start(e: str) -> float:
        return json.loads((run_dir / f"jobs/{e}/attempts.jsonl").read_text().splitlines()[0])[
            "started_unix_s"
        ]

    def end(e: str) -> float:
        return max((r.started_unix_s or 0) + (r.duration_s or 0) for _, r in run.phases[e].items())

    assert end("teacher") <= start("grafted")
    assert run.manifest["finished"] and run.manifest["executor"]["kind"] == "local"
    assert set(run.manifest["placements"]) == {"teacher", "grafted"}
    # same records and report as an in-process run of the same suite
    monkeypatch.delenv("ENERGYBENCH_TEST_HOLD")
    args = ["run", str(suite), "--out", str(tmp_path / "inproc"), "--only", "grafted"]
    ref = CliRunner().invoke(app, [*args, "--report", str(tmp_path / "i.html")])
    assert ref.exit_code == 0, ref.output
    (ref_dir,) = (tmp_path / "inproc" / "fan").glob("*/")
    assert _records(run_dir) == _records(ref_dir)
    assert len(_records(run_dir)) == 2 * len(PHASES)
    for out in (res.output, ref.output):
        assert "leaderboard: fan" in out and "grafted" in out and "teacher" in out
    for html in ("j.html", "i.html"):
        text = (tmp_path / html).read_text()
        assert "teacher" in text and "grafted" in text


def _fake_slurm(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``sbatch`` that keeps each script and answers with a new job id; ``srun`` exists."""
    bin_dir, log = tmp / "bin", tmp / "sbatch.log"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            n=$(ls {tmp}/script-* 2>/dev/null | wc -l)
            id=$((4100 + n))
            cp "$1" {tmp}/script-$id
            echo "Submitted batch job $id"
            """
        )
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_slurm_submission_has_dependencies_exclusive_nodes_and_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_slurm(tmp_path, monkeypatch)
    loaded = load_suite(_suite(tmp_path), ["executor.partition=a100"])  # --set works too
    store = RunStore.create(tmp_path / "out", "fan", loaded.config_hash)
    ex = make_executor("slurm", store.root / "jobs" / "submitit", loaded.suite.executor)
    sub = submit_slurm(ex, store, loaded.suite.entries, None)
    ids = {k: j.job_id for k, j in sub.jobs.items()}
    assert ids == {"teacher": "4100", "grafted": "4101", "merged": "4102"}
    scripts = {k: (tmp_path / f"script-{v}").read_text() for k, v in ids.items()}
    for text in scripts.values():
        assert "#SBATCH --exclusive" in text
        assert "#SBATCH --gpus-per-node=2" in text
        assert "#SBATCH --partition=a100" in text
        assert "#SBATCH --account=energy-lab" in text
        assert "#SBATCH --time=30" in text
        assert "#SBATCH --kill-on-invalid-dep=yes" in text
        assert "export PYTHONPATH=" in text
    deps = {k: re.findall(r"#SBATCH --dependency=(\S+)", t) for k, t in scripts.items()}
    assert deps["teacher"] == []
    assert deps["grafted"] == ["afterok:4100"]  # uses: teacher
    assert deps["merged"] == ["afterok:4101:4100"]  # inherit: grafted, uses: teacher


def test_slurm_resubmission_skips_finished_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_slurm(tmp_path, monkeypatch)
    # 'time' (Slurm's name) is accepted for time_min
    loaded = load_suite(_suite(tmp_path), ["executor={gpus_per_job: 1, time: 45}"])
    assert loaded.suite.executor.time_min == 45
    store = RunStore.create(tmp_path / "out", "fan", loaded.config_hash)
    for phase in PHASES:
        rec = {"entry": "teacher", "phase": phase, "status": "done", "config_hash": "x"}
        store.write_phase("teacher", phase, rec)
        if phase in ("train", "compress"):  # a finished phase is finished with its checkpoint
            ckpt = store.checkpoint_path("teacher", phase)
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            ckpt.write_bytes(b"weights")
    ex = make_executor("slurm", store.root / "jobs" / "submitit", loaded.suite.executor)
    sub = submit_slurm(ex, store, loaded.suite.entries, None)
    assert sub.finished == ["teacher"] and list(sub.jobs) == ["grafted", "merged"]
    grafted = (tmp_path / f"script-{sub.jobs['grafted'].job_id}").read_text()
    assert "--dependency" not in grafted  # its upstream finished before: nothing to wait for
    assert "#SBATCH --time=45" in grafted


def test_slurm_wait_names_the_failed_upstream(tmp_path: Path) -> None:
    from submitit.core.utils import FailedJobError, UncompletedJobError

    from energybench.run.executors import Submission, wait_slurm

    class Job:  # what wait_slurm uses of a submitit job
        def __init__(self, exc: Exception | None = None) -> None:
            self.exc = exc

        def result(self) -> None:
            if self.exc is not None:
                raise self.exc

    loaded = load_suite(_suite(tmp_path))
    store = RunStore.create(tmp_path / "out", "fan", loaded.config_hash)
    sub = Submission(
        jobs={
            "teacher": Job(FailedJobError("Traceback ...\nValueError: bad data")),
            "grafted": Job(UncompletedJobError("state: CANCELLED")),
            "merged": Job(UncompletedJobError("state: CANCELLED")),
        }
    )
    assert wait_slurm(sub, store, loaded.suite.entries) == {
        "teacher": "ValueError: bad data",
        "grafted": "depends on failed entry teacher",
        "merged": "depends on failed entry grafted, teacher",
    }


def test_an_unknown_executor_is_bad_input(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["run", str(_suite(tmp_path)), "--executor", "pbs"])
    assert res.exit_code == 2 and "unknown executor 'pbs'" in res.output
