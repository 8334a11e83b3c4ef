"""Serving-latency overhead of energybench, and what pruning and int8 buy on this machine.

Run: ``python benchmarks/bench_serving.py [--lr 64] [--seconds 0.5] [--rounds 15] [--threads N]
[--smoke]`` (``--smoke``: tiny timings, two rounds; CI checks it runs, the figures mean nothing).
Compares, for espcn (batch 1, one ``--lr``×``--lr`` LR frame, CPU unless a GPU is present):

1. energybench's throughput scenario (``run_throughput``, with a no-op monitor) against a bare
   ``torch.utils.benchmark.Timer`` loop on the same model and input: median latency ratio
   (target ≤ 1.01); and its items/s against a bare closed loop that synchronises once at the
   end (target ≥ 0.98). The scenario queues iterations back to back (CUDA events each
   iteration, one synchronise per window), so on a GPU the ratio stays near 1 as well; a
   synchronise per iteration (the scenario before issue 23) leaves the GPU idle for the launch
   gap of every iteration, which for a small model at batch 1 costs tens of % of items/s (and
   charges that idle power to the model). On the CPU both sides do the same work;
2. structured-pruned (50% of hidden channels) vs unpruned, both measured by energybench;
3. int8 (static, FX) vs fp32 on the CPU, both measured by energybench.

Rounds alternate the two sides of every comparison so that drift affects both. Only prints.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.utils.benchmark as tb  # noqa: E402
from torch import nn  # noqa: E402

from energybench.compress.common import CompressContext  # noqa: E402
from energybench.compress.methods import apply_method  # noqa: E402
from energybench.data import DATASETS  # noqa: E402
from energybench.meters.base import EnergyMonitor  # noqa: E402
from energybench.models import MODELS  # noqa: E402
from energybench.serve.scenarios import run_throughput  # noqa: E402
from energybench.suite.schema import EnergySettings, Prune, Quantize, Throughput  # noqa: E402
from energybench.tasks.base import SRTask  # noqa: E402


def energybench_ms(model: nn.Module, task: SRTask, device: torch.device, seconds: float) -> float:
    """Mean batch-1 latency (ms) as the throughput scenario measures it (one trial).

    Means on both sides: a per-call median and Timer's median of block means are different
    statistics (they differ by several % on a noisy CPU even with no harness at all).
    """
    sc = Throughput(scenario="throughput", batch_sizes=[1], warmup=10, iterations=32)
    energy = EnergySettings(min_window_s=seconds, min_window_iters=32, trials=1)
    res = run_throughput(sc, model, task, device, EnergyMonitor([]), energy, "bench")
    lat = res.by_batch["1"].latency_ms
    assert lat is not None
    return lat.mean


def energybench_items_per_s(
    model: nn.Module, task: SRTask, device: torch.device, seconds: float
) -> float:
    """Items/s of the throughput scenario at batch 1 (one trial: items / window duration)."""
    sc = Throughput(scenario="throughput", batch_sizes=[1], warmup=10, iterations=32)
    energy = EnergySettings(min_window_s=seconds, min_window_iters=32, trials=1)
    res = run_throughput(sc, model, task, device, EnergyMonitor([]), energy, "bench")
    rate = res.by_batch["1"].items_per_s
    assert rate is not None
    return rate.mean


def bare_items_per_s(model: nn.Module, x: torch.Tensor, seconds: float) -> float:
    """Items/s of a bare closed loop of ``model(x)``, synchronised once, at the end."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        sync()
        n, t0 = 0, time.perf_counter()
        while n < 32 or time.perf_counter() - t0 < seconds:
            model(x)
            n += 1
        sync()
        return n * x.shape[0] / (time.perf_counter() - t0)


def bare_ms(model: nn.Module, x: torch.Tensor, seconds: float) -> float:
    """Mean latency (ms) of ``model(x)`` under ``torch.utils.benchmark.Timer``."""
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        t = tb.Timer(
            "model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads()
        )
        m = t.blocked_autorange(min_run_time=seconds)
    return m.mean * 1e3


SPREAD: list[str] = []


def paired(a, b, rounds: int) -> tuple[float, float, float]:
    """Medians of a() and b() over alternating rounds, and the median per-round ratio a/b.

    The inter-quartile range of the per-round ratios goes to :data:`SPREAD` (the noise floor).
    """
    ra, rb, ratios = [], [], []
    for i in range(rounds):
        x, y = (a(), b()) if i % 2 == 0 else tuple(reversed((b(), a())))
        ra.append(x)
        rb.append(y)
        ratios.append(x / y)
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    SPREAD.append(f"ratio IQR [{q[0]:.3f}, {q[2]:.3f}] over {rounds} rounds")
    return statistics.median(ra), statistics.median(rb), statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=int, default=64, help="LR frame side in pixels")
    ap.add_argument("--seconds", type=float, default=0.5, help="measuring time per side per round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--smoke", action="store_true", help="a few seconds (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.lr, args.seconds, args.rounds = 16, 0.05, 1
        args.threads = 1  # a loaded CI machine makes multi-threaded spin waits crawl
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ds = DATASETS.create(
        "photos", train=["page"], val=[], test=["astronaut"], patch_size=64,
        serve_lr=f"{args.lr}x{args.lr}",
    )  # fmt: skip
    task = SRTask(ds)
    torch.manual_seed(0)
    model = MODELS.create("espcn", channels=args.channels).to(device).eval()
    x = ds.sample_lr(1).to(device)
    print(
        f"espcn(channels={args.channels}) batch 1 at {args.lr}x{args.lr} LR on {device}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    s = args.seconds
    eb, bare, ratio = paired(
        lambda: energybench_ms(model, task, device, s), lambda: bare_ms(model, x, s), args.rounds
    )
    print(
        f"1. energybench {eb:.3f} ms vs bare torch Timer {bare:.3f} ms (means): "
        f"ratio {ratio:.4f} (target <= 1.01: "
        f"{'not judged (smoke)' if args.smoke else 'met' if ratio <= 1.01 else 'MISSED'}); "
        f"{SPREAD[-1]}"
    )
    eb, bare, ratio = paired(
        lambda: energybench_items_per_s(model, task, device, s),
        lambda: bare_items_per_s(model, x, s),
        args.rounds,
    )
    print(
        f"1b. throughput: energybench {eb:.1f} items/s vs bare loop {bare:.1f} items/s: "
        f"ratio {ratio:.4f} (target >= 0.98); {SPREAD[-1]}"
    )
    ctx = CompressContext(task, torch.device("cpu"), seed=0, batch_size=4)
    pruned, rec = apply_method(Prune(method="prune", kind="structured", amount=0.5), model, ctx)
    pruned = pruned.to(device)
    p, u, ratio = paired(
        lambda: energybench_ms(pruned, task, device, s),
        lambda: energybench_ms(model, task, device, s),
        args.rounds,
    )
    print(
        f"2. structured 50% pruned {p:.3f} ms vs unpruned {u:.3f} ms: ratio {ratio:.3f}; "
        f"{SPREAD[-1]} "
        f"(params {rec['after']['params']} vs {rec['before']['params']})"
    )
    if device.type != "cpu":
        print("3. int8: skipped (CPU only)")
        return
    q, rec = apply_method(Quantize(method="quantize", calibration_batches=4), model, ctx)
    i8, f32, ratio = paired(
        lambda: energybench_ms(q, task, device, s),
        lambda: energybench_ms(model, task, device, s),
        args.rounds,
    )
    print(
        f"3. int8 ({rec['graph']}) {i8:.3f} ms vs fp32 {f32:.3f} ms: ratio {ratio:.3f}; "
        f"{SPREAD[-1]} "
        f"(size {rec['after']['size_bytes']} vs {rec['before']['size_bytes']} bytes)"
    )


if __name__ == "__main__":
    main()
