"""Switching policies of the ``adaptive`` scenario, and the interface for user policies.

A policy decides, after every frame, which already-loaded variant serves the next frame. It sees
only :class:`FrameObservation` records (what a real server would know: latency, the deadline,
which variant ran); it must not time, sleep, measure energy or touch models. Variants are
indexed 0 (best quality, slowest) to n-1 (cheapest).

User policies: any object with ``reset(variants)`` and ``decide(obs) -> int`` (see
:class:`Policy`), registered by name from Python before the run::

    from energybench.serve.policies import POLICIES
    POLICIES.register("my-policy", lambda scenario: MyPolicy(...), help="...")

The factory gets the scenario settings (an ``Adaptive`` model) and returns a fresh policy.
Suites then name it: ``policy: my-policy``. (A suite never imports code by itself.)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from energybench.suite.policies import POLICIES

__all__ = ["POLICIES", "DeadlinePolicy", "FrameObservation", "Policy", "StaticPolicy"]


@dataclass(frozen=True)
class FrameObservation:
    """What happened to one frame (seconds on the stream's clock)."""

    index: int  # frame number in the stream
    variant: int  # index of the variant that served it (or would have, if dropped)
    latency_s: float | None  # arrival to completion; None if the frame was dropped
    period_s: float  # 1 / fps: the frame's deadline after its arrival
    missed: bool  # finished after its deadline, or dropped


class Policy(Protocol):
    """The interface of a switching policy."""

    def reset(self, variants: list[str]) -> None:
        """Called once before the stream with the variant names (best first)."""
        ...

    def decide(self, obs: FrameObservation) -> int:
        """The variant index for the next frame, given what happened to this one."""
        ...


class StaticPolicy:
    """No switching: every frame is served by variant 0 (the baseline)."""

    def reset(self, variants: list[str]) -> None:
        self.n = len(variants)

    def decide(self, obs: FrameObservation) -> int:
        return 0


class DeadlinePolicy:
    """Switch down one variant after ``k`` misses among the last ``window`` frames; switch up
    one after ``m`` on-time frames in a row that each finished within ``headroom`` x the frame
    period. After a switch the history is cleared (hysteresis: the new variant is judged on its
    own frames only).

    A switch up is a probe. If it fails (the policy has to switch down again within ``m`` frames
    of it), the calm run needed before the next probe doubles, up to ``max_backoff`` x ``m``;
    ``m`` frames on the better variant without falling back reset it. Under sustained
    contention this keeps the misses that probing costs from growing with the stream's length
    (exponential backoff, as in TCP retransmission)."""

    def __init__(
        self,
        window: int = 10,
        k: int = 2,
        m: int = 20,
        headroom: float = 0.6,
        max_backoff: int = 8,
    ) -> None:
        self.window, self.k, self.m, self.headroom = window, k, m, headroom
        self.max_backoff = max_backoff
        self.n = 1
        self.reset(["only"])

    def reset(self, variants: list[str]) -> None:
        self.n = len(variants)
        self.current = 0
        self.recent: deque[bool] = deque(maxlen=self.window)
        self.calm = 0
        self.backoff = 1  # the next probe up needs backoff x m calm frames
        self.since_up: int | None = None  # frames served since the last switch up

    def _switch(self, to: int) -> int:
        if to > self.current and self.since_up is not None and self.since_up < self.m:
            self.backoff = min(self.backoff * 2, self.max_backoff)  # the probe failed
        self.since_up = 0 if to < self.current else None
        self.current = to
        self.recent.clear()
        self.calm = 0
        return to

    def decide(self, obs: FrameObservation) -> int:
        self.recent.append(obs.missed)
        if self.since_up is not None:
            self.since_up += 1
            if self.since_up >= self.m:  # the probe held: the better variant copes again
                self.backoff, self.since_up = 1, None
        fast = (
            not obs.missed
            and obs.latency_s is not None
            and obs.latency_s <= self.headroom * obs.period_s
        )
        self.calm = self.calm + 1 if fast else 0
        if sum(self.recent) >= self.k and self.current < self.n - 1:
            return self._switch(self.current + 1)
        if self.calm >= self.m * self.backoff and self.current > 0:
            return self._switch(self.current - 1)
        return self.current


def static_policy(sc: Any) -> StaticPolicy:
    """The ``static`` policy (the scenario settings are not used)."""
    return StaticPolicy()


def deadline_policy(sc: Any) -> DeadlinePolicy:
    """The ``deadline`` policy with the scenario's window, thresholds and back-off."""
    return DeadlinePolicy(
        window=sc.miss_window,
        k=sc.down_after_misses,
        m=sc.up_after_on_time,
        headroom=sc.headroom,
        max_backoff=sc.max_backoff,
    )
