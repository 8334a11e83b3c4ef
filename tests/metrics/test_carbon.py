"""Carbon: arithmetic and offline grid intensities (never the network)."""

from __future__ import annotations

import json
import socket
from importlib.resources import files

import pytest

from energybench.metrics.carbon import grid_intensity, kg_co2e
from energybench.suite.schema import CarbonSettings


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network call attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_kg_co2e_arithmetic():
    assert kg_co2e(3.6e6, 500.0, 1.5) == pytest.approx(0.75)  # 1 kWh x 1.5 x 0.5 kg/kWh
    assert kg_co2e(0.0, 400.0) == 0.0
    assert kg_co2e(7.2e6, 100.0) == pytest.approx(0.2)


def test_suite_value_wins():
    g, src = grid_intensity(CarbonSettings(grid_intensity_g_per_kwh=123.0, country="FRA"))
    assert g == 123.0 and "suite" in src


def test_country_from_codecarbon_offline_data():
    data = json.loads(
        files("codecarbon").joinpath("data", "private_infra", "global_energy_mix.json").read_text()
    )
    g, src = grid_intensity(CarbonSettings(country="FRA"))
    assert g == pytest.approx(data["FRA"]["carbon_intensity"])
    assert "France" in src and "offline" in src
    g_pol, _ = grid_intensity(CarbonSettings(country="pol"))
    assert g_pol > 3 * g  # coal-heavy vs nuclear-heavy grid


def test_world_average_default_is_labelled():
    g, src = grid_intensity(CarbonSettings())
    assert g == pytest.approx(475.0) and "world-average default" in src
    g2, src2 = grid_intensity(CarbonSettings(country="XXX"))
    assert g2 == g and "XXX" in src2 and "world-average" in src2
