"""Carbon as a derived layer: kgCO2e = kWh x PUE x grid intensity.

Grid intensity comes from the suite (``carbon.grid_intensity_g_per_kwh``), else from codecarbon's
packaged, offline per-country data (``global_energy_mix.json``, by ISO 3166 alpha-3 code), else a
world-average default (codecarbon's ``carbon_intensity_per_source.json``), always labelled with
where it came from. This module must never make a network call (no electricitymaps, no IP
geolocation) and never measures anything.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any, Protocol


class CarbonSettings(Protocol):
    """What carbon needs of the suite's ``carbon`` settings (:class:`energybench.suite.schema.
    CarbonSettings`); a protocol so that the metrics import nothing else of energybench."""

    grid_intensity_g_per_kwh: float | None
    country: str | None


J_PER_KWH = 3.6e6
#: Fallback when codecarbon's data cannot be read (IEA 2019 world average, as codecarbon uses).
WORLD_AVERAGE_G_PER_KWH = 475.0


@lru_cache(maxsize=1)
def _codecarbon_json(name: str) -> dict[str, Any]:
    path = files("codecarbon") / "data" / "private_infra" / name
    return json.loads(path.read_text())


def _country_intensity(iso3: str) -> tuple[float, str] | None:
    mixes = _codecarbon_json("global_energy_mix.json")
    mix = mixes.get(iso3.upper())
    if mix is None:
        return None
    name, year = mix.get("country_name", iso3), mix.get("year", "?")
    if mix.get("carbon_intensity") is not None:
        value = float(mix["carbon_intensity"])
    else:  # codecarbon's own conversion of an energy mix into gCO2e/kWh
        from codecarbon.core.emissions import Emissions

        value = Emissions._global_energy_mix_to_emissions_rate(mix).kgs_per_kWh * 1000.0
    return value, f"codecarbon offline data for {name} ({iso3.upper()}, {year})"


def known_countries() -> list[str] | None:
    """The ISO-3 codes codecarbon's offline data has; None when the data cannot be read."""
    try:
        return sorted(_codecarbon_json("global_energy_mix.json"))
    except (OSError, ValueError, ModuleNotFoundError):
        return None


def world_average() -> tuple[float, str]:
    """World-average grid intensity in gCO2e/kWh and its label."""
    try:
        data = _codecarbon_json("carbon_intensity_per_source.json")
        value = float(data["world_average"])
        ref = data.get("world_average_source", "IEA")
    except (OSError, KeyError, ValueError, ModuleNotFoundError):
        value, ref = WORLD_AVERAGE_G_PER_KWH, "IEA Global Energy & CO2 Status Report 2019"
    return value, f"world-average default ({ref}); set carbon.country or grid_intensity_g_per_kwh"


def grid_intensity(carbon: CarbonSettings) -> tuple[float, str]:
    """Grid carbon intensity in gCO2e/kWh and a sentence saying where it comes from.

    Order: the suite value; the country (ISO-3) in codecarbon's offline data; the world average.
    """
    if carbon.grid_intensity_g_per_kwh is not None:
        value = float(carbon.grid_intensity_g_per_kwh)
        return value, "suite value (carbon.grid_intensity_g_per_kwh)"
    if carbon.country:
        try:
            hit = _country_intensity(carbon.country)
        except (OSError, ValueError, ModuleNotFoundError):
            hit = None
        if hit is not None:
            return hit
        value, label = world_average()
        return value, f"no offline data for country '{carbon.country}': {label}"
    return world_average()


def kg_co2e(energy_j: float, g_per_kwh: float, pue: float = 1.0) -> float:
    """kgCO2e of ``energy_j`` joules at ``g_per_kwh`` gCO2e/kWh and data-centre ``pue``."""
    return energy_j / J_PER_KWH * pue * g_per_kwh / 1000.0
