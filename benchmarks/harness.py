"""Shared harness of the serving benchmarks (``bench_backends.py``, ``bench_ckbg.py``).

One preparation, one timer and one output for both, so the same figure means the same thing:

- **Preparation** (:func:`prepare_process`): glibc's allocator tuned exactly as ``energybench
  run`` tunes it (:func:`energybench.run.allocator.keep_freed_memory`; ``--default-allocator``
  leaves it), the torch thread count fixed, both printed.
- **Serving**: every configuration is prepared through
  :func:`energybench.serve.backends.core.prepare_serving` — the runner's own code, outputs
  checked against eager — and timed online (one ``step`` per frame, the state carried).
  ``compile`` is what is called: :func:`is_compiled` checks the served ``step`` went through
  ``torch.compile`` and the row records it.
- **Timing** (:func:`frame_rate`): on a CPU, wall time around a block of frames; on CUDA, events
  around the block and one synchronise at its end (no per-frame sync, the launch queue stays
  full). Configurations are timed in alternating rounds so drift slows them alike.
- **The machine's limit** (:func:`attainable_peaks`): measured in the same process and thread
  count before any backend — GEMM and a 3×3 convolution of the served width per dtype, memory
  bandwidth — so every backend is reported as achieved FLOP/s and a fraction of the peak of
  its dtype (a roofline point), next to its ratio vs eager.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from energybench.models.sr.complexity import count_flops  # noqa: E402
from energybench.run.allocator import keep_freed_memory  # noqa: E402
from energybench.serve.backends import cpu_units  # noqa: E402
from energybench.serve.backends.core import PrepareContext, prepare_serving  # noqa: E402
from energybench.serve.backends.lowp import QUALITY_DROP_BOUND_DB, reduced_dtype  # noqa: E402
from energybench.serve.backends.onnx_export import is_recurrent  # noqa: E402
from energybench.suite.schema import BackendSpec  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# ----------------------------------------------------------------------------- arguments
def add_common_args(ap: argparse.ArgumentParser, seconds: float, rounds: int) -> None:
    """Options every serving benchmark has (device, size, timing, allocator, smoke, json)."""
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--lr", default="180x320", help="LR frame HxW (HR is x4)")
    ap.add_argument("--rounds", type=int, default=rounds, help="alternating timed rounds")
    ap.add_argument("--seconds", type=float, default=seconds, help="timed seconds per round")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (energybench run tunes it; see allocator.py)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--smoke", action="store_true", help="a few seconds on tiny sizes (CI: checks it runs)"
    )


def apply_smoke(args: argparse.Namespace) -> None:
    """Tiny sizes, short timings, one thread (a loaded CI machine makes multi-threaded spin
    waits crawl): the code paths run, the figures mean nothing."""
    if args.smoke:
        args.lr, args.rounds, args.seconds, args.threads = "24x32", 1, 0.05, 1


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available; CUDA asked for on a machine without it exits 2."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: torch sees no CUDA device here (exit 2)")
    return device


# ----------------------------------------------------------------------------- environment
def cpu_flags() -> set[str]:
    """The CPU's feature flags (:func:`energybench.serve.backends.cpu_units.cpu_flags`: from
    /proc/cpuinfo, or ``ENERGYBENCH_CPU_FLAGS`` to simulate another CPU)."""
    return cpu_units.cpu_flags()


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_capability() -> dict[str, Any]:
    """What the CPU's matrix units can do: bf16 (AMX/AVX512-BF16), int8 (AMX/VNNI)."""
    flags = cpu_flags()
    bf16, int8 = (cpu_units.units(dt, flags) for dt in ("bf16", "int8"))
    missing = [dt for dt, u in (("bf16", bf16), ("int8", int8)) if not u]
    return {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_units": bf16,
        "int8_units": int8,
        "bf16": bool(bf16),
        "int8": bool(int8),
        "note": None
        if not missing
        else f"no {' or '.join(missing)} matrix units on this CPU (AMX, AVX512-BF16, VNNI): "
        f"{' and '.join(missing)} would be emulated; "
        + ("fp32 only" if len(missing) == 2 else f"no {missing[0]} rows"),
    }


def prepare_process(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Allocator and threads as ``energybench run`` sets them; returns what was set."""
    allocator = None if args.default_allocator else keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env: dict[str, Any] = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "allocator": allocator or "glibc default (not tuned: --default-allocator)",
        "versions": versions(),
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        env["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
        env["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    else:
        env["cpu"] = f"{cpu_model()}, {len(_affinity())} usable CPUs"
        env["cpu_capability"] = cpu_capability()
    return env


def _affinity() -> set[int]:
    try:
        return set(__import__("os").sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return set(range(__import__("os").cpu_count() or 1))


def versions() -> dict[str, str]:
    """torch and the optional runtimes' versions."""
    out = {"torch": torch.__version__}
    for mod in ("onnxruntime", "onnx", "openvino"):
        if importlib.util.find_spec(mod):
            out[mod] = str(getattr(__import__(mod), "__version__", "?"))
    return out


def dtypes_for(device: torch.device) -> list[str]:
    """The dtypes with hardware support: fp32 always; CUDA fp16 and bf16; CPU bf16 on AMX or
    AVX512-BF16, int8 on AMX or VNNI."""
    if device.type == "cuda":
        return ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    cap = cpu_capability()
    return ["fp32"] + [dt for dt in ("bf16", "int8") if cap[dt]]


# ----------------------------------------------------------------------------- timing
def frame_rate(fn: Callable[[], Any], seconds: float, device: torch.device) -> float:
    """Calls per second of ``fn`` over at least ``seconds`` (and 3 calls).

    CUDA: events on the current stream around the block and one synchronise at the end.
    """
    if device.type != "cuda":
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        return n / (time.perf_counter() - t0)
    with torch.cuda.device(device):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        n, t0 = 0, time.perf_counter()
        start.record()
        while n < 3 or time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        end.record()
        end.synchronize()
        return n / (start.elapsed_time(end) / 1e3)


def online(model: nn.Module, lr: torch.Tensor) -> Callable[[], None]:
    """One served frame: ``step`` with the state carried (per-frame models: a call)."""
    if not is_recurrent(model):
        return lambda: model(lr)
    state = {"s": model.init_state(lr)}

    def step() -> None:
        _, state["s"] = model.step(lr, state["s"])

    return step


def is_compiled(served: nn.Module) -> bool:
    """Whether what a served frame calls (``step`` for online models, else ``forward`` or the
    module) went through ``torch.compile`` (a dynamo-wrapped function or OptimizedModule).

    ``torch.compile(module).step`` is the original module's method: not compiled.
    """
    from torch._dynamo.eval_frame import OptimizedModule

    if isinstance(served, OptimizedModule):
        return not is_recurrent(served)
    fn = served.step if is_recurrent(served) else served.forward
    return hasattr(fn, "_torchdynamo_orig_callable")


# ----------------------------------------------------------------------------- machine limit
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_rate(fn: Callable[[], Any], seconds: float, device: torch.device) -> float:
    """Calls per second after one untimed call (library initialisation, kernel selection)."""
    fn()
    _sync(device)
    return frame_rate(fn, seconds, device)


@torch.inference_mode()
def attainable_peaks(
    device: torch.device, dtypes: list[str], lr_hw: tuple[int, int], channels: int, smoke: bool
) -> dict[str, Any]:
    """GEMM and 3×3-convolution FLOP/s per dtype, and copy bandwidth, measured here and now."""
    seconds = 0.05 if smoke else 1.0
    n = 256 if smoke else 2048
    h, w = lr_hw
    out: dict[str, Any] = {"gemm_n": n, "conv": f"{channels}->{channels} 3x3 at {h}x{w}"}
    for name in dtypes:
        if name == "int8":
            out[name] = _int8_peaks(n, channels, (h, w), seconds)
            continue
        dt = DTYPES[name]
        a, b = (torch.rand(n, n, device=device, dtype=dt) for _ in range(2))
        c = torch.empty(n, n, device=device, dtype=dt)
        gemm = _peak_rate(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), seconds, device) * 2 * n**3
        x = torch.rand(1, channels, h, w, device=device, dtype=dt)
        wt = torch.rand(channels, channels, 3, 3, device=device, dtype=dt)
        conv_flops = 2 * channels * channels * 9 * h * w
        conv = max(
            _peak_rate(lambda x=x, wt=wt: F.conv2d(x, wt, padding=1), seconds, device)
            for x, wt in (
                (x, wt),
                (
                    x.contiguous(memory_format=torch.channels_last),
                    wt.contiguous(memory_format=torch.channels_last),
                ),
            )
        )
        out[name] = {"gemm_flops": gemm, "conv3x3_flops": conv * conv_flops}
    nbytes = (16 if smoke else 256) * 2**20
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    out["copy_bytes_per_s"] = _peak_rate(lambda: dst.copy_(src), seconds, device) * 2 * nbytes
    _sync(device)
    return out


def _int8_peaks(n: int, channels: int, hw: tuple[int, int], seconds: float) -> dict[str, Any]:
    """int8 on the CPU: ``torch._int_mm`` (s8 x s8 -> s32 GEMM) and a 3×3 u8s8 convolution
    packed for oneDNN (the kernels the eager int8 backend runs), in op/s."""
    import warnings

    import torch.ao.nn.quantized as nnq

    from energybench.serve.backends.lowp import quantized_engine

    h, w = hw
    a, b = (torch.randint(-128, 127, (n, n), dtype=torch.int8) for _ in range(2))
    gemm = _peak_rate(lambda: torch._int_mm(a, b), seconds, torch.device("cpu")) * 2 * n**3
    with warnings.catch_warnings(), quantized_engine("onednn"):
        warnings.simplefilter("ignore")  # quantized tensor creation is deprecated in torch
        conv = nnq.Conv2d(channels, channels, 3, padding=1)
        scales = torch.full((channels,), 0.01)
        wq = torch.quantize_per_channel(
            torch.randn(channels, channels, 3, 3) * 0.1, scales,
            torch.zeros(channels, dtype=torch.long), 0, torch.qint8,
        )  # fmt: skip
        conv.set_weight_bias(wq, torch.zeros(channels))
        conv.scale, conv.zero_point = 0.05, 0
        x = torch.quantize_per_tensor(torch.rand(1, channels, h, w), 0.01, 0, torch.quint8)
        x = x.contiguous(memory_format=torch.channels_last)
        rate = _peak_rate(lambda: conv(x), seconds, torch.device("cpu"))
    return {
        "gemm_flops": gemm,
        "conv3x3_flops": rate * 2 * channels * channels * 9 * h * w,
        "unit": "int8 op/s (torch._int_mm; oneDNN u8s8 convolution)",
    }


def backend_dtype(spec: BackendSpec) -> str:
    """The dtype whose peak a backend is held to (its reduced precision, else fp32)."""
    return reduced_dtype(spec) or "fp32"


# ----------------------------------------------------------------------------- the benchmark
class RandomFrames:
    """A stand-in task for int8 calibration: random LR training clips (speed only)."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w

    def train_batches(self, model: nn.Module, batch_size: int, seed: int) -> Iterator[Any]:
        g = torch.Generator().manual_seed(seed)
        t = 4 if getattr(model, "temporal", False) else 1
        while True:
            lr = torch.rand(batch_size, t, 3, 32, 32, generator=g)
            yield (lr if t > 1 else lr[:, 0]), None


def prepare_all(
    model: nn.Module,
    configs: dict[str, BackendSpec],
    frames: torch.Tensor,
    device: torch.device,
    task: Any = None,
    served_models: dict[str, nn.Module] | None = None,
) -> tuple[dict[str, Callable[[], None]], dict[str, dict[str, Any]]]:
    """Each configuration served and warmed up; a failing one is recorded, not fatal.
    ``task``: int8 calibration batches (default: random frames); ``served_models`` collects
    the served models by label."""
    task = task or RandomFrames(*frames.shape[-2:])
    ctx = PrepareContext(frames, device, task, batch_size=4)
    fns: dict[str, Callable[[], None]] = {}
    out: dict[str, dict[str, Any]] = {}
    for label, spec in configs.items():
        try:
            t0 = time.perf_counter()
            served, rec = prepare_serving(spec, model, ctx)
            fn = online(served, frames[:1])
            with torch.inference_mode():
                for _ in range(3):  # warm-up (and compilation) outside the timed rounds
                    fn()
            _sync(device)
            export = rec.get("export") or {}
            out[label] = {
                "backend": spec.name,
                "dtype": backend_dtype(spec),
                "compiled": is_compiled(served),
                "prepare_s": time.perf_counter() - t0,
                "max_abs_diff": (export.get("parity") or {}).get("max_abs_diff"),
                "providers": export.get("providers"),
                "fps": [],
            }
            if spec.name == "compile" and not out[label]["compiled"]:
                raise RuntimeError("the served step is not compiled (a compile row would be eager)")
            fns[label] = fn
            if served_models is not None:
                served_models[label] = served
        except Exception as exc:  # noqa: BLE001 - a backend that fails is reported, not fatal
            out[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            fns.pop(label, None)
    return fns, out


def bench_model(
    model: nn.Module,
    configs: dict[str, BackendSpec],
    args: argparse.Namespace,
    device: torch.device,
    peaks: dict[str, Any],
) -> dict[str, Any]:
    """Every configuration of one model: FPS over alternating rounds, ratio vs eager, achieved
    FLOP/s and the fraction of its dtype's measured peaks."""
    h, w = lr_size(args)
    model = model.to(device).eval()
    frames = torch.rand(4, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    reduced = any(backend_dtype(spec) != "fp32" for spec in configs.values())
    task = photo_task(smoke=getattr(args, "smoke", False)) if reduced else None
    served: dict[str, nn.Module] = {}
    fns, out = prepare_all(model, configs, frames, device, task, served)
    with torch.inference_mode():
        for _ in range(args.rounds):
            for label, fn in fns.items():
                out[label]["fps"].append(frame_rate(fn, args.seconds, device))
    flops = count_flops(model, (3, h, w))
    eager = out.get("eager", {}).get("fps")
    for label in fns:
        f = out[label]["fps"]
        med = statistics.median(f)
        peak = peaks.get(out[label]["dtype"])
        out[label].update(
            median_fps=med,
            spread_fps=[min(f), max(f)],
            vs_eager=med / statistics.median(eager) if eager else None,
            vs_eager_per_round=[a / b for a, b in zip(f, eager, strict=True)] if eager else None,
            flops_per_frame=flops,
            achieved_flops=med * flops,
            frac_gemm_peak=med * flops / peak["gemm_flops"] if peak else None,
            frac_conv_peak=med * flops / peak["conv3x3_flops"] if peak else None,
        )
    if task is not None:
        quality_deltas(model, served, out, task, device)
    return out


def photo_task(smoke: bool) -> Any:
    """Held-out clips and calibration batches: the ``photos`` dataset (scikit-image's bundled
    photographs, no download), whole test photos centre-cropped (smaller in ``--smoke``)."""
    from energybench.data.photos import PhotosDataset
    from energybench.tasks.select import make_task

    crop = "64x64" if smoke else "256x256"
    return make_task(PhotosDataset(test_crop=crop, patch_size=32 if smoke else 96))


def quality_deltas(
    model: nn.Module,
    served: dict[str, nn.Module],
    out: dict[str, dict[str, Any]],
    task: Any,
    device: torch.device,
) -> None:
    """PSNR-Y (BasicSR convention) of each reduced-precision row against the fp32 model on the
    task's held-out test clips: ``quality`` in its row (drop, bound, within the bound)."""
    from energybench.serve.backends.lowp import quality_vs_fp32
    from energybench.suite.schema import EvaluateSettings

    settings = EvaluateSettings(max_items=4)
    with torch.inference_mode():
        fp32 = task.evaluate(model, settings, device)
        for label, m in served.items():
            dtype = out[label]["dtype"]
            if dtype == "fp32":
                continue
            try:
                q = quality_vs_fp32(dtype, task.evaluate(m, settings, device), fp32)
            except Exception as exc:  # noqa: BLE001 - reported in the row, never fatal
                out[label]["quality"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                continue
            out[label]["quality"] = {
                "psnr_y_db": fp32["psnr_db"] + q["delta"]["psnr_db"],
                "fp32_psnr_y_db": fp32["psnr_db"],
                "psnr_drop_db": q["psnr_drop_db"],
                "bound_db": QUALITY_DROP_BOUND_DB.get(dtype),
                "within_bound": q["within_bound"],
                "clips": fp32["frames"],
                "convention": fp32["convention"],
            }


def lr_size(args: argparse.Namespace) -> tuple[int, int]:
    """``--lr HxW`` as integers."""
    h, w = (int(v) for v in args.lr.lower().split("x"))
    return h, w


# ----------------------------------------------------------------------------- output
def _g(v: float | None, scale: float = 1e9, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v / scale)


def print_header(env: dict[str, Any], peaks: dict[str, Any], what: str) -> None:
    """Environment, preparation and the measured machine limit."""
    where = env.get("gpu") or env.get("cpu")
    print(f"{where}; {env['threads']} threads; {env['versions']}; python {env['python']}")
    print(f"allocator: {env['allocator']}")
    cap = env.get("cpu_capability")
    if cap:
        print(
            f"cpu capability: torch {cap['torch_cpu_capability']}; bf16 units "
            f"{cap['bf16_units'] or 'none'}; int8 units {cap['int8_units'] or 'none'}"
            + (f" — {cap['note']}" if cap["note"] else "")
        )
    if "tf32_matmul" in env:
        print(f"TF32 matmul {env['tf32_matmul']}, cuDNN TF32 {env['tf32_cudnn']}")
    print(what)
    bw = peaks["copy_bytes_per_s"] / 1e9
    print(f"attainable (measured now): copy bandwidth {bw:.1f} GB/s; {peaks['conv']}")
    for name in DTYPES:
        if name in peaks:
            p = peaks[name]
            print(
                f"  {name}: GEMM {peaks['gemm_n']}^2 {p['gemm_flops'] / 1e9:.0f} GFLOP/s, "
                f"conv3x3 {p['conv3x3_flops'] / 1e9:.0f} GFLOP/s"
            )


def print_rows(results: dict[str, dict[str, Any]]) -> None:
    """One line per model and configuration."""
    print(
        f"{'model':28} {'config':24} {'dtype':5} {'FPS':>7} {'min-max':>13} {'x eager':>8} "
        f"{'GFLOP/s':>8} {'%GEMM':>6} {'%conv':>6} {'max|d|':>8}"
    )
    for name, res in results.items():
        for label, r in res.items():
            if "error" in r:
                print(f"{name:28} {label:24} failed: {r['error']}")
                continue
            lo, hi = r["spread_fps"]
            d = r["max_abs_diff"]
            vs = "-" if r["vs_eager"] is None else f"{r['vs_eager']:.2f}x"
            q = r.get("quality") or {}
            drop = q.get("psnr_drop_db")
            tail = "" if drop is None else f"  PSNR-Y drop {drop:+.3f} dB (bound {q['bound_db']})"
            print(
                f"{name:28} {label:24} {r['dtype']:5} {r['median_fps']:7.1f} "
                f"{lo:6.1f}-{hi:<6.1f} {vs:>8} {_g(r['achieved_flops']):>8} "
                f"{_g(r['frac_gemm_peak'], 0.01):>6} {_g(r['frac_conv_peak'], 0.01):>6} "
                f"{'' if d is None else f'{d:.1e}':>8}{tail}"
            )
