"""Serving backends side by side, against the machine's measured limit: CKBG merged and ESPCN.

Run: ``python benchmarks/bench_backends.py [--device cpu|cuda] [--lr 180x320] [--rounds 5]
[--seconds 2] [--json] [--smoke]`` (``--no-compile`` skips torch.compile; ``--default-allocator``
leaves glibc's allocator as it is instead of tuning it as ``energybench run`` does).
Default: LR 320×180 → HR 1280×720 (×4), batch 1, online (one ``step`` per frame with the hidden
state carried), random weights (speed does not depend on them). First the attainable compute
(GEMM, a 3×3 convolution of the served width, per dtype) and copy bandwidth are measured at the
same thread count; then each backend is prepared through
:func:`energybench.serve.backends.core.prepare_serving` (the runner's code, outputs checked
against eager) and all are timed in alternating rounds (:mod:`harness`). Every backend is
reported as FPS, ratio vs eager, achieved FLOP/s (FLOPs per frame from
:func:`energybench.models.sr.complexity.count_flops`) and fraction of its dtype's GEMM and
convolution peaks. fp32 everywhere; bf16 rows (a bf16 NHWC model, ``dtype: bf16``; autocast
for comparison) where the hardware has bf16 units (CUDA; CPUs with AMX or AVX512-BF16), int8
rows (eager FX int8 on oneDNN, ONNX Runtime QDQ) on CPUs with AMX or VNNI — elsewhere the
output says so and reports fp32 only (``ENERGYBENCH_CPU_FLAGS`` simulates another CPU) — and
fp16 (autocast) on CUDA. Each reduced-precision row carries its PSNR-Y drop against the fp32
model on held-out photos (``photos`` dataset) and its bound (bf16 0.05 dB, int8 0.1 dB).
``--json`` prints one object: ``environment``, ``peaks``, ``eager_fps``, ``best_backend``,
``best_fps``, ``best_fraction_of_gemm_peak`` (CKBG merged, fp32), the best reduced-precision
backend within its bound (``best_reduced_*``), ``goals`` (issue 29) and per-model figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

from energybench.models import MODELS  # noqa: E402
from energybench.suite.schema import BackendSpec  # noqa: E402


def configurations(
    threads: int, with_compile: bool, device_type: str, dtypes: list[str]
) -> dict[str, BackendSpec]:
    """Every backend configuration that can run on this device: fp32 everywhere; bf16 (a bf16
    NHWC model, and autocast for comparison) and fp16 (autocast) where ``dtypes`` has them;
    int8 (eager FX on oneDNN, ORT QDQ) on a CPU with int8 units."""
    out = {"eager": BackendSpec(), "eager+channels_last": BackendSpec(channels_last=True)}
    if with_compile:
        out["compile"] = BackendSpec(name="compile")
        out["compile+channels_last"] = BackendSpec(name="compile", channels_last=True)
    if "bf16" in dtypes:
        out["eager+bf16"] = BackendSpec(dtype="bf16")
        if with_compile:
            out["compile+bf16"] = BackendSpec(name="compile", dtype="bf16")
        out["eager+autocast-bf16"] = BackendSpec(autocast="bf16")
    if "fp16" in dtypes:
        out["eager+autocast-fp16"] = BackendSpec(autocast="fp16")
        if with_compile:
            out["compile+autocast-fp16"] = BackendSpec(name="compile", autocast="fp16")
    int8 = device_type == "cpu" and "int8" in dtypes
    if int8:
        out["eager+int8"] = BackendSpec(quantize="int8", calibration_batches=4)
    threads_opt = threads if device_type == "cpu" else None
    if importlib.util.find_spec("onnxruntime"):
        out["onnxruntime"] = BackendSpec(name="onnxruntime", intra_op_threads=threads_opt)
        if int8:
            out["onnxruntime-int8"] = BackendSpec(
                name="onnxruntime", intra_op_threads=threads, quantize="int8",
                calibration_batches=4,
            )  # fmt: skip
    if importlib.util.find_spec("openvino") and device_type == "cpu":
        out["openvino"] = BackendSpec(name="openvino", intra_op_threads=threads)
    return out


def summary(results: dict[str, Any], frame_hw: tuple[int, int]) -> dict[str, Any]:
    """CKBG merged: the best fp32 backend (FPS, fraction of the fp32 GEMM peak), the best
    reduced-precision backend within its quality bound, and the issue's goals met or not."""
    ck = results["ckbg-merged"]
    timed = {k: v for k, v in ck.items() if "median_fps" in v}
    fp32 = {k: v for k, v in timed.items() if v["dtype"] == "fp32"}
    best = max(fp32, key=lambda k: fp32[k]["median_fps"])
    lowp = {
        k: v for k, v in timed.items()
        if v["dtype"] != "fp32" and (v.get("quality") or {}).get("within_bound")
    }  # fmt: skip
    best_lowp = max(lowp, key=lambda k: lowp[k]["median_fps"]) if lowp else None
    best_fps = fp32[best]["median_fps"]
    lowp_fps = lowp[best_lowp]["median_fps"] if best_lowp else None
    return {
        "eager_fps": ck["eager"]["median_fps"],
        "best_backend": best,
        "best_fps": best_fps,
        "best_vs_eager": fp32[best]["vs_eager"],
        "best_fraction_of_gemm_peak": fp32[best]["frac_gemm_peak"],
        "best_fraction_of_conv_peak": fp32[best]["frac_conv_peak"],
        "best_reduced_backend": best_lowp,
        "best_reduced_dtype": lowp[best_lowp]["dtype"] if best_lowp else None,
        "best_reduced_fps": lowp_fps,
        "best_reduced_vs_best_fp32": lowp_fps / best_fps if lowp_fps else None,
        "best_reduced_quality": lowp[best_lowp].get("quality") if best_lowp else None,
        "goals": {
            "fp32_at_least_70pct_of_gemm_peak": fp32[best]["frac_gemm_peak"] >= 0.7,
            "reduced_at_least_2x_best_fp32": None if lowp_fps is None else lowp_fps >= 2 * best_fps,
            "reduced_at_least_100fps_720p": None
            if lowp_fps is None or frame_hw != (180, 320)
            else lowp_fps >= 100,
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    harness.add_common_args(ap, seconds=2.0, rounds=5)
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip compile")
    ap.add_argument("--channels", type=int, default=24)
    ap.add_argument("--only-ckbg", action="store_true", help="CKBG merged only (skip ESPCN)")
    args = ap.parse_args(argv)
    harness.apply_smoke(args)
    device = harness.resolve_device(args.device)
    env = harness.prepare_process(args, device)
    h, w = harness.lr_size(args)
    dtypes = harness.dtypes_for(device)
    peaks = harness.attainable_peaks(device, dtypes, (h, w), args.channels, args.smoke)
    teacher = MODELS.create("espcn", channels=args.channels, layers=4, first_kernel=3).eval()
    # an untrained grafted CKBG as a suite builds it (grafts from the teacher, small main
    # branches): outputs near bicubic in [0, 1], as a trained model's are, so the fp32 parity
    # check sees realistic magnitudes
    grafted = MODELS.create(
        "ckbg", channels=args.channels, blocks=2, grafts=True, upstream={"t": teacher}
    )
    models = {"ckbg-merged": grafted.eval().reparameterize(), "espcn": teacher}
    configs = configurations(args.threads, args.compile, device.type, dtypes)
    if args.smoke or args.only_ckbg:
        models.pop("espcn")
    if args.smoke:  # every kind of backend once, on one model
        keep = ("eager", "eager+channels_last", "compile", "eager+bf16", "eager+autocast-fp16",
                "eager+int8")  # fmt: skip
        configs = {k: v for k, v in configs.items() if k in keep or k.startswith("onnx")}
    results = {n: harness.bench_model(m, configs, args, device, peaks) for n, m in models.items()}
    what = (
        f"LR {h}x{w} -> HR {4 * h}x{4 * w}, batch 1, online; {args.rounds} alternating rounds "
        f"of {args.seconds} s" + (" (SMOKE: sizes and timings too small to mean anything)"
                                  if args.smoke else "")
    )  # fmt: skip
    out = {
        "environment": env,
        "input": what,
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "smoke": args.smoke,
        "peaks": peaks,
        **summary(results, (h, w)),
        "models": results,
    }
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return
    harness.print_header(env, peaks, what)
    harness.print_rows(results)
    s = summary(results, (h, w))
    note = (env.get("cpu_capability") or {}).get("note")
    if note:
        print(note)
    if s["best_reduced_backend"]:
        print(
            f"CKBG merged, best {s['best_reduced_dtype']} within its quality bound: "
            f"{s['best_reduced_backend']} {s['best_reduced_fps']:.1f} FPS = "
            f"{s['best_reduced_vs_best_fp32']:.2f}x the best fp32"
        )
    print(f"goals: {s['goals']}")
    print(
        f"CKBG merged, best fp32: {s['best_backend']} {s['best_fps']:.1f} FPS = "
        f"{s['best_fraction_of_gemm_peak']:.0%} of the fp32 GEMM peak, "
        f"{s['best_fraction_of_conv_peak']:.0%} of the conv3x3 peak"
    )


if __name__ == "__main__":
    main()
