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
convolution peaks. fp32 everywhere; bf16 (autocast) rows where the hardware has bf16 units
(CUDA; CPUs with AMX or AVX512-BF16 — elsewhere the output says so), fp16 on CUDA.
``--json`` prints one object: ``environment``, ``peaks``, ``eager_fps``, ``best_backend``,
``best_fps``, ``best_fraction_of_gemm_peak`` (CKBG merged, fp32) and per-model figures.
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
    """Every backend configuration that can run on this device."""
    out = {"eager": BackendSpec(), "eager+channels_last": BackendSpec(channels_last=True)}
    if with_compile:
        out["compile"] = BackendSpec(name="compile")
        out["compile+channels_last"] = BackendSpec(name="compile", channels_last=True)
    for dt in dtypes:
        if dt == "fp32":
            continue
        out[f"eager+{dt}"] = BackendSpec(autocast=dt)
        if with_compile:
            out[f"compile+{dt}"] = BackendSpec(name="compile", autocast=dt)
    threads_opt = threads if device_type == "cpu" else None
    if importlib.util.find_spec("onnxruntime"):
        out["onnxruntime"] = BackendSpec(name="onnxruntime", intra_op_threads=threads_opt)
        if device_type == "cpu":
            out["onnxruntime-int8"] = BackendSpec(
                name="onnxruntime", intra_op_threads=threads, quantize="int8",
                calibration_batches=4,
            )  # fmt: skip
    if importlib.util.find_spec("openvino") and device_type == "cpu":
        out["openvino"] = BackendSpec(name="openvino", intra_op_threads=threads)
    return out


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """Best fp32 backend of CKBG merged, its FPS and fraction of the fp32 GEMM peak."""
    ck = results["ckbg-merged"]
    timed = {k: v for k, v in ck.items() if "median_fps" in v and v["dtype"] == "fp32"}
    best = max(timed, key=lambda k: timed[k]["median_fps"])
    return {
        "eager_fps": ck["eager"]["median_fps"],
        "best_backend": best,
        "best_fps": timed[best]["median_fps"],
        "best_vs_eager": timed[best]["vs_eager"],
        "best_fraction_of_gemm_peak": timed[best]["frac_gemm_peak"],
        "best_fraction_of_conv_peak": timed[best]["frac_conv_peak"],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    harness.add_common_args(ap, seconds=2.0, rounds=5)
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip compile")
    ap.add_argument("--channels", type=int, default=24)
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
    if args.smoke:  # every kind of backend once, on one model
        models.pop("espcn")
        keep = ("eager", "eager+channels_last", "compile", "eager+bf16", "eager+fp16")
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
        **summary(results),
        "models": results,
    }
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return
    harness.print_header(env, peaks, what)
    harness.print_rows(results)
    s = summary(results)
    print(
        f"CKBG merged, best fp32: {s['best_backend']} {s['best_fps']:.1f} FPS = "
        f"{s['best_fraction_of_gemm_peak']:.0%} of the fp32 GEMM peak, "
        f"{s['best_fraction_of_conv_peak']:.0%} of the conv3x3 peak"
    )


if __name__ == "__main__":
    main()
