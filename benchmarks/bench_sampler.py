"""Overhead of the power sampler: CPU cost per wall second, and serving-latency impact.

Run: ``python benchmarks/bench_sampler.py [--period 0.05] [--pairs 20] [--threads N] [--smoke]``.
Targets (printed with a verdict): sampler thread < 0.3 % of one core at 20 Hz; serving latency
with/without the sampler ≤ 1.01 (median of paired blocks). ``--smoke``: one second and two
pairs (CI: checks it runs; the verdicts then mean nothing).
Uses real NVML when a GPU is present, else a simulated GPU behind the same meter code. The
latency comparison serves a small torch model with and without the sampler running, in
interleaved blocks (ON/OFF order randomised per pair) so that drift affects both equally.
It only prints; it must not change any device setting.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from energybench.meters.base import SYSTEM_CLOCK  # noqa: E402
from energybench.meters.gpu_select import GpuTarget, select_gpus  # noqa: E402
from energybench.meters.nvml import NvmlMeter  # noqa: E402
from energybench.meters.nvml_device import NvmlUnavailableError, PynvmlBackend  # noqa: E402
from energybench.meters.sim.fakenvml import FakeGpu, FakeNvml, PowerTrace  # noqa: E402


def gpu_targets() -> tuple[list[GpuTarget], str, Any]:
    """Real GPUs the run would use, else one simulated GPU."""
    try:
        backend = PynvmlBackend()
        targets = select_gpus(backend, [0])
        return targets, f"NVML: {targets[0].device.name()}", backend
    except (NvmlUnavailableError, Exception):
        trace = PowerTrace.from_function(lambda t: 250 + 100 * ((t * 7) % 1), 3600, 0.05)
        fake = FakeNvml([FakeGpu(power=trace, sensor_period_s=0.02)], SYSTEM_CLOCK)
        sim = PynvmlBackend(fake).devices()[0]  # the real adapter over the fake NVML module
        return [GpuTarget(sim)], "simulated GPU (no NVML here)", None


def make_meter(targets: list[GpuTarget], period: float, trace_dir: Path) -> NvmlMeter:
    return NvmlMeter(targets, sample_period_s=period, trace_dir=trace_dir, probe_s=0.0)


def sampler_cost(
    targets: list[GpuTarget], period: float, seconds: float, trace_dir: Path
) -> dict[str, float]:
    meter = make_meter(targets, period, trace_dir)
    proc0, wall0 = time.process_time(), time.perf_counter()
    meter.start()
    time.sleep(seconds)
    assert meter.sampler is not None
    thread_cpu = meter.sampler.cpu_s
    ticks = meter.sampler._poller.ticks if meter.sampler._poller else 0
    meter.close()
    wall = time.perf_counter() - wall0
    return {
        "thread_cpu_per_wall": thread_cpu / wall,
        "process_cpu_per_wall": (time.process_time() - proc0) / wall,
        "rate_hz": ticks / wall,
        "wall_s": wall,
    }


def small_model(device: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """An FSRCNN-sized x4 super-resolution net on one 64x64 frame."""
    model = (
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 5, padding=2),
            torch.nn.PReLU(32),
            torch.nn.Conv2d(32, 12, 1),
            torch.nn.PReLU(12),
            torch.nn.Conv2d(12, 12, 3, padding=1),
            torch.nn.PReLU(12),
            torch.nn.Conv2d(12, 32, 1),
            torch.nn.PReLU(32),
            torch.nn.Conv2d(32, 3 * 16, 3, padding=1),
            torch.nn.PixelShuffle(4),
        )
        .to(device)
        .eval()
    )
    return model, torch.randn(1, 3, 64, 64, device=device)


def serve_block(model: torch.nn.Module, x: torch.Tensor, iters: int) -> list[float]:
    lat = []
    with torch.inference_mode():
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            lat.append(time.perf_counter() - t0)
    return lat


def latency_ratio(
    targets: list[GpuTarget], period: float, pairs: int, iters: int, trace_dir: Path
) -> dict[str, float]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, x = small_model(device)
    serve_block(model, x, iters)  # warm-up
    rng = random.Random(0)
    ratios, on_all, off_all = [], [], []
    for _ in range(pairs):
        med: dict[bool, float] = {}
        for on in rng.sample([True, False], 2):
            meter = make_meter(targets, period, trace_dir) if on else None
            if meter:
                meter.start()
            lat = serve_block(model, x, iters)
            if meter:
                meter.close()
            med[on] = statistics.median(lat)
            (on_all if on else off_all).extend(lat)
        ratios.append(med[True] / med[False])
    ratios.sort()
    lo, hi = ratios[int(0.1 * (pairs - 1))], ratios[int(round(0.9 * (pairs - 1)))]
    return {
        "device": device,
        "median_on_ms": 1e3 * statistics.median(on_all),
        "median_off_ms": 1e3 * statistics.median(off_all),
        "ratio": statistics.median(ratios),
        "ratio_p10": lo,
        "ratio_p90": hi,
        "mean_ratio": statistics.mean(on_all) / statistics.mean(off_all),
    }


def verdict(ok: bool, smoke: bool) -> str:
    """``met``/``MISSED``; under ``--smoke`` the figures are too short to judge."""
    if smoke:
        return "not judged (smoke)"
    return "met" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--period", type=float, default=0.05, help="sampling period in s (20 Hz)")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of the cost run")
    ap.add_argument("--pairs", type=int, default=20, help="ON/OFF block pairs")
    ap.add_argument("--iters", type=int, default=200, help="requests per block")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--smoke", action="store_true", help="a few seconds (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.pairs, args.iters = 1.0, 2, 20
        args.threads = 1  # a loaded CI machine makes multi-threaded spin waits crawl
    if args.threads:
        torch.set_num_threads(args.threads)
    targets, what, backend = gpu_targets()
    print(
        f"sampler source: {what}; {os.cpu_count()} CPUs; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cost = sampler_cost(targets, args.period, args.seconds, Path(tmp))
        print(
            f"sampler at {1 / args.period:.0f} Hz (achieved {cost['rate_hz']:.1f} Hz): "
            f"{cost['thread_cpu_per_wall'] * 1e3:.2f} ms CPU per wall s in the thread "
            f"({cost['thread_cpu_per_wall']:.3%} of one core; target < 0.3 % at 20 Hz: "
            f"{verdict(cost['thread_cpu_per_wall'] < 0.003, args.smoke)}); whole process "
            f"{cost['process_cpu_per_wall']:.2%}"
        )
        lr = latency_ratio(targets, args.period, args.pairs, args.iters, Path(tmp))
    print(
        f"serving latency on {lr['device']}: median {lr['median_off_ms']:.3f} ms without, "
        f"{lr['median_on_ms']:.3f} ms with the sampler"
    )
    print(
        f"latency ratio with/without (median of {args.pairs} paired blocks): "
        f"{lr['ratio']:.4f} (p10 {lr['ratio_p10']:.4f}, p90 {lr['ratio_p90']:.4f}); "
        f"mean ratio {lr['mean_ratio']:.4f}; target <= 1.01: "
        f"{verdict(lr['ratio'] <= 1.01, args.smoke)}"
    )
    if backend is not None:
        backend.close()


if __name__ == "__main__":
    main()
