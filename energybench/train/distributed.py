"""Distributed train phases: DDP ranks launched with torch's elastic launcher (what ``torchrun``
uses), each rank metering only its own device.

``train: {distributed: {nproc_per_node: N, nnodes: 1, backend: auto}}`` makes the runner call
:func:`train_distributed`. It starts ``python -m energybench.train.distributed launch SPEC``
in a new process group (session) that it owns and kills as a whole on failure or Ctrl-C; that
launcher calls :func:`torch.distributed.launcher.api.elastic_launch` (c10d rendezvous on
localhost, no restarts), which starts N workers ``python -m
energybench.train.distributed_worker SPEC``. Every process
gets the parent's ``sys.path`` as ``PYTHONPATH``.

Each worker (rank):

- joins the process group (``nccl`` on GPUs, ``gloo`` on the CPU or simulated GPUs; a
  collective that waits longer than ``timeout_s``, default 600 s, fails the rank and so the
  phase) and wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`;
- takes its equal contiguous share of every global batch (the suite's ``batch_size``), which is
  what a :class:`~torch.utils.data.DistributedSampler` over the same shuffled order gives: the
  averaged gradient equals the single-process one, so the model trains like a one-process run
  (BatchNorm statistics are per rank, as in plain DDP; precise-BN runs once, on rank 0);
- meters its own ``LOCAL_RANK`` GPU only (``charging({gpu})``); local rank 0 also meters the host
  (CPU/RAM: RAPL or the estimate), the other ranks never do (no double count). The idle
  baseline is the run's, measured once per node before any work; ranks do not re-measure it;
- opens and closes its window after a barrier and a device synchronise, so all windows cover the
  same span, and writes ``entries/<entry>/ranks/train-rank<R>.json`` (its measurement).

The parent then writes one phase record: the devices of every rank (energy summed over ranks,
never averaged), the longest rank's duration, and ``ranks: [...]`` with each rank's figures. Rank
0 saves the trained model as the phase's checkpoint (the usual format). A rank that dies fails
the phase with the path of its log; earlier phases stay, and ``--resume`` runs the phase again.

The parent touches no GPU while the ranks run: it does not enter the entry's device, reset
memory peaks or load a model for this phase until the ranks have finished (it loads the
checkpoint afterwards), so it creates no CUDA context on a rank's GPU. (A context an earlier
entry of the same run created stays: CUDA contexts cannot be destroyed in-process; its cached
memory is given back after every entry.) ``nnodes > 1`` is refused when the suite is
validated.

With ``--simulate 2xh100`` every rank builds its own simulated server (a simulated meter per
process) and charges only its rank's GPU: that GPU's load model follows the rank process's own
CPU use, and the other GPU stays at idle in that rank's simulator (recorded, not charged).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from energybench.models.sr.base import online
from energybench.records import safefs
from energybench.records.store import atomic_write_json, read_json
from energybench.records.window import DeviceEnergy, Window
from energybench.run import interrupt
from energybench.tasks.base import Task
from energybench.train.loop import task_batches

if TYPE_CHECKING:
    from energybench.run.context import PhaseContext
    from energybench.suite.schema import DistributedSettings, Entry

#: Test hook: a rank number; that rank exits with code 17 just before its window (fault tests).
TEST_RANK_EXIT_ENV = "ENERGYBENCH_TEST_RANK_EXIT"


class DistributedTrainError(RuntimeError):
    """A rank of a distributed train phase failed; ``str()`` names it and its log."""


# ------------------------------------------------------------------------- model and data views
class _Forward(nn.Module):
    """The module DDP wraps: recurrent SR models train through ``forward_clip`` on 5-D clips, and
    DDP only synchronises gradients of work done through ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        if x.dim() == 5 and hasattr(self.model, "forward_clip"):
            return online(self.model).forward_clip(x)
        return self.model(x)


class _DDPView:
    """What a task's loss calls (``m(x)``, ``m.forward_clip(x)``), routed through DDP."""

    def __init__(self, ddp: nn.Module, model: nn.Module) -> None:
        self._ddp, self._model = ddp, model

    def __call__(self, x: torch.Tensor) -> Any:
        return self._ddp(x)

    def forward_clip(self, x: torch.Tensor) -> Any:
        return self._ddp(x)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def shard(batch: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s equal contiguous share of every tensor of ``batch`` (dimension 0)."""
    if isinstance(batch, torch.Tensor):
        n = batch.shape[0] // world
        return batch[rank * n : (rank + 1) * n]
    if isinstance(batch, tuple | list):
        return type(batch)(shard(b, rank, world) for b in batch)
    return batch


class ShardedTask(Task):
    """``task`` seen by one rank: its share of every global batch, losses through DDP."""

    def __init__(self, task: Task, rank: int, world: int, view: _DDPView) -> None:
        self.task, self.rank, self.world, self.view = task, rank, world, view
        self.quality_keys = task.quality_keys

    def train_batches(
        self, model: nn.Module, batch_size: int, seed: int, device: torch.device | None = None
    ) -> Iterator[Any]:
        for batch in task_batches(self.task, model, batch_size, seed, device):
            yield shard(batch, self.rank, self.world)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        return self.task.loss(self.view, batch, device)  # type: ignore[arg-type]

    def after_training(self, model: nn.Module, device: torch.device, seed: int) -> None:
        finish = getattr(self.task, "after_training", None)
        if finish is not None and self.rank == 0:  # on full batches, as in one process
            finish(model, device, seed)


# ------------------------------------------------------------------------- parent side
def dist_timeout_s(d: DistributedSettings) -> float:
    """Seconds a collective may wait before the ranks fail (the suite's, else the default)."""
    from energybench.suite.schema import DEFAULT_DIST_TIMEOUT_S

    return float(d.timeout_s) if d.timeout_s is not None else DEFAULT_DIST_TIMEOUT_S


def rank_gpus(ctx: PhaseContext, e: Entry, nproc: int) -> list[int]:
    """GPU positions of the ranks (``[]`` on the CPU): the entry's GPU and the next ones."""
    gpus = ctx.placement(e.name).gpus
    if not gpus:
        return []
    base = min(gpus)
    if ctx.simulate:
        from energybench.meters.sim.profiles import simulated_gpu_count

        have = simulated_gpu_count(ctx.simulate)
    else:
        have = torch.cuda.device_count()
    if base + nproc > have:
        raise ValueError(
            f"entry '{e.name}': {nproc} ranks from GPU {base} need {base + nproc} GPUs, "
            f"{have} visible"
        )
    return [base + i for i in range(nproc)]


def _pythonpath() -> str:
    """The parent's import path, so children import this very energybench."""
    parts = [p or os.getcwd() for p in sys.path]
    return os.pathsep.join(dict.fromkeys(parts))


#: how long the launcher's group gets after SIGTERM, then after SIGKILL: together well within
#: the 10 s a Ctrl-C may take to end a run
KILL_WAITS_S = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 3.0))


def _kill_group(
    proc: subprocess.Popen[bytes], waits: tuple[tuple[int, float], ...] = KILL_WAITS_S
) -> None:
    """Stop the launcher's whole process group (launcher and ranks): TERM, then KILL."""
    for sig, wait_s in waits:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def rank_logs(log_dir: Path) -> dict[int, Path]:
    """Local rank -> its stderr log under the launcher's log folder (latest attempt)."""
    out: dict[int, Path] = {}
    for p in sorted(log_dir.glob("*/attempt_*/*/stderr.log"), key=lambda q: q.stat().st_mtime):
        out[int(p.parent.name)] = p
    return out


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _launch_spec(
    ctx: PhaseContext, e: Entry, steps: int, log_dir: Path
) -> tuple[dict[str, Any], str]:
    """What the launcher and its ranks need (JSON), and the process-group backend chosen."""
    assert e.train is not None and e.train.distributed is not None
    d = e.train.distributed
    nproc = d.nproc_per_node * d.nnodes
    gpus = rank_gpus(ctx, e, nproc)
    real_cuda = bool(gpus) and not ctx.simulate
    backend = d.backend if d.backend != "auto" else ("nccl" if real_cuda else "gloo")
    if backend == "nccl" and not real_cuda:
        raise ValueError(f"entry '{e.name}': backend nccl needs CUDA GPUs (use gloo or auto)")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    spec = {
        "run_dir": str(ctx.store.root.resolve()),
        "suite_file": str(ctx.loaded.path),
        "suite": ctx.suite.model_dump(mode="json"),
        "entry": e.name,
        "steps": steps,
        "nproc": nproc,
        "backend": backend,
        "timeout_s": dist_timeout_s(d),
        "gpus": gpus,
        "real_cuda": real_cuda,
        "simulate": ctx.simulate,
        "idle_w": dict(ctx.monitor.idle_w) if ctx.monitor is not None else {},
        "parent_pid": os.getpid(),
        "threads": max(1, cpus // nproc),
        "log_dir": str(log_dir),
        "run_id": uuid.uuid4().hex[:12],
    }
    return spec, backend


def _run_launcher(spec_path: Path, launcher_log: Path) -> int:
    """Run the launcher process (its own process group, killed as a whole if this process is
    interrupted); its exit code."""
    env = {**os.environ, "PYTHONPATH": _pythonpath(), "ENERGYBENCH_RUN_PID": str(os.getpid())}
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(safefs.open_nofollow(launcher_log, flags), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "energybench.train.distributed", "launch", str(spec_path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as a whole
        )
        try:
            return _wait(proc)
        except BaseException:
            _kill_group(proc)
            raise


def _wait(proc: subprocess.Popen[bytes], step_s: float = 0.2) -> int:
    """``proc.wait()`` in steps, each followed by :func:`interrupt.check`: a Ctrl-C that a
    finaliser dropped still stops the launcher, not only the one Python raised."""
    while True:
        try:
            return proc.wait(step_s)
        except subprocess.TimeoutExpired:
            interrupt.check()


def train_distributed(ctx: PhaseContext, e: Entry, steps: int) -> tuple[nn.Module, dict[str, Any]]:
    """Run ``e``'s train phase with DDP ranks (the run's store, monitor, placement and checkpoint
    loader from ``ctx``); the trained model and the phase record fields."""
    assert e.train is not None and e.train.distributed is not None
    d = e.train.distributed
    ranks_dir = ctx.store.entry_dir(e.name) / "ranks"
    log_dir = ranks_dir / "logs" / time.strftime("%Y%m%d-%H%M%S")
    spec, backend = _launch_spec(ctx, e, steps, log_dir)  # refuses before writing anything
    safefs.safe_mkdirs(ranks_dir)  # inside the run folder: no link followed
    for old in ranks_dir.glob("train-rank*.json"):  # a previous, failed attempt
        old.unlink()
    spec_path = ranks_dir / "train.launch.json"
    atomic_write_json(spec_path, spec)
    result_path = ranks_dir / "train.launch-result.json"
    result_path.unlink(missing_ok=True)
    launcher_log = ranks_dir / "train.launcher.log"
    t0 = time.time()
    rc = _run_launcher(spec_path, launcher_log)
    if rc != 0:
        why = _failure_message(e.name, rc, result_path, log_dir, launcher_log)
        raise DistributedTrainError(why)
    records = [read_json(ranks_dir / f"train-rank{r}.json") for r in range(spec["nproc"])]
    model = ctx.load(ctx.store.checkpoint_path(e.name, "train"), ctx.placement(e.name).device)
    merged = merge_measurements(f"{e.name}/train", [r["measurement"] for r in records])
    train = dict(records[0]["train"])
    train["distributed"] = {
        "nproc_per_node": d.nproc_per_node,
        "nnodes": d.nnodes,
        "world_size": spec["nproc"],
        "backend": backend,
        "timeout_s": dist_timeout_s(d),
        "launcher": "torch.distributed.launcher.api.elastic_launch",
        "logs": str(log_dir),
    }
    from energybench.compress.common import describe_model

    fields_ = {
        "train": train,
        "model": describe_model(model),
        "started_unix_s": t0,
        "duration_s": merged.duration_s,
        "measurement": merged.to_json(),
        "ranks": [rank_summary(r) for r in records],
    }
    return model, fields_


def _failure_message(entry: str, rc: int, result: Path, log_dir: Path, launcher: Path) -> str:
    logs = rank_logs(log_dir)
    failed: dict[str, Any] = {}
    if result.is_file():
        failed = read_json(result).get("failures", {})
    if not failed:
        return (
            f"distributed training of '{entry}' failed (launcher exit code {rc}); "
            f"launcher log: {launcher}; rank logs: {log_dir}\n{_tail(launcher)}"
        )
    stopped = (-int(signal.SIGTERM), -int(signal.SIGKILL))  # the launcher stopping the others
    ranks = sorted(failed.items(), key=lambda kv: int(kv[0]))
    cause = [(r, f) for r, f in ranks if f.get("exitcode") not in stopped] or ranks
    parts = []
    for rank, f in cause:
        log = logs.get(int(f.get("local_rank", rank)))
        parts.append(
            f"rank {rank} exited with code {f.get('exitcode')}; log: {log or log_dir}"
            + (f"\n{_tail(log)}" if log else "")
        )
    others = sorted({r for r, _ in ranks} - {r for r, _ in cause}, key=int)
    if others:
        parts.append(f"then the launcher stopped rank(s) {', '.join(others)}")
    return f"distributed training of '{entry}' failed: " + "\n".join(parts)


def merge_measurements(name: str, parts: list[dict[str, Any]]) -> Window:
    """One window from the ranks' windows: every rank's charged devices (summed, never
    averaged), a device no rank was charged for once, the longest rank's duration."""
    ms = [Window.model_validate(p) for p in parts]
    charged: list[DeviceEnergy] = [d for m in ms for d in m.devices if d.charged]
    seen = {d.device for d in charged}
    others: dict[str, DeviceEnergy] = {}
    for m in ms:
        for d in m.devices:
            if not d.charged and d.device not in seen:
                others.setdefault(d.device, d)
    flags = list(dict.fromkeys(f for m in ms for f in m.flags))
    return Window(
        name=name,
        start_unix_s=min((m.start_unix_s for m in ms if m.start_unix_s is not None), default=None),
        duration_s=max(m.duration_s for m in ms),
        devices=charged + list(others.values()),
        flags=flags,
    )


def rank_summary(rec: dict[str, Any]) -> dict[str, Any]:
    """The per-rank breakdown kept in the phase record."""
    m = Window.model_validate(rec["measurement"])
    return {
        "rank": rec["rank"],
        "local_rank": rec["local_rank"],
        "node": rec["node"],
        "device": rec["device"],
        "gpu": rec["gpu"],
        "meters_host": rec["local_rank"] == 0,
        "duration_s": m.duration_s,
        "energy_j": m.energy_j,
        "measured_energy_j": m.measured_energy_j,
        "estimated_energy_j": m.estimated_energy_j,
        "gpu_energy_j": _kind_sum(m, ("gpu", "module")),
        "host_energy_j": _kind_sum(m, ("cpu", "dram", "ram", "system")),
        "is_simulated": m.is_simulated,
        "devices": [
            {"device": d.device, "kind": d.kind, "energy_j": d.energy_j, "charged": d.charged}
            for d in m.devices
        ],
        "train_seconds": rec["train"].get("seconds"),
    }


def _kind_sum(m: Window, kinds: tuple[str, ...]) -> float | None:
    vals = [d.energy_j for d in m.charged if d.kind in kinds and d.energy_j is not None]
    return sum(vals) if vals else None


# ------------------------------------------------------------------------- launcher process
def launch(spec_path: Path) -> int:
    """Run the ranks with :func:`elastic_launch`; 0 when every rank finished."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    spec = read_json(spec_path)
    result = spec_path.with_name("train.launch-result.json")
    Path(spec["log_dir"]).mkdir(parents=True, exist_ok=True)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=spec["nproc"],
        run_id=spec["run_id"],
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # torchrun --standalone
        max_restarts=0,  # a failed phase is retried by --resume, with its records intact
        monitor_interval=0.1,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=spec["log_dir"], redirects=Std.ALL),
    )
    args = ("-u", "-m", "energybench.train.distributed_worker", str(spec_path))
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as exc:
        failures = {
            str(rank): {
                "exitcode": f.exitcode,
                "local_rank": f.local_rank,
                "pid": f.pid,
                "message": f.message,
                "error_file": f.error_file,
            }
            for rank, f in exc.failures.items()
        }
        atomic_write_json(result, {"ok": False, "failures": failures})
        print(f"ranks failed: {failures}", file=sys.stderr)
        return 1
    atomic_write_json(result, {"ok": True})
    return 0


# ------------------------------------------------------------------------- worker process
def _own_pids(parent: int) -> set[int]:
    """The run's processes (the energybench parent and all its descendants): never 'another
    process' on a GPU."""
    pids = {os.getpid(), parent}
    try:
        import psutil

        pids.update(c.pid for c in psutil.Process(parent).children(recursive=True))
    except Exception:  # noqa: BLE001 - psutil missing or the tree changed: what we have
        pass
    return pids


def main(argv: list[str]) -> int:
    """``launch SPEC``: the launcher process (ranks run
    :mod:`energybench.train.distributed_worker`)."""
    if len(argv) != 2 or argv[0] != "launch":
        print("usage: python -m energybench.train.distributed launch SPEC")
        return 2
    return launch(Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
