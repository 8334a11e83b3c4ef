"""The contention generator of the ``adaptive`` scenario: a separate process energybench owns.

:class:`Contention` starts ``python -m energybench.serve.contention`` with a declared
schedule (``[(at_s, threads), ...]`` relative to a start time it is given), waits until it is
ready, and always stops it (context manager: on normal exit, on failure and on Ctrl-C; the child
also exits by itself when the schedule ends plus a grace time, or when its parent dies).
On a CPU each worker is a thread multiplying matrices with numpy (BLAS releases the GIL, so
``threads`` workers keep ``threads`` cores busy); on a GPU each worker is a CUDA kernel loop.
It generates load only: it must not measure energy or time the served stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from types import TracebackType

READY = "ready"
GRACE_S = 5.0  # the child exits this long after its schedule's end on its own


class Contention:
    """A running contention generator (use as a context manager)."""

    def __init__(
        self, schedule: list[tuple[float, int]], device: str = "cpu", end_s: float = 60.0
    ) -> None:
        self.schedule = schedule
        self.device = device
        self.end_s = end_s
        self.proc: subprocess.Popen[str] | None = None
        self.start_unix_s: float | None = None

    def launch(self) -> None:
        """Start the child and wait until it is ready (its imports done, no load yet)."""
        if not any(n > 0 for _, n in self.schedule):
            return  # nothing to generate: no process
        spec = {
            "schedule": self.schedule,
            "device": self.device,
            "end_s": self.end_s,
            "parent": os.getpid(),
        }
        # one BLAS thread per worker: ``threads`` workers keep ``threads`` cores busy
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "energybench.serve.contention", json.dumps(spec)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != READY:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"the contention generator did not start: {line} {err[-500:]}")

    def go(self, start_unix_s: float) -> None:
        """Start the schedule's clock at ``start_unix_s`` (wall clock, the stream's start)."""
        self.start_unix_s = start_unix_s
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.write(f"{start_unix_s!r}\n")
            self.proc.stdin.flush()

    def stop(self) -> None:
        """Stop the child (terminate, then kill) and reap it; idempotent."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for stream in (p.stdin, p.stdout, p.stderr):
            if stream is not None:
                stream.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def __enter__(self) -> Contention:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _worker(stop: threading.Event, device: str) -> None:  # pragma: no cover - child process
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        torch.cuda.set_device(dev)  # this thread's context: the served entry's GPU, no other
        a = torch.randn(1024, 1024, device=dev)
        b = torch.randn(1024, 1024, device=dev)
        while not stop.is_set():
            for _ in range(8):
                a = torch.tanh(a @ b)
            torch.cuda.synchronize(dev)
        return
    import numpy as np  # BLAS releases the GIL: one worker keeps one core busy

    rng = np.random.default_rng(0)
    x = rng.standard_normal((192, 192), dtype=np.float32)
    w = rng.standard_normal((192, 192), dtype=np.float32)
    while not stop.is_set():
        for _ in range(8):
            x = np.tanh(x @ w)


def _main(spec: dict) -> None:  # pragma: no cover - runs in the child process
    schedule = [(float(t), int(n)) for t, n in spec["schedule"]]
    end_s, parent = spec["end_s"], spec["parent"]
    workers: list[tuple[threading.Thread, threading.Event]] = []
    print(READY, flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return  # the parent closed the pipe before the stream started
    start = float(line)

    def set_threads(n: int) -> None:
        while len(workers) < n:
            ev = threading.Event()
            th = threading.Thread(target=_worker, args=(ev, spec["device"]), daemon=True)
            th.start()
            workers.append((th, ev))
        while len(workers) > n:
            th, ev = workers.pop()
            ev.set()

    try:
        while True:
            now = time.time() - start
            if now > end_s + GRACE_S or os.getppid() != parent:
                break
            due = [n for t, n in schedule if t <= now]
            set_threads(due[-1] if due else 0)
            time.sleep(0.02)
    finally:
        set_threads(0)


if __name__ == "__main__":  # pragma: no cover
    _main(json.loads(sys.argv[1]))
