"""Serving backends side by side: FPS of CKBG merged and ESPCN on every available backend.

Run: ``python benchmarks/bench_backends.py [--lr 180x320] [--rounds 5] [--seconds 2] [--json]``
(``--no-compile`` skips torch.compile; ``--default-allocator`` leaves glibc's allocator as it is
instead of tuning it as ``energybench run`` does).
Default: LR 320×180 → HR 1280×720 (×4), batch 1, fp32, online (one ``step`` per frame with the
hidden state carried), random weights (speed does not depend on them). Each backend is
prepared through :func:`energybench.serve.backends.core.prepare_serving` — the same code the
runner uses, outputs checked against eager — then all are timed in alternating rounds
(round r: every backend for ``--seconds``), so a noisy, shared machine slows them alike; the
figure is the median FPS over rounds, the spread its min–max. ``--json`` prints one object:
``eager_fps``, ``best_backend``, ``best_fps`` (CKBG merged) and per-model, per-backend figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from energybench.models import MODELS  # noqa: E402
from energybench.run.allocator import keep_freed_memory  # noqa: E402
from energybench.serve.backends.core import PrepareContext, prepare_serving  # noqa: E402
from energybench.serve.backends.onnx_export import is_recurrent  # noqa: E402
from energybench.suite.schema import BackendSpec  # noqa: E402


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


def configurations(threads: int, with_compile: bool) -> dict[str, BackendSpec]:
    """Every backend configuration that can run here."""
    out = {
        "eager": BackendSpec(),
        "eager+channels_last": BackendSpec(channels_last=True),
    }
    if with_compile:
        out["compile"] = BackendSpec(name="compile")
        out["compile+channels_last"] = BackendSpec(name="compile", channels_last=True)
    if importlib.util.find_spec("onnxruntime"):
        out["onnxruntime"] = BackendSpec(name="onnxruntime", intra_op_threads=threads)
        out["onnxruntime-int8"] = BackendSpec(
            name="onnxruntime", intra_op_threads=threads, quantize="int8", calibration_batches=4
        )
    if importlib.util.find_spec("openvino"):
        out["openvino"] = BackendSpec(name="openvino", intra_op_threads=threads)
    return out


def online(model: nn.Module, lr: torch.Tensor) -> Callable[[], None]:
    """One served frame, the state carried across calls."""
    if not is_recurrent(model):
        return lambda: model(lr)
    state = {"s": model.init_state(lr)}

    def step() -> None:
        _, state["s"] = model.step(lr, state["s"])

    return step


def rate(fn: Callable[[], None], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def bench_model(
    model: nn.Module, h: int, w: int, configs: dict[str, BackendSpec], args: argparse.Namespace
) -> dict[str, Any]:
    frames = torch.rand(4, 3, h, w, generator=torch.Generator().manual_seed(0))
    ctx = PrepareContext(frames, torch.device("cpu"), RandomFrames(h, w), batch_size=4)
    fns: dict[str, Callable[[], None]] = {}
    out: dict[str, Any] = {}
    for label, spec in configs.items():
        try:
            t0 = time.perf_counter()
            served, rec = prepare_serving(spec, model, ctx)
            fn = online(served, frames[:1])
            with torch.inference_mode():
                for _ in range(3):  # warm-up (and compilation) outside the timed rounds
                    fn()
            parity = ((rec.get("export") or {}).get("parity") or {}).get("max_abs_diff")
            out[label] = {"prepare_s": time.perf_counter() - t0, "max_abs_diff": parity, "fps": []}
            fns[label] = fn
        except Exception as exc:  # noqa: BLE001 - a backend that fails is reported, not fatal
            out[label] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for label, fn in fns.items():
                out[label]["fps"].append(rate(fn, args.seconds))
    eager = statistics.median(out["eager"]["fps"])
    for label in fns:
        f = out[label]["fps"]
        med = statistics.median(f)
        out[label].update(
            median_fps=med,
            spread_fps=[min(f), max(f)],
            vs_eager=med / eager,
            vs_eager_per_round=[a / b for a, b in zip(f, out["eager"]["fps"], strict=True)],
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lr", default="180x320", help="LR frame HxW (HR is x4)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per round")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    ap.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (energybench run tunes it; see allocator.py)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    h, w = (int(v) for v in args.lr.lower().split("x"))
    allocator = None if args.default_allocator else keep_freed_memory()
    torch.manual_seed(0)
    teacher = MODELS.create("espcn", channels=24, layers=4, first_kernel=3).eval()
    # an untrained grafted CKBG as a suite builds it (grafts from the teacher, small main
    # branches): outputs near bicubic in [0, 1], as a trained model's are, so the fp32 parity
    # check sees realistic magnitudes
    grafted = MODELS.create("ckbg", channels=24, blocks=2, grafts=True, upstream={"t": teacher})
    models = {"ckbg-merged": grafted.eval().reparameterize(), "espcn": teacher}
    configs = configurations(args.threads, args.compile)
    results = {name: bench_model(m, h, w, configs, args) for name, m in models.items()}
    ck = results["ckbg-merged"]
    timed = {k: v for k, v in ck.items() if "median_fps" in v}
    best = max(timed, key=lambda k: timed[k]["median_fps"])
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for mod in ("onnxruntime", "onnx", "openvino"):
        if importlib.util.find_spec(mod):
            versions[mod] = __import__(mod).__version__
    summary = {
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "threads": args.threads,
        "allocator": allocator or "glibc default (not tuned)",
        "versions": versions,
        "input": f"LR {h}x{w} -> HR {4 * h}x{4 * w}, batch 1, fp32, online",
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "eager_fps": ck["eager"]["median_fps"],
        "best_backend": best,
        "best_fps": timed[best]["median_fps"],
        "best_vs_eager": timed[best]["vs_eager"],
        "models": results,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"{summary['device']}; {versions}; {summary['input']}; {args.rounds} alternating rounds")
    print(f"{'model':12} {'backend':22} {'FPS':>7} {'min-max':>13} {'x eager':>8} {'max|d|':>8}")
    for name, res in results.items():
        for label, r in res.items():
            if "error" in r:
                print(f"{name:12} {label:22} failed: {r['error']}")
                continue
            lo, hi = r["spread_fps"]
            d = r["max_abs_diff"]
            print(
                f"{name:12} {label:22} {r['median_fps']:7.1f} {lo:6.1f}-{hi:<6.1f} "
                f"{r['vs_eager']:7.2f}x {'' if d is None else f'{d:.1e}':>8}"
            )


if __name__ == "__main__":
    main()
