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


def test_country_label_names_the_country_its_code_and_the_datas_year():
    data = json.loads(
        files("codecarbon").joinpath("data", "private_infra", "global_energy_mix.json").read_text()
    )
    year = data["FRA"]["year"]
    g, src = grid_intensity(CarbonSettings(country="fra"))
    assert src == f"codecarbon offline data for France (FRA, {year})"


def test_a_countrys_own_intensity_is_used_and_missing_labels_fall_back(monkeypatch):
    from energybench.metrics import carbon

    mixes = {"ZZZ": {"carbon_intensity": 321.5}}  # no energy mix, name or year
    monkeypatch.setattr(carbon, "_codecarbon_json", lambda name: mixes)
    g, src = grid_intensity(CarbonSettings(country="zzz"))
    assert g == 321.5 and src == "codecarbon offline data for zzz (ZZZ, ?)"


def test_world_average_comes_from_codecarbons_data_with_its_source(monkeypatch):
    from energybench.metrics import carbon

    g, src = carbon.world_average()
    data = json.loads(
        files("codecarbon")
        .joinpath("data", "private_infra", "carbon_intensity_per_source.json")
        .read_text()
    )
    assert g == float(data["world_average"])
    assert src.startswith(f"world-average default ({data['world_average_source']});")
    seen = []

    def fake(name):
        seen.append(name)
        return {"world_average": 400.0}

    monkeypatch.setattr(carbon, "_codecarbon_json", fake)
    assert carbon.world_average()[0] == 400.0
    assert carbon.world_average()[1].startswith("world-average default (IEA);")
    assert seen[0] == "carbon_intensity_per_source.json"
    monkeypatch.setattr(carbon, "_codecarbon_json", lambda name: {})
    g, src = carbon.world_average()
    assert g == 475.0 and "(IEA Global Energy & CO2 Status Report 2019)" in src


def test_a_country_with_only_an_energy_mix_is_converted_with_codecarbons_factors(monkeypatch):
    from energybench.metrics import carbon

    mix = json.loads(
        files("codecarbon").joinpath("data", "private_infra", "global_energy_mix.json").read_text()
    )["FRA"]
    nuclear = {k: (0.0 if k.endswith("_TWh") else v) for k, v in mix.items()}
    del nuclear["carbon_intensity"]
    nuclear |= {"country_name": "Nukeland", "total_TWh": 100.0, "nuclear_TWh": 100.0}
    nuclear |= {"low_carbon_TWh": 100.0}
    monkeypatch.setattr(carbon, "_codecarbon_json", lambda name: {"NUK": nuclear})
    g, src = grid_intensity(CarbonSettings(country="NUK"))
    assert g == pytest.approx(29.0)  # codecarbon's factor for nuclear, gCO2e/kWh
    assert src.startswith("codecarbon offline data for Nukeland (NUK, ")


def test_the_suite_value_is_labelled_as_such():
    assert grid_intensity(CarbonSettings(grid_intensity_g_per_kwh=10.0)) == (
        10.0,
        "suite value (carbon.grid_intensity_g_per_kwh)",
    )
