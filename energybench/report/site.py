"""``energybench site RUN_DIR... -o DIR``: a static, offline leaderboard site over many runs.

One page per suite with every run and machine (filters: device, backend, p99 deadline, quality
floor, usage intensity), one page per entry of each run (phases, energy by device and source,
provenance, power traces), an index of suites. No server and no CDN: plain HTML with inline CSS
and JS. ``--check`` is the submission checker: a run that is incomplete, damaged, of an unknown
store version or whose records do not match its seal is refused (:func:`check_run`). This module
reads run folders only; it never measures.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from energybench.errors import UserError
from energybench.plugins.entrypoints import load_run
from energybench.records import safefs
from energybench.records.check import RunFileError
from energybench.records.phases import PHASES
from energybench.records.seal import seal_problems
from energybench.records.store import (
    NotARunError,
    RunData,
    RunStore,
    atomic_write_bytes,
    atomic_write_text,
)
from energybench.report.tables import leaderboard, phase_rows, usage_intensities
from energybench.report.units import eng


class SiteCheckError(UserError, ValueError):
    """Runs refused by ``site --check`` (each problem on its own line)."""


def check_run(run_dir: Path) -> list[str]:
    """Why ``run_dir`` cannot be submitted (empty: complete, readable and intact)."""
    try:
        run = load_run(run_dir)
    except (NotARunError, RunFileError, UserError) as exc:
        return [f"damaged or unreadable: {exc}"]
    problems = []
    if not run.info.finished:
        problems.append(f"{run_dir}: incomplete: the run did not finish (resume it)")
    store = RunStore(Path(run_dir))
    for entry in run.entries:
        phases = run.entry(entry)
        for phase in PHASES:
            status = phases.status(phase)
            if status not in ("done", "skipped"):
                problems.append(f"{run_dir}: incomplete: entry '{entry}' {phase} is {status}")
            rec = store.read_phase(entry, phase) if status == "done" else None
            bad = store.checkpoint_problem(entry, phase, rec) if rec is not None else None
            if bad:
                problems.append(f"{run_dir}: entry '{entry}' {phase}: {bad}")
    problems += seal_problems(Path(run_dir))
    return problems


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and abs(f) != float("inf") else None


def _at(row: dict[str, Any], column: str) -> float | None:
    """A per-MUI figure of a leaderboard row; None where this run has no such usage intensity
    (the runs of one suite page may use different ones)."""
    return _num(row[column]) if column in row else None


def _machine(run: RunData) -> dict[str, str]:
    env = run.info.environment
    cpu = env.cpu.name if env.cpu else "?"
    gpus, sim = env.gpu_names, run.info.simulate
    gpu = f"{len(gpus)}× {gpus[0]}" if gpus else (f"simulated {sim}" if sim else "no GPU")
    return {"host": env.hostname, "cpu": cpu, "gpu": gpu}


@dataclass
class SiteRow:
    """One entry of one run, as the suite page shows it."""

    run_id: str
    entry: str
    page: str
    device: str
    backend: str
    machine: str
    quality: float | None
    p99_ms: float | None
    tec: str
    iec: str
    status: str
    marks: str
    ranks: dict[str, Any] = field(default_factory=dict)  # mui key -> rank (None: unranked)
    scores: dict[str, str] = field(default_factory=dict)  # mui key -> G text


@dataclass
class SuitePage:
    name: str
    runs: list[RunData]
    rows: list[SiteRow]
    muis: list[tuple[str, str]]  # key, label
    machines: list[str]


def _rows(run: RunData, muis: list[tuple[str, str]]) -> list[SiteRow]:
    board = leaderboard(run)
    machine = _machine(run)
    out = []
    for r in board.to_dict("records"):
        entry = str(r["entry"])
        marks = "".join(
            m
            for m, key in (("e", "is_estimate"), ("s", "is_simulated"), ("x", "is_shared"))
            if r[key]
        )
        out.append(
            SiteRow(
                run_id=run.root.name,
                entry=entry,
                page=f"{_slug(run.suite.name)}/{_slug(run.root.name)}/{entry}.html",
                device=run.info.placement(entry) or "?",
                backend=str(r["backend"]),
                machine=f"{machine['host']} · {machine['gpu']}",
                quality=_num(r["quality"]),
                p99_ms=_num(r["latency_p99_ms"]),
                tec=eng(_num(r["tec_j"]), "J") if _num(r["tec_j"]) is not None else "–",
                iec=eng(_num(r["iec_j"]), "J") if _num(r["iec_j"]) is not None else "–",
                status=str(r["status"]),
                marks=marks,
                ranks={k: _at(r, f"rank@{mui}") for k, mui in muis},
                scores={k: (f"{g:.4g}" if (g := _at(r, f"g@{mui}")) else "–") for k, mui in muis},
            )
        )
    return out


def _pages(runs: list[RunData]) -> list[SuitePage]:
    by_suite: dict[str, list[RunData]] = {}
    for run in runs:
        by_suite.setdefault(run.suite.name, []).append(run)
    pages = []
    for name, suite_runs in sorted(by_suite.items()):
        keys: dict[str, str] = {}
        for run in suite_runs:
            for mui, _w in usage_intensities(run):
                keys.setdefault(f"{mui:g}", f"{eng(mui, '')} items".strip())
        muis = [(f"m{i}", k) for i, k in enumerate(keys)]
        labels = [(f"m{i}", keys[k]) for i, k in enumerate(keys)]
        rows = [row for run in suite_runs for row in _rows(run, muis)]
        machines = sorted({row.machine for row in rows})
        pages.append(SuitePage(name, suite_runs, rows, labels, machines))
    return pages


def _entry_context(run: RunData, entry: str) -> dict[str, Any]:
    phases = phase_rows(run)
    mine = phases[phases["entry"] == entry] if len(phases) else phases
    cols = ["phase", "status", "window", "device", "source", "energy_j", "uncertainty_j",
            "mean_power_w", "duration_s", "is_estimate", "note"]  # fmt: skip
    rows = []
    for r in mine.to_dict("records"):
        rows.append({c: r.get(c) for c in cols})  # plain map from the phases frame
    for r in rows:
        for c in ("energy_j", "uncertainty_j"):
            v = _num(r[c])
            r[c] = eng(v, "J") if v is not None else "–"
        p = _num(r["mean_power_w"])
        r["mean_power_w"] = eng(p, "W") if p is not None else "–"
        d = _num(r["duration_s"])
        r["duration_s"] = f"{d:.3g} s" if d is not None else "–"
    spec = run.suite.entry(entry).model_dump(mode="json")
    return {
        "run_id": run.root.name,
        "suite": run.suite.name,
        "suite_slug": _slug(run.suite.name),
        "entry": entry,
        "phases": rows,
        "columns": cols,
        "spec": json.dumps(spec, indent=1, sort_keys=True, default=str),
        "machine": _machine(run),
        "meters": [
            (m.meter or m.kind or "?", m.name or m.device or "?", m.model_dump(exclude_unset=True))
            for m in run.info.meters
        ],
    }


def _copy_traces(run: RunData, dest: Path) -> list[str]:
    traces = run.root / "traces"  # read only: never created in the run folder (trace_dir does)
    names = []
    if traces.is_dir() and not traces.is_symlink():
        safefs.safe_mkdirs(dest)
        for f in sorted(traces.iterdir()):
            if f.is_file() and not f.is_symlink() and f.suffix == ".csv":
                atomic_write_bytes(dest / f.name, f.read_bytes())
                names.append(f.name)
    return names


def build_site(run_dirs: list[Path], out: Path, check: bool = False) -> Path:
    """Write the site for ``run_dirs`` into ``out``; returns the index page.

    With ``check``, every run must pass :func:`check_run` or nothing is written
    (:class:`SiteCheckError` lists every problem of every run)."""
    if check:
        problems = [p for d in run_dirs for p in check_run(d)]
        if problems:
            raise SiteCheckError("runs refused by --check:\n  " + "\n  ".join(problems))
    runs = [load_run(d) for d in run_dirs]
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    pages = _pages(runs)
    safefs.safe_mkdirs(out)
    for page in pages:
        suite_dir = out / _slug(page.name)
        for run in page.runs:
            run_dir = suite_dir / _slug(run.root.name)
            safefs.safe_mkdirs(run_dir)
            traces = _copy_traces(run, run_dir / "traces")
            for entry in run.entries:
                ctx = _entry_context(run, entry)
                html = env.from_string(ENTRY_PAGE).render(**ctx, traces=traces, css=CSS)
                atomic_write_text(run_dir / f"{entry}.html", html)
        html = env.from_string(SUITE_PAGE).render(page=page, css=CSS, js=SUITE_JS)
        atomic_write_text(out / f"{_slug(page.name)}.html", html)
    index = out / "index.html"
    atomic_write_text(index, env.from_string(INDEX_PAGE).render(pages=pages, css=CSS, slug=_slug))
    return index


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1360px}
table{border-collapse:collapse;margin:.8em 0}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;
font-variant-numeric:tabular-nums}.filters label{margin-right:1em}.mark{color:#a60}
tr[hidden]{display:none}code,pre{background:#f7f7f7;padding:.2em}.muted{color:#777}
"""

INDEX_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>energybench leaderboards</title><style>{{ css }}</style></head><body>
<h1>energybench leaderboards</h1>
<table><thead><tr><th>suite</th><th>runs</th><th>machines</th><th>entries</th></tr></thead><tbody>
{% for p in pages %}<tr><td><a href="{{ slug(p.name) }}.html">{{ p.name }}</a></td>
<td class="num">{{ p.runs|length }}</td><td>{{ p.machines|join("; ") }}</td>
<td class="num">{{ p.rows|length }}</td></tr>{% endfor %}
</tbody></table>
<p class="muted">Static and offline: built by <code>energybench site</code>. Marks: e = estimate
(power model, not a measurement), s = simulated device, x = shared device.</p></body></html>
"""

SUITE_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{ page.name }} — energybench</title><style>{{ css }}</style></head><body>
<p><a href="index.html">all suites</a></p><h1>{{ page.name }}</h1>
<p>{{ page.runs|length }} run(s) on {{ page.machines|length }} machine(s). Ranks are within each
run (lower is better); G is the score at the selected usage intensity.</p>
<div class="filters">
<label>device <select id="f-device"><option value="">any</option>
{% for d in page.rows|map(attribute="device")|unique|sort %}<option>{{ d }}</option>{% endfor %}
</select></label>
<label>backend <select id="f-backend"><option value="">any</option>
{% for b in page.rows|map(attribute="backend")|unique|sort %}<option>{{ b }}</option>{% endfor %}
</select></label>
<label>p99 deadline (ms) <input id="f-deadline" type="number" min="0" step="any"></label>
<label>quality ≥ <input id="f-quality" type="number" step="any"></label>
<label>usage intensity <select id="f-mui">{% for k, label in page.muis %}
<option value="{{ k }}">{{ label }}</option>{% endfor %}</select></label>
</div>
<table id="board"><thead><tr><th>rank</th><th>entry</th><th>run</th><th>machine</th>
<th>device</th><th>backend</th><th>Q</th><th>p99 (ms)</th><th>TEC</th><th>IEC (per item)</th>
<th>G</th><th>marks</th><th>status</th></tr></thead><tbody>
{% for r in page.rows %}<tr data-device="{{ r.device }}" data-backend="{{ r.backend }}"
 data-quality="{{ r.quality if r.quality is not none else '' }}"
 data-p99="{{ r.p99_ms if r.p99_ms is not none else '' }}"
 {% for k, _ in page.muis %}
 data-rank-{{ k }}="{{ r.ranks[k]|int if r.ranks[k] is not none else '' }}"
 data-g-{{ k }}="{{ r.scores[k] }}"{% endfor %}>
<td class="rank num">–</td><td><a href="{{ r.page }}">{{ r.entry }}</a></td><td>{{ r.run_id }}</td>
<td>{{ r.machine }}</td><td>{{ r.device }}</td><td>{{ r.backend }}</td>
<td class="num">{{ "%.4g"|format(r.quality) if r.quality is not none else "–" }}</td>
<td class="num">{{ "%.3g"|format(r.p99_ms) if r.p99_ms is not none else "–" }}</td>
<td class="num">{{ r.tec }}</td><td class="num">{{ r.iec }}</td><td class="num g">–</td>
<td class="mark">{{ r.marks }}</td><td>{{ r.status }}</td></tr>{% endfor %}
</tbody></table>
<p id="shown" class="muted"></p>
<script>{{ js|safe }}</script></body></html>
"""

SUITE_JS = """
(function(){
  var rows = Array.prototype.slice.call(document.querySelectorAll('#board tbody tr'));
  var ids = ['f-device','f-backend','f-deadline','f-quality','f-mui'];
  function num(v){ return v === '' || v === undefined ? null : Number(v); }
  function apply(){
    var dev = document.getElementById('f-device').value;
    var be = document.getElementById('f-backend').value;
    var dl = num(document.getElementById('f-deadline').value);
    var qmin = num(document.getElementById('f-quality').value);
    var mui = document.getElementById('f-mui').value;
    var shown = 0;
    rows.forEach(function(tr){
      var ok = (!dev || tr.dataset.device === dev) && (!be || tr.dataset.backend === be);
      var p99 = num(tr.dataset.p99), q = num(tr.dataset.quality);
      if (dl !== null) ok = ok && p99 !== null && p99 <= dl;
      if (qmin !== null) ok = ok && q !== null && q >= qmin;
      tr.hidden = !ok; if (ok) shown++;
      var rank = mui ? tr.getAttribute('data-rank-' + mui) : '';
      tr.querySelector('td.rank').textContent = rank || '–';
      tr.querySelector('td.g').textContent = mui ? tr.getAttribute('data-g-' + mui) : '–';
    });
    var body = document.querySelector('#board tbody');
    rows.slice().sort(function(a, b){
      var ra = num(a.querySelector('td.rank').textContent.replace('–', ''));
      var rb = num(b.querySelector('td.rank').textContent.replace('–', ''));
      if (ra === null) return rb === null ? 0 : 1; if (rb === null) return -1; return ra - rb;
    }).forEach(function(tr){ body.appendChild(tr); });
    document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' shown';
  }
  ids.forEach(function(id){
    var el = document.getElementById(id);
    el.addEventListener('change', apply); el.addEventListener('input', apply);
  });
  apply();
})();
"""

ENTRY_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{ entry }} — {{ suite }}</title><style>{{ css }}</style></head><body>
<p><a href="../../{{ suite_slug }}.html">{{ suite }}</a> › run {{ run_id }}</p>
<h1>{{ entry }}</h1>
<p>Machine: {{ machine.host }} · CPU {{ machine.cpu }} · {{ machine.gpu }}</p>
<h2>Phases and windows</h2>
<table><thead><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for r in phases %}<tr>{% for c in columns %}<td>{{ r[c] if r[c] is not none else "–" }}</td>
{% endfor %}</tr>{% endfor %}</tbody></table>
<h2>Provenance</h2>
<table><thead><tr><th>meter</th><th>device</th><th>details</th></tr></thead><tbody>
{% for meter, name, m in meters %}<tr><td>{{ meter }}</td>
<td>{{ name }}</td><td><code>{{ m|tojson }}</code></td></tr>
{% endfor %}</tbody></table>
<h2>Power traces</h2>
{% if traces %}<ul>{% for t in traces %}<li><a href="traces/{{ t }}">{{ t }}</a></li>{% endfor %}
</ul>{% else %}<p class="muted">none recorded</p>{% endif %}
<h2>Declaration</h2><pre>{{ spec }}</pre>
</body></html>
"""
