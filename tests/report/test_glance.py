"""Answers at a glance: engineering notation, estimate marks on live power, label placement."""

from __future__ import annotations

import itertools

import matplotlib
import pandas as pd
import pytest
from matplotlib.text import Text

from energybench.meters.base import EnergyMonitor, LivePower, Source
from energybench.report.plots import PLAIN_TEXT, quality_vs_iec_figure
from energybench.report.units import eng
from energybench.run.progress import power_text
from tests.helpers.fake_meter import FakeMeter


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (3273523200, "FLOP", "3.27 GFLOP"),
        (0.0123, "J", "12.3 mJ"),
        (57344, "", "57.3 k"),
        (999.7, "J", "1 kJ"),  # rounding carries into the next prefix
        (123, "", "123"),
        (0, "J", "0 J"),
        (-2500, "J", "-2.5 kJ"),
        (None, "J", "–"),
        (float("nan"), "J", "–"),
    ],
)
def test_engineering_notation(value: object, unit: str, text: str) -> None:
    assert eng(value, unit) == text


class EstimatingMeter(FakeMeter):
    def live_power_is_estimate(self) -> bool:
        return True


def test_live_power_is_marked_when_any_part_is_an_estimate() -> None:
    measured = EnergyMonitor([FakeMeter(20.0, Source("rapl"))])
    mixed = EnergyMonitor([FakeMeter(20.0, Source("rapl")), EstimatingMeter(8.0)])
    assert measured.live_power() == LivePower(20.0, False)
    assert mixed.live_power() == LivePower(28.0, True)
    assert power_text(mixed.live_power()) == "≈28.0 W est."
    assert power_text(measured.live_power()).strip() == "20.0 W"
    assert "est" not in power_text(measured.live_power())
    assert power_text(None).strip() == "?  W"


def test_estimate_meter_says_its_live_power_is_an_estimate() -> None:
    from energybench.meters.estimate import EstimateMeter

    assert EstimateMeter.live_power_is_estimate(object.__new__(EstimateMeter))  # type: ignore[arg-type]


def test_quality_vs_iec_labels_do_not_overlap() -> None:
    # eight entries on nearly the same point: naive labels at a fixed offset would all overlap
    rows = [
        {"entry": f"entry-number-{i}", "iec_j": 0.1 * (1 + 0.01 * i), "quality": 0.8 + 1e-3 * i}
        for i in range(8)
    ] + [{"entry": "far", "iec_j": 10.0, "quality": 0.5}]
    board = pd.DataFrame(rows).assign(is_estimate=False)
    with matplotlib.rc_context(PLAIN_TEXT):
        fig = quality_vs_iec_figure(board)
        assert fig is not None
        renderer = fig.canvas.get_renderer()
        texts = fig.axes[0].texts
        for t in texts:
            t.update_positions(renderer)
        boxes = [Text.get_window_extent(t, renderer) for t in texts]
    assert sorted(t.get_text() for t in texts) == sorted(r["entry"] for r in rows)
    overlapping = [
        (a.get_text(), b.get_text())
        for (a, ba), (b, bb) in itertools.combinations(zip(texts, boxes, strict=True), 2)
        if ba.overlaps(bb)
    ]
    assert overlapping == []
    assert all(fig.bbox.contains(b.x0, b.y0) and fig.bbox.contains(b.x1, b.y1) for b in boxes)


def test_piped_output_prints_the_leaderboard_whole() -> None:
    """Under nohup, CI or ``| tee`` (stdout not a terminal) the leaderboard and break-even lines
    are not cut or wrapped at 80 columns."""
    import subprocess
    import sys

    from tests.helpers.report import tiny_run

    run_dir = tiny_run()
    code = (
        "import sys; from pathlib import Path; from energybench import cli; "
        f"cli._print_glance(Path({str(run_dir)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"}, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) > 80  # a whole row, not cut at the terminal default
    for line in lines:  # a break-even line is one line, never continued mid-number
        if "break-even at" in line:
            assert "cheaper" in line or "never" in line or "always" in line, line
