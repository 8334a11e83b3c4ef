"""The adaptive scenario: policy decisions, a deterministic slow model on a virtual clock, and
the contention generator (a separate process that is always stopped)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from torch import nn

from energybench.meters.base import EnergyMonitor
from energybench.serve import adaptive
from energybench.serve.adaptive import Variant, stream_once
from energybench.serve.contention import Contention
from energybench.serve.policies import POLICIES, DeadlinePolicy, FrameObservation
from energybench.suite.schema import Adaptive
from tests.helpers.fake_meter import FakeMeter

PERIOD = 0.02  # 50 fps


def obs(i: int, variant: int, latency_ms: float | None) -> FrameObservation:
    lat = None if latency_ms is None else latency_ms / 1e3
    return FrameObservation(i, variant, lat, PERIOD, lat is None or lat > PERIOD)


def test_deadline_policy_down_after_k_misses_up_after_m_calm_frames() -> None:
    p = DeadlinePolicy(window=4, k=2, m=3, headroom=0.5)
    p.reset(["big", "mid", "small"])
    # one miss is tolerated; the second within the window switches down one variant
    assert [p.decide(obs(0, 0, 25)), p.decide(obs(1, 0, 5)), p.decide(obs(2, 0, 30))] == [0, 0, 1]
    # hysteresis: history cleared, so one more miss on the new variant does not switch again
    assert p.decide(obs(3, 1, 25)) == 1
    # a dropped frame is a miss too: second miss in the window -> down to the last variant
    assert p.decide(obs(4, 1, None)) == 2
    assert p.decide(obs(5, 2, 30)) == 2 and p.decide(obs(6, 2, 30)) == 2  # nowhere further down
    # on time but without headroom (15 ms > 0.5 x 20 ms) never counts towards switching up
    assert [p.decide(obs(7 + k, 2, 15)) for k in range(5)] == [2] * 5
    # m = 3 on-time frames with headroom in a row -> up one
    assert [p.decide(obs(12 + k, 2, 5)) for k in range(3)] == [2, 2, 1]
    # a slow frame interrupts the run of calm frames
    assert [p.decide(obs(15, 1, 5)), p.decide(obs(16, 1, 15)), p.decide(obs(17, 1, 5))] == [1] * 3
    assert [p.decide(obs(18 + k, 1, 5)) for k in range(2)] == [1, 0]


def test_deadline_policy_backs_off_after_failed_probes_and_resets_after_a_good_one() -> None:
    p = DeadlinePolicy(window=4, k=2, m=3, headroom=0.5, max_backoff=4)
    p.reset(["big", "small"])
    i = 0

    def feed(variant: int, latency_ms: float | None, times: int) -> list[int]:
        nonlocal i
        out = [p.decide(obs(i + k, variant, latency_ms)) for k in range(times)]
        i += times
        return out

    assert feed(0, 30, 2) == [0, 1]  # two misses: down
    assert feed(1, 5, 3) == [1, 1, 0]  # 3 calm frames: probe up
    assert feed(0, 30, 2) == [0, 1]  # the probe fails within m frames: down, backoff x2
    assert feed(1, 5, 6) == [1] * 5 + [0]  # now 2 x 3 calm frames before the next probe
    assert feed(0, 30, 2) == [0, 1]  # fails again: x4
    assert feed(1, 5, 12) == [1] * 11 + [0]
    assert feed(0, 30, 2) == [0, 1]  # fails again: capped at max_backoff = 4
    assert feed(1, 5, 12) == [1] * 11 + [0]
    assert feed(0, 5, 3) == [0, 0, 0]  # the probe holds for m frames: backoff reset
    assert feed(0, 30, 2) == [0, 1]
    assert feed(1, 5, 3) == [1, 1, 0]  # back to m calm frames


def test_static_policy_never_switches() -> None:
    sc = Adaptive(scenario="adaptive", variants=["a", "b"], policy="static")
    p = POLICIES.create("static", sc=sc)
    p.reset(["a", "b"])
    assert {p.decide(obs(i, 0, None)) for i in range(50)} == {0}


class VirtualClock:
    """perf_counter/sleep on virtual time: a frame's latency is exactly what the model says."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += max(s, 0.0)


class SlowModel(nn.Module):
    """Takes ``base_s`` per frame, ``slow_s`` while the virtual clock is in ``slow_window``."""

    def __init__(self, clock: VirtualClock, base_s: float, slow_s: float, window: tuple) -> None:
        super().__init__()
        self.clock, self.base_s, self.slow_s, self.window = clock, base_s, slow_s, window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.window
        self.clock.t += self.slow_s if lo <= self.clock.t < hi else self.base_s
        return torch.nn.functional.interpolate(x, scale_factor=4)


def _stream(policy: str) -> dict:
    clock = VirtualClock()
    sc = Adaptive(
        scenario="adaptive",
        fps=1 / PERIOD,
        duration_s=3.0,
        variants=["slow", "fast"],
        policy=policy,
        miss_window=5,
        down_after_misses=2,
        up_after_on_time=10,
        headroom=0.6,
        max_backoff=4,
    )
    variants = [
        Variant("slow", SlowModel(clock, 0.005, 0.030, (0.5, 1.5)), torch.device("cpu")),
        Variant("fast", SlowModel(clock, 0.004, 0.004, (0.0, 0.0)), torch.device("cpu")),
    ]
    lr = torch.zeros(4, 3, 2, 2)
    rec, _lat, outputs = stream_once(
        sc, policy, variants, lr, EnergyMonitor([FakeMeter()]), "t", torch.device("cpu"), clock
    )
    assert len(outputs) == rec["frames"] == 150
    return rec


def test_deadline_policy_switches_on_a_deterministic_slow_model() -> None:
    static, dyn = _stream("static"), _stream("deadline")
    pf = dyn["per_frame"]
    # static: variant 0 throughout, every frame in the slow second misses (or is dropped)
    assert static["switches"] == [] and set(static["per_frame"]["variant"]) == {0}
    slow_frames = [i for i, t in enumerate(static["per_frame"]["t_s"]) if 0.5 <= t < 1.5]
    assert all(static["per_frame"]["missed"][i] for i in slow_frames)
    # deadline: the first switch comes right after the 2nd miss (frames 25 and 26, t = 0.50 s)
    first = dyn["switches"][0]
    assert (first["frame"], first["from"], first["to"]) == (26, "slow", "fast")
    assert pf["missed"][25] and pf["missed"][26] and not any(pf["missed"][:25])
    for s in dyn["switches"]:
        i = s["frame"]
        if s["to"] == "fast":  # down: >= 2 misses in the last 5 frames, all on 'slow'
            assert sum(pf["missed"][i - 4 : i + 1]) >= 2
        else:  # up: at least the 10 frames before were on time with headroom on 'fast'
            lat = pf["latency_ms"][i - 9 : i + 1]
            assert all(x is not None and x <= 0.6 * PERIOD * 1e3 for x in lat)
            assert set(pf["variant"][i - 9 : i + 1]) == {1}
    # failed probes back off: calm runs of 10, 20, then 40 frames (max_backoff 4) before probing
    # (+1: the first frame after a switch down still queues behind the last slow one)
    ups = [s["frame"] for s in dyn["switches"] if s["to"] == "slow"]
    downs = [s["frame"] for s in dyn["switches"] if s["to"] == "fast"]
    calm_runs = [u - d for d, u in zip(downs, ups, strict=False)]
    assert calm_runs[:3] == [11, 21, 41] and all(r == 41 for r in calm_runs[3:])
    # back on the best variant once the slow second is over, and it stays there
    assert pf["variant"][-1] == 0 and not any(pf["missed"][-20:])
    assert dyn["deadline_miss_rate"] < static["deadline_miss_rate"]
    assert dyn["time_per_variant_s"]["fast"] > 0 and static["time_per_variant_s"]["fast"] == 0
    assert dyn["served"] > static["served"] and dyn["dropped"] < static["dropped"]
    assert all(s["switch_ms"] >= 0 for s in dyn["switches"])


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _cpu_ticks(pid: int) -> int:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_contention_runs_in_its_own_process_and_is_always_stopped(exc: type) -> None:
    with pytest.raises(exc), Contention([(0.0, 1)], device="cpu", end_s=60) as gen:
        gen.launch()
        pid = gen.pid
        assert pid is not None and _alive(pid)
        before = _cpu_ticks(pid)
        gen.go(time.time())
        time.sleep(1.0)
        assert _cpu_ticks(pid) > before  # the worker is busy
        raise exc("interrupted mid-stream")
    assert gen.proc is None and not _alive(pid)


def test_stream_stops_the_generator_when_a_model_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Contention] = []
    pids: list[int] = []

    class Spy(Contention):
        def launch(self) -> None:
            super().launch()
            started.append(self)
            pids.append(self.pid or -1)

    monkeypatch.setattr(adaptive, "Contention", Spy)

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("model failed")

    sc = Adaptive(
        scenario="adaptive",
        fps=50,
        duration_s=1,
        variants=["b"],
        policy="static",
        contention=[{"at_s": 0, "threads": 1}],
    )
    with pytest.raises(RuntimeError, match="model failed"):
        stream_once(
            sc,
            "static",
            [Variant("b", Broken(), torch.device("cpu"))],
            torch.zeros(2, 3, 2, 2),
            EnergyMonitor([FakeMeter()]),
            "t",
            torch.device("cpu"),
        )
    assert started and started[0].proc is None and not _alive(pids[0])


def test_run_adaptive_on_real_frames_records_quality_energy_and_the_comparison(
    tiny_task: object, toy_recurrent: nn.Module
) -> None:
    from energybench.models import MODELS
    from energybench.records.store import RunData
    from energybench.report.html import _adaptive
    from energybench.suite.schema import EnergySettings

    sc = Adaptive(
        scenario="adaptive",
        fps=20,
        duration_s=0.5,
        variants=["toy", "bicubic"],
        policy="deadline",
        warmup=1,
    )
    models = {"toy": toy_recurrent, "bicubic": MODELS.create("bicubic", scale=4)}
    result = adaptive.run_adaptive(
        sc, models, tiny_task, torch.device("cpu"), EnergyMonitor([FakeMeter()]),
        EnergySettings(), "a/serve/adaptive",
    )  # fmt: skip
    rec = result.to_json()  # as stored
    assert list(rec["runs"]) == ["static", "deadline"]  # the baseline first, same schedule
    for r in rec["runs"].values():
        assert r["frames"] == 10 and r["contention_stopped"]
        served = [
            q
            for q, lat in zip(r["per_frame"]["psnr_db"], r["per_frame"]["latency_ms"], strict=True)
            if lat is not None
        ]
        assert served and all(q is not None and 10 < q < 60 for q in served)  # PSNR vs HR
        assert r["energy_per_frame_j"] > 0 and r["trial"]["measurement"]["duration_s"] >= 0.5
    assert set(rec["versus_static"]) >= {"miss_rate_diff", "psnr_mean_db_diff"}
    assert rec["energy_per_item_j"]["mean"] == rec["runs"]["deadline"]["energy_per_frame_j"]
    # the report: one table row per policy run, static first, and the timeline plot
    serve = {"entry": "e", "phase": "serve", "status": "done", "config_hash": "h"}
    run = RunData.from_records(
        Path("r"), {"suite": {}}, {"e": {"serve": {**serve, "scenarios": {"adaptive": rec}}}}
    )
    (section,) = _adaptive(run)
    assert [row["policy"] for row in section["rows"]] == ["static", "deadline"]
    assert section["rows"][0]["miss_rate"] == rec["runs"]["static"]["deadline_miss_rate"]
    assert section["svg"] and section["svg"].startswith("<svg")
    assert section["threads"] == rec["threads"] == torch.get_num_threads()


class ThreadsSeen(nn.Module):
    """Bicubic-sized output; records torch's intra-op thread count at every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add(torch.get_num_threads())
        return torch.nn.functional.interpolate(x, scale_factor=4)


def test_the_stream_runs_on_the_declared_threads_and_restores_them(tiny_task: object) -> None:
    from energybench.suite.schema import EnergySettings

    model = ThreadsSeen()
    before = torch.get_num_threads()
    declared = 1 if before != 1 else 2
    sc = Adaptive(
        scenario="adaptive", fps=20, duration_s=0.2, variants=["m"], policy="static",
        baseline=False, warmup=1, threads=declared,
    )  # fmt: skip
    result = adaptive.run_adaptive(
        sc, {"m": model}, tiny_task, torch.device("cpu"), EnergyMonitor([FakeMeter()]),
        EnergySettings(), "a/serve/adaptive",
    )  # fmt: skip
    rec = result.to_json()  # as stored
    assert model.seen == {declared} and rec["threads"] == declared
    assert torch.get_num_threads() == before
