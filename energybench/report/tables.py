"""Turn run-store records into tidy tables and metric inputs. Reads only; never measures.

Column names carry units (``energy_j``, ``power_w``, ``latency_p99_ms``). The same functions feed
the HTML report and the CSV export, so both always show the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from energybench.meters.base import KIND_LABELS
from energybench.meters.plugins import is_estimated_source
from energybench.metrics.carbon import kg_co2e
from energybench.metrics.fullcycle import (
    CostItem,
    EntryCost,
    RankRow,
    break_even,
    energy_at,
    greenness,
    rank,
)
from energybench.records.phases import (
    PHASES,
    BackendExport,
    EntryPhases,
    PhaseRecord,
    ServeRecord,
)
from energybench.records.store import RunData
from energybench.records.types import (
    AdaptiveResult,
    EnergyStat,
    Group,
    LoadResult,
    StreamResult,
    Window,
)
from energybench.suite.devices import device_kind, mixed_devices
from energybench.suite.ranking import IecChoice, IecReference, iec_choices, iec_reference
from energybench.suite.scenarios import Adaptive
from energybench.suite.schema import BackendSpec, Entry

EXPORT_SCHEMA_VERSION = 3  # 2: the outputs table; 3: rank intervals, tie groups, energy basis
NOT_RANKED = "not ranked (rank: false in the suite)"
_NO_WINDOW = Window(duration_s=0.0, devices=[])  # a finished phase that recorded no window


def _measurements(run: RunData, entry: str, rec: PhaseRecord) -> list[tuple[str, Window]]:
    """(window label, measurement) pairs of one phase record, finest windows first."""
    out = rec.windows()
    if isinstance(rec, ServeRecord):
        for name, sc in run.results(entry).items():
            for b, g in sc.groups().items():
                for k, t in enumerate(g.trials):
                    label = f"serve/{name}" + (f"/b{b}" if b else "") + f"/t{k}"
                    out.append((label, t.measurement))
    return out


def phase_rows(run: RunData) -> pd.DataFrame:
    """One row per entry x phase window x device, with energy and its provenance."""
    rows = []
    suite, run_id = run.suite.name, run.root.name
    for entry, phases in run.phases.items():
        for phase, rec in phases.items():
            base = {
                "schema_version": EXPORT_SCHEMA_VERSION,
                "suite": suite,
                "run_id": run_id,
                "entry": entry,
                "phase": phase,
                "status": rec.status,
            }
            windows = _measurements(run, entry, rec)
            if not windows:
                rows.append(
                    {
                        **base,
                        "window": phase,
                        "device": None,
                        "source": None,
                        "energy_j": None,
                        "note": rec.reason or rec.error,
                    }
                )
            for label, m in windows:
                for d in m.devices:
                    rows.append(
                        {
                            **base,
                            "window": label,
                            "device": d.device,
                            "device_kind": d.kind,
                            "device_name": d.name,
                            "source": d.source,
                            "is_estimate": d.is_estimate,
                            "charged": d.charged,
                            "is_shared": d.shared,
                            "is_simulated": d.simulated,
                            "energy_j": d.energy_j,
                            "uncertainty_j": d.uncertainty_j,
                            "static_j": d.static_j,
                            "dynamic_j": d.dynamic_j,
                            "mean_power_w": d.mean_power_w,
                            "peak_power_w": d.peak_power_w,
                            "start_unix_s": m.start_unix_s,
                            "duration_s": m.duration_s,
                            "samples": d.samples,
                            "complete": d.complete,
                            "flags": ";".join(m.flags),
                            "note": "; ".join(d.issues),
                        }
                    )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class WindowEnergy:
    """The energy of one window on the ranking basis, with what it covers (J).

    ``gap``: why ``energy_j`` is None although the window was measured (a charged device on the
    basis had no figure or an incomplete one); ``devices``: the charged devices on the basis,
    as ``id@source``."""

    energy_j: float | None
    uncertainty_j: float | None
    is_estimate: bool
    measured_kinds: tuple[str, ...]
    estimated_kinds: tuple[str, ...]
    estimated_j: float | None  # the estimate kept beside a measured-only figure
    is_shared: bool
    sources: tuple[str, ...]
    gap: str | None = None
    devices: tuple[str, ...] = ()


def window_energy(m: Window, allow_estimates: bool) -> WindowEnergy:
    """A stored measurement's energy on the ranking basis.

    With ``allow_estimates`` every charged device counts and any estimated joule makes the figure
    an estimate. Without, only devices read by a meter count (the estimate is kept beside, never
    summed in); a window where no meter covers a charged device falls back to its estimate,
    marked as such. A charged device on the basis with no figure, or an incomplete one, leaves
    the window without energy (``gap`` says why): a partial sum is never reported as whole.
    """
    has_meter = any(not d.is_estimate for d in m.charged)
    measured_only = not allow_estimates and has_meter
    basis: bool | None = False if measured_only else None
    gaps = m.gaps(basis)
    chosen = [d for d in m.charged if basis is None or d.is_estimate == basis]
    common: dict[str, Any] = {
        "measured_kinds": tuple(m.measured_kinds),
        "estimated_kinds": tuple(m.estimated_kinds),
        "is_shared": m.is_shared,
        "gap": "; ".join(gaps) or None,
        "devices": tuple(sorted({f"{d.device}@{d.source}" for d in chosen})),
    }
    if not measured_only:
        return WindowEnergy(
            m.energy_j,
            m.uncertainty_j,
            m.is_estimate,
            estimated_j=None,
            sources=tuple(m.sources),
            **common,
        )
    sources = sorted({str(d.source) for d in chosen})
    return WindowEnergy(
        m.measured_energy_j,
        m.measured_uncertainty_j,
        False,
        estimated_j=m.estimated_energy_j,
        sources=tuple(sources),
        **common,
    )


def _export_item(
    entry: str, recs: EntryPhases, measurement: Window, allow: bool
) -> tuple[CostItem, WindowEnergy]:
    """The cost item of ``entry``'s serving backend's one-off export/compile."""
    w = window_energy(measurement, allow)
    backend = recs.serve.backend if recs.serve else None
    name = (backend.name if backend else None) or "?"
    item = CostItem(
        label=f"{name} export of {entry}",
        phase="export",
        origin=entry,
        energy_j=w.energy_j,
        uncertainty_j=w.uncertainty_j,
        source="+".join(w.sources) or "none",
        is_estimate=w.is_estimate,
        gap=w.gap,
    )
    return item, w


def _phase_items(
    run: RunData, entry: str, shared: bool, seen: set[tuple[str, str]], relation: str
) -> list[tuple[CostItem, WindowEnergy]]:
    """Cost items paid by ``entry`` and, recursively, by what it inherits, uses or switches
    among (an adaptive scenario's variants), those counted as shared."""
    spec = next((e for e in run.suite.entries if e.name == entry), None)
    if spec is None:
        return []
    allow = run.suite.energy.allow_estimates_in_ranking
    items: list[tuple[CostItem, WindowEnergy]] = []
    recs = run.entry(entry)
    for phase in ("train", "compress"):
        rec = recs.record(phase)
        if (entry, phase) in seen or (rec is not None and rec.status == "skipped"):
            continue
        seen.add((entry, phase))
        if rec is None or not rec.done:  # a cost that was never measured is not 0 J
            why = "not run (no record)" if rec is None else f"{rec.status}"
            why += f": {rec.reason or rec.error}" if rec and (rec.reason or rec.error) else ""
            label = f"{phase} of {entry}" + (f" ({relation})" if shared else "")
            gap = CostItem(label, phase if not shared else "upstream", entry, None, gap=why)
            items.append((gap, window_energy(_NO_WINDOW, allow)))
            continue
        w = window_energy(rec.measurement or _NO_WINDOW, allow)
        item = CostItem(
            label=f"{phase} of {entry}" + (f" ({relation})" if shared else ""),
            phase=phase if not shared else "upstream",
            origin=entry,
            energy_j=w.energy_j,
            uncertainty_j=w.uncertainty_j,
            source="+".join(w.sources) or "none",
            is_estimate=w.is_estimate,
            shared=shared,
            gap=w.gap,
        )
        items.append((item, w))
    items += _upstream_items(entry, spec, shared, seen, relation)
    export = backend_export(recs.serve)
    if not shared and export and export.measurement and (entry, "export") not in seen:
        seen.add((entry, "export"))  # the serving backend's one-off export/compile
        items.append(_export_item(entry, recs, export.measurement, allow))
    if spec.inherit:
        items += _phase_items(run, spec.inherit, True, seen, f"inherited by {entry}")
    for u in spec.uses:
        items += _phase_items(run, u, True, seen, f"used by {entry}")
    for v in adaptive_variants(spec):  # models an adaptive scenario switches among
        items += _phase_items(run, v, True, seen, f"served by {entry}'s adaptive scenario")
    return items


def _upstream_items(
    entry: str, spec: Entry, shared: bool, seen: set[tuple[str, str]], relation: str
) -> list[tuple[CostItem, WindowEnergy]]:
    """The declared energy that produced an entry's pretrained weights (``model.weights``):
    a cost paid before this suite, counted in TEC as declared (an estimate to this run, never a
    measurement). An "unknown" figure adds nothing; the TEC table says so."""
    weights = spec.model.weights
    energy = weights.upstream_energy_j if weights is not None else None
    if not isinstance(energy, int | float) or weights is None or (entry, "upstream") in seen:
        return []
    seen.add((entry, "upstream"))
    source = weights.upstream_source or "no source given"
    item = CostItem(
        label=f"upstream training of {entry}'s weights (declared: {source})"
        + (f" ({relation})" if shared else ""),
        phase="upstream",
        origin=entry,
        energy_j=float(energy),
        uncertainty_j=None,
        source="declared",
        is_estimate=True,
        shared=shared,
    )
    w = WindowEnergy(
        energy_j=float(energy),
        uncertainty_j=None,
        is_estimate=True,
        measured_kinds=(),
        estimated_kinds=("upstream",),
        estimated_j=float(energy),
        is_shared=False,
        sources=("declared",),
    )
    return [(item, w)]


def _upstream_unknown(spec: Entry) -> str:
    """The scope's note for pretrained weights whose upstream training cost is "unknown": TEC
    covers this suite's phases only, which the tables must say (it is no 0 J)."""
    weights = spec.model.weights
    if weights is None or weights.upstream_energy_j != "unknown":
        return ""
    return "; TEC excludes the pretrained weights' upstream training (unknown)"


def adaptive_variants(spec: Entry) -> list[str]:
    """Entries whose models an entry's adaptive scenarios switch among (suite spec order)."""
    names = [v for sc in spec.serve if isinstance(sc, Adaptive) for v in sc.variants]
    return list(dict.fromkeys(names))


def backend_export(serve: ServeRecord | None) -> BackendExport | None:
    """The serving backend's one-off step (export, compile) of a finished serve record."""
    return serve.backend_export() if serve is not None else None


def backend_name(run: RunData, entry: str) -> str:
    """The backend an entry is served on (its serve record's, else its suite spec's), with its
    variant: ``onnxruntime``, ``onnxruntime+int8``, ``eager+channels_last``, ..."""
    serve = run.entry(entry).serve
    rec = serve.backend if serve is not None else None
    spec = next((e for e in run.suite.entries if e.name == entry), None)
    settings = _backend_spec(rec.settings if rec else None) or (spec.backend if spec else None)
    if settings is None:
        return (rec.name if rec else None) or "eager"
    name = (rec.name if rec else None) or settings.name
    if settings.quantize != "none":
        name += f"+{settings.quantize}"
    if settings.dtype != "fp32":
        name += f"+{settings.dtype}"
    if settings.channels_last:
        name += "+channels_last"
    return name


def _backend_spec(stored: dict[str, Any] | None) -> BackendSpec | None:
    """The backend settings a serve record stored (``BackendSpec.model_dump``), typed; None
    when there are none."""
    return BackendSpec.model_validate(stored) if stored else None


def iec_group(run: RunData, entry: str, choice: IecChoice | None = None) -> Group | None:
    """The stored statistics (one batch size of one scenario) behind this entry's IEC
    (``choice``: the entry's :class:`IecChoice`, when the caller already has it)."""
    choice = choice or iec_choices(run.suite)[entry]
    if choice.scenario is None:
        return None
    sc = run.result(entry, choice.scenario)
    return sc.group(choice.batch_size) if sc is not None else None


@dataclass(frozen=True)
class IecFigure:
    """IEC on the ranking basis: J/item with its 95 % CIs (combined, trial spread only).

    ``basis``: "measured" or "all" (``trials.ranking_basis``); ``trials_without_energy``: trials
    left out because their window had a gap on that basis (``gap`` says why, when every trial
    was); ``devices``: the charged devices on the basis (``id@source``)."""

    mean_j: float | None
    ci_j: tuple[float, float] | None
    stat_ci_j: tuple[float, float] | None
    is_estimate: bool
    estimated_j: float | None
    is_shared: bool
    measured_kinds: tuple[str, ...]
    estimated_kinds: tuple[str, ...]
    sources: tuple[str, ...]
    basis: str | None = None
    trials_without_energy: int = 0
    gap: str | None = None
    devices: tuple[str, ...] = ()


def iec_figure(g: Group | None, allow_estimates: bool) -> IecFigure:
    """IEC from a scenario group, on the basis the run judged its precision on (stored in the
    group; older runs: measured devices only unless estimates are allowed or none was measured)."""
    if g is None:
        return IecFigure(None, None, None, False, None, False, (), (), ())
    measured = g.measured_energy_per_item_j
    estimated = g.estimated_energy_per_item_j
    basis = g.basis or ("all" if allow_estimates or measured is None else "measured")
    stats: EnergyStat | None
    if basis == "all":
        stats, est, beside = g.energy_per_item_j, g.is_estimate, None
        sources = tuple(g.sources)
    else:
        stats, est, beside = measured, False, estimated.mean if estimated else None
        sources = tuple(s for s in g.sources if not is_estimated_source(s))
    windows = [window_energy(t.measurement, basis == "all") for t in g.trials]
    gaps = sorted({w.gap for w in windows if w.gap})
    lost = g.trials_without_energy
    gap = None
    if stats is None or stats.mean is None:
        if gaps:
            gap = f"{lost} of {g.trials_total} trial(s) without a whole figure: " + "; ".join(gaps)
    return IecFigure(
        mean_j=stats.mean if stats else None,
        ci_j=_energy_ci(stats.ci_low, stats.ci_high) if stats else None,
        stat_ci_j=_energy_ci(stats.stat_ci_low, stats.stat_ci_high) if stats else None,
        is_estimate=est,
        estimated_j=beside,
        is_shared=g.is_shared,
        measured_kinds=tuple(g.measured_kinds),
        estimated_kinds=tuple(g.estimated_kinds),
        sources=sources,
        basis=basis,
        trials_without_energy=lost,
        gap=gap,
        devices=tuple(sorted({d for w in windows for d in w.devices})),
    )


def energy_scope(measured: set[str], estimated: set[str], allow_estimates: bool) -> str:
    """What an entry's ranked energy covers, in words ("GPU only; CPU/RAM not measured")."""

    def names(kinds: set[str]) -> str:
        return "/".join(KIND_LABELS.get(k, k) for k in sorted(kinds))  # a plain map

    if not measured and not estimated:
        return "nothing measured"
    if not measured:
        return f"{names(estimated)} estimated only"
    if allow_estimates and estimated:
        return f"{names(measured)} measured + {names(estimated)} estimated"
    missing = estimated - measured
    if missing:
        return f"{names(measured)} only; {names(missing)} not measured (estimate shown beside)"
    return f"{names(measured)} measured"


@dataclass
class EntryFigures:
    """Metric inputs of one entry plus how they were obtained (for tables and the report)."""

    cost: EntryCost
    iec: IecFigure
    tec_estimated_j: float | None
    is_simulated: bool


def entry_figures(run: RunData) -> list[EntryFigures]:
    """Per entry: itemised TEC, IEC with CIs and quality, on the ranking basis."""
    quality_key = run.suite.metric.quality
    allow = run.suite.energy.allow_estimates_in_ranking
    choices = iec_choices(run.suite)
    out = []
    for spec in run.suite.entries:
        name = spec.name
        recs = run.entry(name)
        pairs = _phase_items(run, name, False, set(), "")
        items = [i for i, _ in pairs]
        choice = choices[name]
        g = iec_group(run, name, choice)
        iec = iec_figure(g, allow)
        measured = {k for _, w in pairs for k in w.measured_kinds} | set(iec.measured_kinds)
        estimated = {k for _, w in pairs for k in w.estimated_kinds} | set(iec.estimated_kinds)
        beside = [w.estimated_j for _, w in pairs if w.estimated_j is not None]
        quality = recs.evaluate.score(quality_key) if recs.evaluate else None
        cost = EntryCost(
            name=name,
            items=items,
            iec_j=iec.mean_j,
            iec_ci_j=iec.ci_j,
            iec_scenario=choice.scenario,
            quality=quality,
            is_estimate=iec.is_estimate or any(i.is_estimate for i in items),
            iec_stat_ci_j=iec.stat_ci_j,
            is_shared=iec.is_shared or any(w.is_shared for _, w in pairs),
            unranked_reason=choice.reason if spec.rank else NOT_RANKED,
            scope=energy_scope(measured, estimated, allow) + _upstream_unknown(spec),
            iec_gap=iec.gap,
            devices=tuple(
                sorted({d for i, w in pairs if not i.shared for d in w.devices} | set(iec.devices))
            ),
        )
        out.append(
            EntryFigures(
                cost=cost,
                iec=iec,
                tec_estimated_j=sum(beside) if beside else None,
                is_simulated=_simulated(run, name),
            )
        )
    return out


def _simulated(run: RunData, entry: str) -> bool:
    return any(
        m.is_simulated or "simulated" in m.flags
        for _, rec in run.entry(entry).items()
        for _, m in _measurements(run, entry, rec)
    )


def entry_costs(run: RunData) -> list[EntryCost]:
    """Metric inputs per entry: itemised TEC, IEC with CI, quality (see :func:`entry_figures`)."""
    return [f.cost for f in entry_figures(run)]


def _energy_ci(lo: float | None, hi: float | None) -> tuple[float, float] | None:
    """95 % CI of a J/item statistic, clipped at 0 J (a t-interval of few trials can go < 0)."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return max(float(lo), 0.0), max(float(hi), 0.0)


def _stat(v: float | None) -> float | None:
    """A stored statistic, None for a missing or NaN one."""
    return v if v is None or v == v else None


def _rank_kw(run: RunData) -> dict[str, Any]:
    return {
        "tau": run.suite.metric.tau,
        "allow_estimates": run.suite.energy.allow_estimates_in_ranking,
        "allow_shared": run.suite.energy.allow_shared_devices,
    }


def leaderboard(run: RunData) -> pd.DataFrame:
    """One row per entry: quality, size, TEC, IEC, latency, FPS, E and G per MUI, score, rank.

    TEC and IEC are on the ranking basis: measured devices only unless the suite allows
    estimates in ranking (``energy_scope`` says what they cover; ``tec_estimated_j`` and
    ``iec_estimated_j`` give the CPU/RAM estimate beside, never summed in).
    """
    kw = _rank_kw(run)
    tau = kw["tau"]
    intensities = usage_intensities(run)
    figures = entry_figures(run)
    choices = iec_choices(run.suite)
    costs = [f.cost for f in figures]
    factors = carbon_factors(run)
    ranked = {r.name: r for r in rank(costs, intensities=intensities, **kw)}
    by_mui = {mui: {r.name: r for r in rank(costs, mui=mui, **kw)} for mui, _w in intensities}
    ref = iec_reference(run.suite)
    mixed = mixed_devices([f.cost.name for f in figures], device_kinds(run))
    rows = []
    for f in figures:
        c = f.cost
        row = _entry_columns(run, f, choices[c.name], ref)
        for mui, _w in intensities:
            row |= _mui_columns(c, mui, tau, factors, by_mui[mui][c.name])
        row["placement"] = run.info.placement(c.name)
        row["is_mixed_devices"] = mixed
        r = ranked[c.name]
        row |= {"score": r.value, "score_lo": r.value_lo, "score_hi": r.value_hi}
        row |= {"rank": r.rank, "rank_lo": r.rank_lo, "rank_hi": r.rank_hi}
        row |= {"tie_group": r.tie_group, "rank_note": r.reason}
        rows.append(row)
    return pd.DataFrame(rows)


def _entry_columns(
    run: RunData, f: EntryFigures, choice: IecChoice, ref: IecReference | None
) -> dict[str, Any]:
    """The leaderboard columns of one entry that do not depend on the MUI or the rank:
    backend, status, quality, model size, TEC, IEC and their basis, latency, rates, flags."""
    c = f.cost
    recs = run.entry(c.name)
    sc = run.result(c.name, c.iec_scenario) if c.iec_scenario else None
    g = iec_group(run, c.name, choice)
    lat, rate = (g.latency_ms, g.items_per_s) if g else (None, None)
    fps = sc.fps_achieved if isinstance(sc, StreamResult | AdaptiveResult) else None
    ev = recs.evaluate
    model = recs.serve.model if recs.serve else None
    export = backend_export(recs.serve)
    parity = export.parity if export else None
    return {
        "entry": c.name,
        "backend": backend_name(run, c.name),
        "backend_max_abs_diff": parity.max_abs_diff if parity else None,
        "status": _status(recs),
        "quality": c.quality,
        "psnr_db": ev.score("psnr_db") if ev else None,
        "ssim": ev.score("ssim") if ev else None,
        "params": model.params if model else None,
        "flops_per_item": model.flops_per_item if model else None,
        "size_bytes": model.size_bytes if model else None,
        "tec_j": tec_shown(c, _status(recs)),
        "tec_uncertainty_j": c.tec_uncertainty_j,
        "shared_j": c.shared_j if c.items else 0.0,
        "iec_j": c.iec_j,
        "iec_ci_low_j": c.iec_ci_j[0] if c.iec_ci_j else None,
        "iec_ci_high_j": c.iec_ci_j[1] if c.iec_ci_j else None,
        "iec_scenario": c.iec_scenario,
        "iec_batch_size": choice.batch_size,
        "iec_basis": ref.basis_label() if ref else None,
        "energy_basis": f.iec.basis,
        "trials_without_energy": f.iec.trials_without_energy,
        "energy_gaps": "; ".join(c.gaps) or None,
        "energy_scope": c.scope,
        "tec_estimated_j": f.tec_estimated_j,
        "iec_estimated_j": f.iec.estimated_j,
        "latency_p50_ms": _stat(lat.p50 if lat else None),
        "latency_p99_ms": _stat(lat.p99 if lat else None),
        "items_per_s": _stat(rate.mean if rate else None),
        "fps_achieved": _stat(fps.mean if fps else None),
        "fps": _stat(fps.mean if fps else None) or _stat(rate.mean if rate else None),
        "deadline_miss_rate": sc.deadline_miss_rate
        if isinstance(sc, StreamResult | LoadResult | AdaptiveResult)
        else None,
        "is_estimate": c.has_estimates,
        "tec_is_estimate": any(i.is_estimate for i in c.items),
        "iec_is_estimate": f.iec.is_estimate,
        "is_shared": c.is_shared,
        "is_simulated": f.is_simulated,
        "sources": ";".join(sorted({i.source for i in c.items} | set(f.iec.sources))),
    }


def _mui_columns(
    c: EntryCost, mui: float, tau: float, factors: dict[str, Any], at: RankRow
) -> dict[str, Any]:
    """The leaderboard's columns at ``mui`` items: energy, carbon, G and the rank ``at`` it
    (``rank`` returns every entry, ranked or not)."""
    try:
        e: float | None = energy_at(c, mui)
    except ValueError:
        e = None
    carbon = None if e is None else kg_co2e(e, factors["grid_intensity_g_per_kwh"], factors["pue"])
    return {
        f"energy_j@{mui:g}": e,
        f"carbon_kgco2e@{mui:g}": carbon,
        f"g@{mui:g}": greenness(c, mui, tau) if c.iec_j is not None else None,
        f"rank@{mui:g}": at.rank,
        f"rank_lo@{mui:g}": at.rank_lo,
        f"rank_hi@{mui:g}": at.rank_hi,
        f"tie_group@{mui:g}": at.tie_group,
    }


def tec_shown(c: EntryCost, status: str) -> float | None:
    """The TEC a table shows (J): None (printed "–", an empty CSV cell) for an entry that did
    not finish and paid nothing yet, never a 0 J that reads as free; 0 J for a finished entry
    with nothing to pay (no training, no compression)."""
    tec = c.tec_j if c.items else 0.0
    unpaid = tec == 0 and not c.tec_uncertainty_j
    return None if status != "done" and unpaid else tec


def device_kinds(run: RunData) -> dict[str, str]:
    """entry -> ``cpu`` or ``cuda`` (simulated GPUs count as GPUs), from the manifest's
    placements (older runs without them: empty, nothing marked)."""
    return {k: device_kind(v) for k, v in run.info.placements.items()}


def _mixed_note(note: str | None, a: str, b: str, kinds: dict[str, str]) -> str:
    """The break-even note of a pair on different kinds of device, saying so."""
    text = (
        f"mixed devices: {a} on {kinds[a].upper()}, {b} on {kinds[b].upper()} (a CPU entry is "
        "charged for no GPU; its idle GPUs are recorded, not counted)"
    )
    return f"{text}; {note}" if note else text


#: How ranks and ties are decided, in one sentence (terminal, report and exports say it).
TIE_METHOD = (
    "a rank range (lo–hi) means the entries' score intervals (TEC ± 2σ, IEC 95 % CI) overlap: "
    "their order is not settled by the measurement"
)


def rank_label(rank_: Any, lo: Any = None, hi: Any = None) -> str:
    """A rank for display: "2", or "2 (1–3)" when the intervals allow ranks 1 to 3; "–" when
    unranked."""
    if rank_ is None or pd.isna(rank_):
        return "–"
    text = str(int(rank_))
    if lo is not None and hi is not None and not pd.isna(lo) and not pd.isna(hi) and lo != hi:
        text += f" ({int(lo)}–{int(hi)})"
    return text


def _status(recs: EntryPhases) -> str:
    states = [recs.status(p) for p in PHASES]
    if "failed" in states:
        return "failed"
    if "missing" in states:
        return "incomplete"
    return "done"


def break_even_rows(run: RunData) -> pd.DataFrame:
    """Break-even MUI of each compressed/inheriting variant vs its base, and suite pairs."""
    costs = {c.name: c for c in entry_costs(run)}
    kinds = device_kinds(run)
    pairs = [(e.name, e.inherit) for e in run.suite.entries if e.inherit]
    pairs += [(a, b) for a, b in run.suite.metric.pairs]
    seen: set[frozenset[str]] = set()
    rows = []
    for a, b in pairs:
        if frozenset((a, b)) in seen:  # a suite pair that repeats an inherit pair
            continue
        seen.add(frozenset((a, b)))
        if a in costs and b in costs:
            mixed = mixed_devices([a, b], kinds)
            where = {"placement": run.info.placement(a), "is_mixed_devices": mixed}
            try:
                be = break_even(costs[a], costs[b])
            except ValueError as exc:
                note = _mixed_note(str(exc), a, b, kinds) if mixed else str(exc)
                rows.append({"entry": a, "other": b, "kind": "undefined", **_UNDEFINED})
                rows[-1] |= {**where, "note": note}  # every row has every column
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
                    "is_estimate": costs[a].has_estimates or costs[b].has_estimates,
                    **where,
                    "note": _mixed_note(d["note"], a, b, kinds) if mixed else d["note"],
                }
            )
    return pd.DataFrame(rows)


#: the figures of a break-even pair whose break-even is undefined
_UNDEFINED = dict.fromkeys(("mui", "mui_lo", "mui_hi", "cheaper_above", "is_estimate"))


def usage_intensities(run: RunData) -> list[tuple[float, float]]:
    """The suite's (MUI, weight) pairs."""
    return [(u.mui, u.weight) for u in run.suite.metric.usage_intensities]


def carbon_factors(run: RunData) -> dict[str, Any]:
    """Grid intensity (gCO2e/kWh) and PUE of the run, each with where it comes from."""
    from energybench.metrics.carbon import grid_intensity

    settings = run.suite.carbon
    g, source = grid_intensity(settings)
    given = "pue" in settings.model_fields_set
    pue_source = "suite value (carbon.pue)" if given else "default (no data centre overhead)"
    return {
        "grid_intensity_g_per_kwh": g,
        "grid_source": source,
        "pue": settings.pue,
        "pue_source": pue_source,
    }


def metric_rows(run: RunData) -> pd.DataFrame:
    """One row per entry x usage intensity: E (J), G, carbon (kgCO2e), rank by G at that MUI."""
    kw = _rank_kw(run)
    factors = carbon_factors(run)
    costs = entry_costs(run)
    rows = []
    for mui, weight in usage_intensities(run):
        for r in rank(costs, mui=mui, **kw):
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
                    "g_lo": r.value_lo,
                    "g_hi": r.value_hi,
                    "rank": r.rank,
                    "rank_lo": r.rank_lo,
                    "rank_hi": r.rank_hi,
                    "tie_group": r.tie_group,
                    "rank_note": r.reason,
                    "is_estimate": r.is_estimate,
                }
            )
    return pd.DataFrame(rows)
