"""Shared test fixtures: a fake meter (constant power) and the compress/serve toys, so lifecycle
tests need no hardware. Helpers live in :mod:`tests.helpers`."""

from __future__ import annotations

import signal

import pytest

from energybench.meters.base import EnergyMonitor
from tests.helpers.fake_meter import FakeMeter
from tests.helpers.toy import ctx, tiny_task, toy_recurrent  # noqa: F401 - fixtures

# pytest started in the background of a non-interactive shell (`cmd &` in a script, some CI
# runners) inherits SIGINT *ignored*, and so would every run it starts: the Ctrl-C tests need it
# delivered as a terminal delivers it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def fake_monitor() -> EnergyMonitor:
    return EnergyMonitor([FakeMeter()])
