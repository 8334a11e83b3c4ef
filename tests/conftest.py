"""Shared test fixtures: a fake meter (constant power) and the compress/serve toys, so lifecycle
tests need no hardware. Helpers live in :mod:`tests.helpers`."""

from __future__ import annotations

import pytest

from energybench.meters.base import EnergyMonitor
from tests.helpers.fake_meter import FakeMeter
from tests.helpers.toy import ctx, tiny_task, toy_recurrent  # noqa: F401 - fixtures


@pytest.fixture
def fake_monitor() -> EnergyMonitor:
    return EnergyMonitor([FakeMeter()])
