"""Ctrl-C always ends a run promptly: exit 130 within 10 s wherever it lands (a hold before a
phase, the idle baseline's sleep, the GEMM peak measurement, a cool-down, the middle of a phase,
the report after the run), finished phases kept, no traceback, the run folder's lock released.

Each case runs the real CLI in a subprocess and waits for the run to reach its point (a line on
its output or the runner's test hold), then sends SIGINT. ``ENERGYBENCH_INTERRUPT_REPEATS=N``
repeats every case N times: CI runs it with the CPU saturated (``.ci/run``), so a rare hang on
the interrupt path shows up there before a user meets it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REPEATS = int(os.environ.get("ENERGYBENCH_INTERRUPT_REPEATS", "1"))
EXIT_WITHIN_S = 10.0
START_TIMEOUT_S = 300.0  # a loaded machine imports torch slowly; a hang after SIGINT is the bug

SUITE = """\
name: tiny
defaults:
  dataset:
    name: photos
    params: {patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}
  train: {steps: 1, batch_size: 1}
  evaluate: {max_items: 1}
energy:
  idle_baseline_s: IDLE
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: psnr_db
entries:
  - name: first
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
  - name: second
    model: {name: espcn, params: {channels: 4, layers: 2, first_kernel: 3}}
    train: {steps: STEPS, batch_size: 1}
    serve:
      - {scenario: throughput, batch_sizes: [1], warmup: 0, iterations: 2}
"""


class Watched:
    """A run in a subprocess whose output is read as it comes (so a full pipe never blocks it)."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
        )
        self.lines: list[str] = []
        self.t0 = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # each line with when it came (for a slow exit's story)
            self.lines.append(f"[{time.monotonic() - self.t0:7.2f} s] {line}")

    def wait_for(self, ready: Path | None = None, text: str | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (
            (ready is not None and ready.exists())
            or (text is not None and any(text in line for line in self.lines))
        ):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.02)

    def interrupt(self) -> tuple[int, float, str]:
        """SIGINT; the exit code, how long it took and the whole output."""
        t0 = time.monotonic()
        self.lines.append(f"[{t0 - self.t0:7.2f} s] (SIGINT sent)\n")
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the run did not end within 60 s of Ctrl-C:\n" + "".join(self.lines))
        took = time.monotonic() - t0
        self._reader.join(timeout=10)
        self.lines.append(f"[{time.monotonic() - self.t0:7.2f} s] (exited {code})\n")
        return code, took, "".join(self.lines)


def _start(tmp_path: Path, idle_s: float, steps: int, hold: str | None) -> Watched:
    suite = tmp_path / "tiny.yaml"
    text = textwrap.dedent(SUITE).replace("IDLE", str(idle_s)).replace("STEPS", str(steps))
    suite.write_text(text)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if hold is not None:
        (tmp_path / "hold").write_text("")
        env["ENERGYBENCH_TEST_HOLD"] = f"{hold}:{tmp_path / 'hold'}"
    cmd = [sys.executable, "-m", "energybench", "run", str(suite), "--out", "results"]
    report = ["--report", "r.html"] if hold == "report" else ["--no-report"]
    return Watched([*cmd, *report], env, tmp_path)


def _records(tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    (manifest,) = (tmp_path / "results").glob("tiny/*/manifest.json")
    run_dir = manifest.parent
    recs = {
        f"{p.parent.name}/{p.stem}": json.loads(p.read_text())
        for p in run_dir.glob("entries/*/*.json")
    }
    return run_dir, recs


def _assert_interrupted(code: int, took: float, out: str, then: str = "--resume") -> None:
    assert code == 130, out
    assert took < EXIT_WITHIN_S, f"Ctrl-C took {took:.1f} s:\n{out}"
    assert "interrupted" in out and then in out and "Traceback" not in out, out


#: where the interrupt lands: (idle baseline s, train steps of `second`, hold, output to wait for)
POINTS = {
    "hold before a phase": (0, 1, "second/train", None),
    "idle baseline sleep": (600, 1, None, "idle baseline (before)"),
    "inside a phase": (0, 10**6, None, "second: train"),
    "cool-down": (0, 1, "cool-down/second", None),
    "peaks measurement": (0, 1, "peaks", None),
    "report": (0, 1, "report", None),
}


@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("point", sorted(POINTS))
def test_ctrl_c_ends_the_run_promptly(tmp_path: Path, point: str, repeat: int) -> None:
    idle_s, steps, hold, text = POINTS[point]
    run = _start(tmp_path, idle_s, steps, hold)
    run.wait_for(ready=tmp_path / "hold.ready" if hold else None, text=text)
    if text == "second: train":
        time.sleep(0.5)  # well inside the training loop
    code, took, out = run.interrupt()
    run_dir, recs = _records(tmp_path)
    assert not (run_dir / "run.lock").exists()  # released: --resume can take it
    if point == "report":  # the run is complete; only its report is not written
        _assert_interrupted(code, took, out, then=f"energybench report results/tiny/{run_dir.name}")
        assert recs["second/serve"]["status"] == "done" and not (tmp_path / "r.html").exists()
    elif point in ("idle baseline sleep", "peaks measurement"):
        _assert_interrupted(code, took, out)
        assert recs == {}
    else:
        _assert_interrupted(code, took, out)
        assert recs["first/evaluate"]["status"] == "done"  # finished phases are kept
        assert "second/train" not in recs  # the interrupted phase left no record


class _Dropper:
    """Receives Ctrl-C inside its finaliser, where Python prints the exception and drops it."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside __del__


def test_the_premise_a_finaliser_drops_a_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)
    _Dropper()  # without CtrlC the interrupt is gone: execution goes on
    assert [d.exc_type for d in dropped] == [KeyboardInterrupt]


def test_a_ctrl_c_dropped_by_a_finaliser_still_ends_a_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    from energybench.run import interrupt

    dropped: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)

    t0 = time.monotonic()
    with interrupt.CtrlC(), pytest.raises(KeyboardInterrupt):
        _Dropper()
        interrupt.sleep(30)  # the run's waits check for a recorded interrupt
    assert time.monotonic() - t0 < 5
    assert [d.exc_type for d in dropped] == [KeyboardInterrupt]
    interrupt.check()  # leaving CtrlC forgets it: the next run starts clean


def test_a_dropped_ctrl_c_ends_the_idle_baseline_and_the_cool_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The idle baseline and the cool-down wait on the real clock: a Ctrl-C a finaliser dropped
    ends each within a wait step, not after the whole baseline or ``max_s``."""
    from energybench.meters.base import EnergyMonitor
    from energybench.run import interrupt

    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)
    monitor = EnergyMonitor([])
    monitor.idle_temp_c = {"gpu0": 30.0}
    monkeypatch.setattr(monitor, "temperatures_c", lambda: {"gpu0": 90.0})  # never cools
    for wait in (lambda: monitor.measure_idle(60), lambda: monitor.cool_down(1.0, 60)):
        t0 = time.monotonic()
        with interrupt.CtrlC(), pytest.raises(KeyboardInterrupt):
            _Dropper()
            wait()
        assert time.monotonic() - t0 < 5


def _stubborn_group() -> subprocess.Popen[bytes]:
    """A process in its own group (as the DDP launcher is) that ignores SIGTERM."""
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_a_ddp_launcher_that_ignores_sigterm_is_killed_within_the_ctrl_c_bound() -> None:
    """Ctrl-C in a distributed train phase stops the launcher's group: TERM, then KILL, both
    waits together within the 10 s a Ctrl-C may take."""
    from energybench.train.distributed import KILL_WAITS_S, _kill_group

    assert sum(wait_s for _, wait_s in KILL_WAITS_S) < EXIT_WITHIN_S - 1
    proc = _stubborn_group()
    time.sleep(0.3)  # its SIGTERM handler is set
    t0 = time.monotonic()
    _kill_group(proc, ((signal.SIGTERM, 0.3), (signal.SIGKILL, 3.0)))
    assert proc.poll() == -signal.SIGKILL and time.monotonic() - t0 < 3


def test_a_dropped_ctrl_c_ends_the_wait_for_the_ddp_launcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from energybench.run import interrupt
    from energybench.train.distributed import _kill_group, _wait

    monkeypatch.setattr(sys, "unraisablehook", lambda _: None)
    proc = _stubborn_group()
    try:
        t0 = time.monotonic()
        with interrupt.CtrlC(), pytest.raises(KeyboardInterrupt):
            _Dropper()
            _wait(proc)
        assert time.monotonic() - t0 < 5
    finally:
        _kill_group(proc, ((signal.SIGKILL, 3.0),))
