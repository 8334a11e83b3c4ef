"""CKBG speed: frames per second, multi-branch vs merged vs the per-frame image SR model.

Run: ``python benchmarks/bench_ckbg.py [--device cpu|cuda] [--lr 180x320] [--channels 24
--blocks 2] [--rounds 3] [--seconds 2] [--compile] [--json] [--smoke]``.
Default: 320×180 LR → 1280×720 HR (×4), the paper's real-time setting, batch 1, online (one
``step`` per frame with the hidden state carried), random weights (speed does not depend on
them). Preparation, timing and output are :mod:`harness`'s (allocator tuned as ``energybench
run`` does, printed; CUDA timed with events and one synchronise per block; the machine's GEMM,
convolution and bandwidth limits measured first). Rows: fp32 eager; fp16/bf16 autocast where
the hardware has them (CUDA; bf16 on CPUs with AMX/AVX512-BF16); with ``--compile`` the same
through ``torch.compile`` of the served ``step`` (checked: a row whose step is not compiled
fails). It only prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from torch import nn  # noqa: E402

from energybench.models import MODELS  # noqa: E402
from energybench.models.sr.ckbg import CKBG  # noqa: E402
from energybench.models.sr.complexity import count_params  # noqa: E402
from energybench.suite.schema import BackendSpec  # noqa: E402

PAPER_FPS = 110.0


def variants(channels: int, blocks: int) -> dict[str, nn.Module]:
    """The three models compared (random weights)."""
    grafted = CKBG(channels, blocks, grafts=True).eval()
    return {
        "ckbg multi-branch (grafted)": grafted,
        "ckbg merged (single path)": grafted.reparameterize(),
        "espcn per-frame image SR": MODELS.create(
            "espcn", channels=channels, layers=blocks + 2, first_kernel=3
        ).eval(),
    }


def configurations(dtypes: list[str], compile_mode: str | None) -> dict[str, BackendSpec]:
    """eager (and compile) per dtype: fp32 as is, bf16 as a bf16 NHWC model (``dtype: bf16``),
    fp16 under autocast (int8 is bench_backends.py's: it needs calibration)."""
    out: dict[str, BackendSpec] = {}
    for dt in dtypes:
        if dt == "int8":
            continue
        opts: dict[str, Any] = {"dtype": "bf16"} if dt == "bf16" else {}
        if dt == "fp16":
            opts["autocast"] = "fp16"
        out["eager" if dt == "fp32" else f"eager+{dt}"] = BackendSpec(**opts)
        if compile_mode is not None:
            out["compile" if dt == "fp32" else f"compile+{dt}"] = BackendSpec(
                name="compile", compile_mode=compile_mode, **opts
            )
    return out


def smoke_configs(model: str, configs: dict[str, BackendSpec]) -> dict[str, BackendSpec]:
    """``--smoke``: every model eager; CKBG merged also compiled and under one autocast dtype."""
    if "merged" not in model:
        return {"eager": configs["eager"]}
    first_cast = next((k for k in configs if k.startswith("eager+")), None)
    return {k: v for k, v in configs.items() if k in ("eager", "compile", first_cast)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    harness.add_common_args(ap, seconds=2.0, rounds=3)
    ap.add_argument("--channels", type=int, default=24)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the step")
    ap.add_argument("--compile-mode", default="default", help="default | max-autotune | ...")
    ap.add_argument("--models", default=None, help="comma list of substrings (e.g. merged)")
    ap.add_argument("--dtypes", default=None, help="comma list (default: what the device has)")
    args = ap.parse_args(argv)
    harness.apply_smoke(args)
    device = harness.resolve_device(args.device)
    env = harness.prepare_process(args, device)
    h, w = harness.lr_size(args)
    dtypes = args.dtypes.split(",") if args.dtypes else harness.dtypes_for(device)
    peaks = harness.attainable_peaks(device, dtypes, (h, w), args.channels, args.smoke)
    configs = configurations(dtypes, args.compile_mode if args.compile else None)
    models = variants(args.channels, args.blocks)
    if args.models:  # the multi-branch model stays: the other rows are compared with it
        keep = args.models.split(",")
        models = {n: m for n, m in models.items() if "multi" in n or any(k in n for k in keep)}
    results = {
        n: harness.bench_model(m, smoke_configs(n, configs) if args.smoke else configs, args,
                               device, peaks)
        for n, m in models.items()
    }  # fmt: skip
    base = results["ckbg multi-branch (grafted)"]
    for name, res in results.items():
        for label, r in res.items():
            if "median_fps" in r:
                multi = base.get(label, {}).get("median_fps")
                r["vs_multi_branch"] = r["median_fps"] / multi if multi else None
                r["vs_paper"] = r["median_fps"] / PAPER_FPS
        res_params = count_params(models[name])
        for r in res.values():
            r["params"] = res_params
    what = (
        f"LR {h}x{w} -> HR {4 * h}x{4 * w}, batch 1, online; {args.rounds} alternating rounds "
        f"of {args.seconds} s; paper: {PAPER_FPS:.0f} FPS"
        + (" (SMOKE: sizes and timings too small to mean anything)" if args.smoke else "")
    )
    if args.json:
        out = {"environment": env, "input": what, "peaks": peaks, "models": results}
        print(json.dumps(out, indent=1, default=str))
        return
    harness.print_header(env, peaks, what)
    harness.print_rows(results)
    print("vs multi-branch / vs paper:")
    for name, res in results.items():
        cells = [
            f"{k} {r['vs_multi_branch']:.2f}x/{r['vs_paper']:.2f}x"
            for k, r in res.items()
            if r.get("vs_multi_branch") is not None
        ]
        print(f"  {name}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
