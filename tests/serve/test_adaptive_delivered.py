"""An adaptive entry reports what it delivered: quality mixed over the frames each variant
served (dropped frames not scored), never its fallback model's own figure."""

from __future__ import annotations

from typing import Any

import pytest

from energybench.serve.adaptive import delivered_quality, frames_served

VQ = {
    "merged": {"ssim": 0.90, "psnr_db": 30.0, "frames": 2, "convention": {"y_channel": True}},
    "bicubic": {"ssim": 0.80, "psnr_db": 28.0, "frames": 2, "convention": {"y_channel": True}},
}


def _result(variant: list[int], latency: list[float | None]) -> dict[str, Any]:
    run = {
        "per_frame": {"variant": variant, "latency_ms": latency},
        "dropped": sum(x is None for x in latency),
        "psnr_mean_db": 29.1,
    }
    return {"variants": ["merged", "bicubic"], "policy": "deadline", "runs": {"deadline": run}}


def test_quality_is_weighted_by_the_frames_each_variant_served() -> None:
    # 6 frames served by merged, 2 by bicubic, 2 dropped (while on merged): not scored
    res = _result([0, 0, 0, 0, 0, 0, 1, 1, 0, 0], [5.0] * 8 + [None, None])
    assert frames_served(res["runs"]["deadline"], res["variants"]) == {"merged": 6, "bicubic": 2}
    q, basis = delivered_quality(res, VQ)
    assert q["ssim"] == pytest.approx(0.75 * 0.90 + 0.25 * 0.80)
    assert q["psnr_db"] == pytest.approx(0.75 * 30.0 + 0.25 * 28.0)
    assert q["frames"] == 8 and q["convention"] == {"y_channel": True}
    assert basis["kind"] == "served-mix" and basis["frames_dropped"] == 2
    assert basis["weights"] == {"merged": 0.75, "bicubic": 0.25}
    assert basis["served_outputs_psnr_db"] == 29.1
    assert basis["variant_quality"]["bicubic"] == {"ssim": 0.80, "psnr_db": 28.0}


def test_a_figure_one_variant_lacks_is_not_mixed_and_no_frame_served_fails() -> None:
    vq = {"merged": {**VQ["merged"], "lpips": 0.1}, "bicubic": VQ["bicubic"]}
    q, _ = delivered_quality(_result([0, 1], [1.0, 1.0]), vq)
    assert "lpips" not in q and q["ssim"] == pytest.approx(0.85)
    with pytest.raises(ValueError, match="served no frame"):
        delivered_quality(_result([0, 1], [None, None]), VQ)
