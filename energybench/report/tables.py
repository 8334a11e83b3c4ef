"""Turn run-store records into tidy tables and metric inputs. Reads only; never measures.

Column names carry units (``energy_j``, ``power_w``, ``latency_p99_ms``). The same functions feed
the HTML report and the CSV export, so both always show the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from energybench.meters.carbon import kg_co2e
from energybench.metrics.fullcycle import (
    CostItem,
    EntryCost,
    break_even,
    energy_at,
    greenness,
    rank,
)
from energybench.store import RunData

EXPORT_SCHEMA_VERSION = 1


def _measurements(rec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(window label, measurement) pairs of one phase record, finest windows first."""
    phase = rec["phase"]
    out: list[tuple[str, dict[str, Any]]] = []
    if phase == "compress":
        for i, m in enumerate(rec.get("methods", [])):
            if m.get("measurement"):
                out.append((f"compress/{i}-{m['method']}", m["measurement"]))
    elif phase == "serve":
        for name, sc in rec.get("scenarios", {}).items():
            groups = sc.get("by_batch", {"": sc})
            for b, g in groups.items():
                for k, t in enumerate(g.get("trials", [])):
                    label = f"serve/{name}" + (f"/b{b}" if b else "") + f"/t{k}"
                    out.append((label, t["measurement"]))
    elif rec.get("measurement"):
        out.append((phase, rec["measurement"]))
    return out


def phase_rows(run: RunData) -> pd.DataFrame:
    """One row per entry x phase window x device, with energy and its provenance."""
    rows = []
    suite, run_id = run.suite.get("name"), run.root.name
    for entry, phases in run.phases.items():
        for phase, rec in phases.items():
            base = {
                "schema_version": EXPORT_SCHEMA_VERSION,
                "suite": suite,
                "run_id": run_id,
                "entry": entry,
                "phase": phase,
                "status": rec.get("status"),
            }
            windows = _measurements(rec)
            if not windows:
                rows.append(
                    {
                        **base,
                        "window": phase,
                        "device": None,
                        "source": None,
                        "energy_j": None,
                        "note": rec.get("reason") or rec.get("error"),
                    }
                )
            for label, m in windows:
                for d in m.get("devices", []):
                    rows.append(
                        {
                            **base,
                            "window": label,
                            "device": d["device"],
                            "device_kind": d["kind"],
                            "device_name": d["name"],
                            "source": d["source"],
                            "is_estimate": d["source"] == "estimate",
                            "energy_j": d["energy_j"],
                            "uncertainty_j": d.get("uncertainty_j"),
                            "static_j": d.get("static_j"),
                            "dynamic_j": d.get("dynamic_j"),
                            "mean_power_w": d.get("mean_power_w"),
                            "peak_power_w": d.get("peak_power_w"),
                            "start_unix_s": m.get("start_unix_s"),
                            "duration_s": m["duration_s"],
                            "samples": d.get("samples"),
                            "complete": d.get("complete"),
                            "flags": ";".join(m.get("flags", [])),
                            "note": "; ".join(d.get("issues", [])),
                        }
                    )
    return pd.DataFrame(rows)


def _phase_items(
    run: RunData, entry: str, shared: bool, seen: set[tuple[str, str]], relation: str
) -> list[CostItem]:
    """Cost items paid by ``entry`` and, recursively, by what it inherits or uses."""
    spec = next((e for e in run.suite.get("entries", []) if e["name"] == entry), None)
    if spec is None:
        return []
    items: list[CostItem] = []
    recs = run.phases.get(entry, {})
    for phase in ("train", "compress"):
        rec = recs.get(phase)
        if (entry, phase) in seen or rec is None or rec.get("status") != "done":
            continue
        seen.add((entry, phase))
        m = rec.get("measurement") or {}
        items.append(
            CostItem(
                label=f"{phase} of {entry}" + (f" ({relation})" if shared else ""),
                phase=phase if not shared else "upstream",
                origin=entry,
                energy_j=m.get("energy_j"),
                uncertainty_j=m.get("uncertainty_j"),
                source="+".join(m.get("sources", [])) or "none",
                is_estimate=bool(m.get("is_estimate")),
                shared=shared,
            )
        )
    if spec.get("inherit"):
        items += _phase_items(run, spec["inherit"], True, seen, f"inherited by {entry}")
    for u in spec.get("uses", []):
        items += _phase_items(run, u, True, seen, f"used by {entry}")
    return items


def iec_scenario(run: RunData, entry: str) -> str | None:
    """The serving scenario whose J/item is this entry's IEC."""
    chosen = run.suite.get("metric", {}).get("iec_scenario")
    scen = run.phases.get(entry, {}).get("serve", {}).get("scenarios", {})
    if chosen and chosen in scen:
        return chosen
    return next(iter(scen), None)


def entry_costs(run: RunData) -> list[EntryCost]:
    """Metric inputs per entry: itemised TEC, IEC with CI, quality."""
    quality_key = run.suite.get("metric", {}).get("quality", "ssim")
    out = []
    for spec in run.suite.get("entries", []):
        name = spec["name"]
        recs = run.phases.get(name, {})
        items = _phase_items(run, name, False, set(), "")
        sc_name = iec_scenario(run, name)
        sc = recs.get("serve", {}).get("scenarios", {}).get(sc_name, {}) if sc_name else {}
        jpi = sc.get("energy_per_item_j") or {}
        quality = (recs.get("evaluate") or {}).get("quality", {}).get(quality_key)
        out.append(
            EntryCost(
                name=name,
                items=items,
                iec_j=jpi.get("mean"),
                iec_ci_j=_energy_ci(jpi),
                iec_scenario=sc_name,
                quality=quality,
                is_estimate=bool(sc.get("is_estimate")) or any(i.is_estimate for i in items),
            )
        )
    return out


def _energy_ci(stats: dict[str, Any]) -> tuple[float, float] | None:
    """95 % CI of a J/item statistic, clipped at 0 J (a t-interval of few trials can go < 0)."""
    lo, hi = stats.get("ci_low"), stats.get("ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return max(float(lo), 0.0), max(float(hi), 0.0)


def _stat(sc: dict[str, Any], key: str, field: str) -> float | None:
    v = (sc.get(key) or {}).get(field)
    return v if v is None or v == v else None


def leaderboard(run: RunData) -> pd.DataFrame:
    """One row per entry: quality, size, TEC, IEC, latency, FPS, E and G per MUI, score, rank."""
    metric = run.suite.get("metric", {})
    tau = metric.get("tau", 1.0)
    intensities = usage_intensities(run)
    allow = run.suite.get("energy", {}).get("allow_estimates_in_ranking", False)
    costs = entry_costs(run)
    factors = carbon_factors(run)
    ranked = {
        r.name: r for r in rank(costs, intensities=intensities, tau=tau, allow_estimates=allow)
    }
    by_mui = {
        mui: {r.name: r.rank for r in rank(costs, mui=mui, tau=tau, allow_estimates=allow)}
        for mui, _w in intensities
    }
    rows = []
    for c in costs:
        recs = run.phases.get(c.name, {})
        serve = recs.get("serve", {})
        sc = serve.get("scenarios", {}).get(c.iec_scenario, {}) if c.iec_scenario else {}
        ev = (recs.get("evaluate") or {}).get("quality", {})
        model = serve.get("model", {})
        row: dict[str, Any] = {
            "entry": c.name,
            "status": _status(recs),
            "quality": c.quality,
            "psnr_db": ev.get("psnr_db"),
            "ssim": ev.get("ssim"),
            "params": model.get("params"),
            "flops_per_item": model.get("flops_per_item"),
            "size_bytes": model.get("size_bytes"),
            "tec_j": c.tec_j if c.items else 0.0,
            "tec_uncertainty_j": c.tec_uncertainty_j,
            "shared_j": c.shared_j if c.items else 0.0,
            "iec_j": c.iec_j,
            "iec_ci_low_j": c.iec_ci_j[0] if c.iec_ci_j else None,
            "iec_ci_high_j": c.iec_ci_j[1] if c.iec_ci_j else None,
            "iec_scenario": c.iec_scenario,
            "latency_p50_ms": _stat(sc, "latency_ms", "p50"),
            "latency_p99_ms": _stat(sc, "latency_ms", "p99"),
            "items_per_s": _stat(sc, "items_per_s", "mean"),
            "fps_achieved": _stat(sc, "fps_achieved", "mean"),
            "fps": _stat(sc, "fps_achieved", "mean") or _stat(sc, "items_per_s", "mean"),
            "deadline_miss_rate": sc.get("deadline_miss_rate"),
            "is_estimate": c.is_estimate,
            "tec_is_estimate": any(i.is_estimate for i in c.items),
            "iec_is_estimate": bool(sc.get("is_estimate")),
            "sources": ";".join(sorted({i.source for i in c.items} | set(sc.get("sources", [])))),
        }
        for mui, _w in intensities:
            try:
                e: float | None = energy_at(c, mui)
            except ValueError:
                e = None
            row[f"energy_j@{mui:g}"] = e
            row[f"carbon_kgco2e@{mui:g}"] = (
                None
                if e is None
                else kg_co2e(e, factors["grid_intensity_g_per_kwh"], factors["pue"])
            )
            row[f"g@{mui:g}"] = greenness(c, mui, tau) if c.iec_j is not None else None
            row[f"rank@{mui:g}"] = by_mui[mui].get(c.name)
        r = ranked.get(c.name)
        row["score"] = r.value if r else None
        row["rank"] = r.rank if r else None
        row["rank_note"] = r.reason if r else None
        rows.append(row)
    return pd.DataFrame(rows)


def _status(recs: dict[str, dict[str, Any]]) -> str:
    states = [
        recs.get(p, {}).get("status", "missing") for p in ("train", "compress", "serve", "evaluate")
    ]
    if "failed" in states:
        return "failed"
    if "missing" in states:
        return "incomplete"
    return "done"


def break_even_rows(run: RunData) -> pd.DataFrame:
    """Break-even MUI of each compressed/inheriting variant vs its base, and suite pairs."""
    costs = {c.name: c for c in entry_costs(run)}
    pairs = [(e["name"], e["inherit"]) for e in run.suite.get("entries", []) if e.get("inherit")]
    pairs += [tuple(p) for p in run.suite.get("metric", {}).get("pairs", [])]
    seen: set[frozenset[str]] = set()
    rows = []
    for a, b in pairs:
        if frozenset((a, b)) in seen:  # a suite pair that repeats an inherit pair
            continue
        seen.add(frozenset((a, b)))
        if a in costs and b in costs:
            try:
                be = break_even(costs[a], costs[b])
            except ValueError as exc:
                rows.append({"entry": a, "other": b, "kind": "undefined", "note": str(exc)})
                continue
            d = be.to_dict()
            rows.append(
                {
                    "entry": a,
                    "other": b,
                    "kind": d["kind"],
                    "mui": d["mui"],
                    "mui_lo": d["lo"],
                    "mui_hi": d["hi"],
                    "cheaper_above": d["cheaper_above"],
                    "note": d["note"],
                }
            )
    return pd.DataFrame(rows)


def usage_intensities(run: RunData) -> list[tuple[float, float]]:
    """The suite's (MUI, weight) pairs."""
    return [
        (u["mui"], u["weight"]) for u in run.suite.get("metric", {}).get("usage_intensities", [])
    ]


def carbon_factors(run: RunData) -> dict[str, Any]:
    """Grid intensity (gCO2e/kWh) and PUE of the run, each with where it comes from."""
    from energybench.meters.carbon import grid_intensity
    from energybench.suite.schema import CarbonSettings

    raw = run.suite.get("carbon") or {}
    try:
        settings = CarbonSettings(**raw)
    except ValueError:
        settings = CarbonSettings()
    g, source = grid_intensity(settings)
    pue_source = "suite value (carbon.pue)" if "pue" in raw else "default (no data centre overhead)"
    return {
        "grid_intensity_g_per_kwh": g,
        "grid_source": source,
        "pue": settings.pue,
        "pue_source": pue_source,
    }


def scenario_rows(run: RunData) -> pd.DataFrame:
    """One row per entry x serving scenario x batch size: latency, throughput, J/item with CI."""
    rows = []
    for entry, phases in run.phases.items():
        for name, sc in (phases.get("serve") or {}).get("scenarios", {}).items():
            groups = sc.get("by_batch") or {"": sc}
            for b, g in groups.items():
                rows.append(_scenario_row(entry, name, sc, b, g))
    return pd.DataFrame(rows)


def _scenario_row(
    entry: str, name: str, sc: dict[str, Any], batch: str, g: dict[str, Any]
) -> dict[str, Any]:
    jpi = g.get("energy_per_item_j") or {}
    ci = _energy_ci(jpi)
    row: dict[str, Any] = {
        "entry": entry,
        "scenario": name,
        "scenario_kind": sc.get("scenario"),
        "batch_size": int(batch) if str(batch).isdigit() else None,
        "unit": g.get("unit") or sc.get("unit"),
        "trials": len(g.get("trials", [])),
        "energy_per_item_j": jpi.get("mean"),
        "energy_per_item_ci_low_j": ci[0] if ci else None,
        "energy_per_item_ci_high_j": ci[1] if ci else None,
        "items_per_s": _stat(g, "items_per_s", "mean"),
        "fps_achieved": _stat(g, "fps_achieved", "mean") or _stat(sc, "fps_achieved", "mean"),
        "target_fps": sc.get("target_fps"),
        "deadline_miss_rate": sc.get("deadline_miss_rate"),
        "is_estimate": bool(g.get("is_estimate", sc.get("is_estimate"))),
        "sources": ";".join(g.get("sources", sc.get("sources", []))),
        "flags": ";".join(g.get("flags", sc.get("flags", []))),
    }
    for f in ("mean", "min", "p50", "p90", "p99", "max"):
        row[f"latency_{f}_ms"] = _stat(g, "latency_ms", f)
    row["latency_n"] = (g.get("latency_ms") or {}).get("n")
    return row


def metric_rows(run: RunData) -> pd.DataFrame:
    """One row per entry x usage intensity: E (J), G, carbon (kgCO2e), rank by G at that MUI."""
    metric = run.suite.get("metric", {})
    tau = metric.get("tau", 1.0)
    allow = run.suite.get("energy", {}).get("allow_estimates_in_ranking", False)
    factors = carbon_factors(run)
    costs = entry_costs(run)
    rows = []
    for mui, weight in usage_intensities(run):
        for r in rank(costs, mui=mui, tau=tau, allow_estimates=allow):
            e = r.energy_j
            rows.append(
                {
                    "entry": r.name,
                    "mui": mui,
                    "weight": weight,
                    "energy_j": e,
                    "g": r.value,
                    "carbon_kgco2e": None
                    if e is None
                    else kg_co2e(e, factors["grid_intensity_g_per_kwh"], factors["pue"]),
                    "grid_intensity_g_per_kwh": factors["grid_intensity_g_per_kwh"],
                    "pue": factors["pue"],
                    "rank": r.rank,
                    "rank_note": r.reason,
                    "is_estimate": r.is_estimate,
                }
            )
    return pd.DataFrame(rows)
