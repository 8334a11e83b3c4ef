"""The table of switching policies an ``adaptive`` scenario may name (``policy:``).

Entries are lazy ``"module:attr"`` factories (``factory(sc=Adaptive settings) -> policy``), so the
suite schema checks policy names here without importing the serving runtime; the policies
themselves live in :mod:`energybench.serve.policies`, which re-exports this table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from energybench.plugins.registry import Registry

POLICIES: Registry[Callable[..., Any]] = Registry("policy", Callable)
POLICIES.register(
    "static", "energybench.serve.policies:static_policy", help="no switching (the baseline)"
)
POLICIES.register(
    "deadline",
    "energybench.serve.policies:deadline_policy",
    help="down after k misses in a window, up after m on-time frames with headroom "
    "(m doubled after each failed probe up, up to max_backoff x m)",
)
