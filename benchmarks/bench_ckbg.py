"""CKBG speed: frames per second, multi-branch vs merged vs the per-frame image SR model.

Run: ``python benchmarks/bench_ckbg.py [--lr 180x320] [--channels 24 --blocks 2] [--min-time 2]``.
Default: 320×180 LR → 1280×720 HR (×4), the paper's real-time setting, batch 1, online (one
``step`` per frame with the hidden state carried), ``torch.inference_mode``, timed side by side
in one run with ``torch.utils.benchmark`` (CUDA-synchronised on a GPU). On a CUDA GPU it adds
fp16/bf16 and, with ``--compile``, ``torch.compile``. Random weights: speed does not depend on
them. It only prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils import benchmark  # noqa: E402

from energybench.models import MODELS  # noqa: E402
from energybench.models.sr.ckbg import CKBG  # noqa: E402
from energybench.models.sr.complexity import count_flops, count_params  # noqa: E402

PAPER_FPS = 110.0


def online_step(model: torch.nn.Module, lr: torch.Tensor) -> Callable[[], None]:
    """One served frame: ``step`` with the state carried across calls (per-frame models: call)."""
    if not getattr(model, "temporal", False):
        return lambda: model(lr)
    state = {"s": model.init_state(lr)}

    def step() -> None:
        _, state["s"] = model.step(lr, state["s"])

    return step


def fps(fn: Callable[[], None], min_time: float) -> tuple[float, float]:
    """(median FPS, IQR as a fraction of the median) over ``min_time`` seconds of blocks."""
    for _ in range(3):
        fn()
    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_time)
    return 1.0 / m.median, m.iqr / m.median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lr", default="180x320", help="LR frame HxW (HR is x4)")
    ap.add_argument("--channels", type=int, default=24)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds timed per variant")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (GPU)")
    args = ap.parse_args()
    h, w = (int(v) for v in args.lr.lower().split("x"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}; torch {torch.__version__}; LR {h}x{w} -> HR {4 * h}x{4 * w}, batch 1")

    grafted = CKBG(args.channels, args.blocks, grafts=True).eval()
    variants: dict[str, torch.nn.Module] = {
        "ckbg multi-branch (grafted)": grafted,
        "ckbg merged (single path)": grafted.reparameterize(),
        "espcn per-frame image SR": MODELS.create(
            "espcn", channels=args.channels, layers=args.blocks + 2, first_kernel=3
        ).eval(),
    }
    dtypes = [torch.float32] + ([torch.float16, torch.bfloat16] if device.type == "cuda" else [])
    rows = []
    with torch.inference_mode():
        for label, model in variants.items():
            for dtype in dtypes:
                m = model.to(device, dtype)
                lr = torch.rand(1, 3, h, w, device=device, dtype=dtype)
                flops = count_flops(m, (3, h, w))
                compiled = [("eager", m)]
                if args.compile and device.type == "cuda":
                    compiled.append(("compile", torch.compile(m, mode="max-autotune")))
                for how, mm in compiled:
                    f, iqr = fps(online_step(mm, lr), args.min_time)
                    rows.append(
                        (
                            label,
                            str(dtype).replace("torch.", ""),
                            how,
                            f,
                            iqr,
                            count_params(m),
                            flops,
                        )
                    )
    base = {(r[1], r[2]): r[3] for r in rows if r[0].startswith("ckbg multi")}
    print(
        f"{'model':30} {'dtype':9} {'mode':7} {'FPS':>8} {'IQR':>6} {'vs multi':>8} "
        f"{'vs paper':>8} {'params':>8} {'GFLOP/frame':>11}"
    )
    for label, dt, how, f, iqr, params, flops in rows:
        print(
            f"{label:30} {dt:9} {how:7} {f:8.1f} {iqr:6.1%} {f / base[(dt, how)]:8.2f}x "
            f"{f / PAPER_FPS:7.2f}x {params:8d} {flops / 1e9:11.2f}"
        )


if __name__ == "__main__":
    main()
