"""One rank of a distributed train phase (see :mod:`energybench.train.distributed`):
``python -m energybench.train.distributed_worker SPEC``, started by the elastic launcher.

A rank builds its task and model the way the runner does, through the run's
:class:`~energybench.run.context.PhaseContext` (never the runner itself).
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from energybench.plugins.entrypoints import load_plugins
from energybench.records.store import atomic_write_json, read_json
from energybench.suite.schema import DEFAULT_DIST_TIMEOUT_S
from energybench.train.distributed import (
    TEST_RANK_EXIT_ENV,
    ShardedTask,
    _DDPView,
    _Forward,
    _own_pids,
)

if TYPE_CHECKING:
    from energybench.meters.base import EnergyMonitor
    from energybench.run.context import PhaseContext


def _rank_context(spec: dict[str, Any]) -> PhaseContext:
    """The run as this rank sees it: the suite (its declared plug-ins loaded, as
    ``load_suite`` does), the run store, placements and checkpoint loader."""
    from energybench.records.store import RunStore
    from energybench.run.allocator import keep_freed_memory
    from energybench.run.checkpoint import CheckpointLoader
    from energybench.run.context import PhaseContext
    from energybench.run.placement import placements
    from energybench.suite.load import LoadedSuite
    from energybench.suite.schema import Suite

    load_plugins(spec["suite"].get("plugins") or [])
    suite = Suite.model_validate(spec["suite"])
    loaded = LoadedSuite(suite=suite, path=Path(spec["suite_file"]), data=spec["suite"])
    store = RunStore(Path(spec["run_dir"]))
    keep_freed_memory()  # as every process of a run that measures
    return PhaseContext(
        loaded=loaded,
        store=store,
        placements=placements(suite, spec["simulate"]),
        loader=CheckpointLoader(lambda u: store.checkpoint_path(u, "train")),
        simulate=spec["simulate"],
    )


def _join_group(spec: dict[str, Any], local: int) -> tuple[int | None, torch.device]:
    """Join the process group on this rank's device; its GPU index (None without GPUs) and
    the torch device it trains on (made current on CUDA; CPU unless the run has real CUDA)."""
    import torch.distributed as dist

    gpu: int | None = spec["gpus"][local] if spec["gpus"] else None
    device = torch.device(f"cuda:{gpu}") if spec["real_cuda"] and gpu is not None else None
    device = device or torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        spec["backend"],
        device_id=device if device.type == "cuda" else None,
        timeout=datetime.timedelta(seconds=float(spec.get("timeout_s", DEFAULT_DIST_TIMEOUT_S))),
    )
    return gpu, device


def _rank_monitor(
    ctx: PhaseContext, spec: dict[str, Any], gpu: int | None, trace: Path, *, host: bool
) -> EnergyMonitor:
    """The monitor of this rank's window: its GPU, the host's CPU/RAM when ``host``
    (once per node), the launcher's process tree as its own processes."""
    from energybench.meters.factory import build_monitor

    sim = {"simulate": spec["simulate"]} if spec["simulate"] else {}
    return build_monitor(
        ctx.suite.energy,
        [gpu] if gpu is not None else None,
        trace,
        host=host,
        own_pids=lambda: _own_pids(int(spec["parent_pid"])),
        **sim,
    )


def _rank_identity(
    spec: dict[str, Any], ranks: tuple[int, int, int], device: torch.device, gpu: int | None
) -> dict[str, Any]:
    """Who this rank was, for its rank record: ranks, node, process, device, backend."""
    rank, local, world = ranks
    return {
        "rank": rank,
        "local_rank": local,
        "world_size": world,
        "node": socket.gethostname(),
        "pid": os.getpid(),
        "device": str(device),
        "gpu": gpu,
        "backend": spec["backend"],
    }


def worker(spec_path: Path) -> None:
    """One rank: train its share under DDP inside its own measurement window."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from energybench.run.checkpoint import save_checkpoint
    from energybench.run.preflight import task_for
    from energybench.train.loop import settings_kwargs, train_steps

    spec = read_json(spec_path)
    rank, local, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    torch.set_num_threads(int(spec["threads"]))
    gpu, device = _join_group(spec, local)
    try:
        ctx = _rank_context(spec)
        suite, store = ctx.suite, ctx.store
        e = suite.entry(spec["entry"])
        tr = e.train
        assert tr is not None
        task = task_for(suite, e, {})
        torch.manual_seed(tr.seed)
        model, _ = ctx.build_model(e, device, task)
        ddp = DistributedDataParallel(
            _Forward(model), device_ids=[device.index] if device.type == "cuda" else None
        )
        sharded = ShardedTask(task, rank, world, _DDPView(ddp, model))
        trace = store.root / "traces" / f"{e.name}-train-rank{rank}"
        monitor = _rank_monitor(ctx, spec, gpu, trace, host=local == 0)
        if os.environ.get(TEST_RANK_EXIT_ENV) == str(rank):
            print(f"rank {rank}: exiting on {TEST_RANK_EXIT_ENV}", file=sys.stderr, flush=True)
            os._exit(17)
        name = f"{e.name}/train/rank{rank}"
        with monitor, monitor.charging([gpu] if gpu is not None else []):
            monitor.set_idle(spec["idle_w"])
            dist.barrier()
            monitor.begin_window(name)  # synchronises the device first
            res = train_steps(
                model,
                sharded,
                steps=int(spec["steps"]),
                device=device,
                **settings_kwargs(tr),
            )
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dist.barrier()
            meas = monitor.end_window(name)
        if rank == 0:
            save_checkpoint(model, store.checkpoint_path(e.name, "train"))
        atomic_write_json(
            store.entry_dir(e.name) / "ranks" / f"train-rank{rank}.json",
            {
                **_rank_identity(spec, (rank, local, world), device, gpu),
                "train": res.to_dict(),
                "measurement": meas.to_json(),
            },
        )
        dist.barrier()  # rank 0's checkpoint is written before any rank reports success
    finally:
        dist.destroy_process_group()


def main(argv: list[str]) -> int:
    """``SPEC``: run this rank (its traceback goes to its error file and log)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    if len(argv) != 1:
        print("usage: python -m energybench.train.distributed_worker SPEC")
        return 2
    record(worker)(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
