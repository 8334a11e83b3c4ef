"""``energybench site``: a static offline leaderboard over runs of several suites, its filters
clicked in headless Chromium, and ``--check`` refusing damaged, unfinished or tampered runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from energybench.cli import app

SUITE = """\
name: {name}
defaults:
  dataset:
    name: photos
    params: {{patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}}
  evaluate: {{max_items: 1}}
energy: {{meters: [estimate], idle_baseline_s: 0, min_window_s: 0, min_window_iters: 2,
          trials: 2, max_trials: 2, allow_estimates_in_ranking: true}}
metric: {{quality: psnr_db, iec_scenario: throughput,
          usage_intensities: [{{mui: 1000}}, {{mui: 1.0e+7}}]}}
entries:
  - name: bicubic
    model: {{name: bicubic}}
    serve: [{{scenario: throughput, batch_sizes: [1], warmup: 1, iterations: 2}}]
  - name: small
    model: {{name: espcn, params: {{channels: 4, layers: 2, first_kernel: 3}}}}
    backend: {{name: {backend}}}
    serve: [{{scenario: throughput, batch_sizes: [1], warmup: 1, iterations: 2}}]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two runs of two suites (the second serves one entry on another backend)."""
    tmp = tmp_path_factory.mktemp("site-runs")
    out = []
    for name, backend in (("alpha", "eager"), ("beta", "onnxruntime")):
        suite = tmp / f"{name}.yaml"
        suite.write_text(SUITE.format(name=name, backend=backend))
        res = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp / "results"),
                                       "--report", str(tmp / f"{name}.html")])  # fmt: skip
        assert res.exit_code == 0, res.output
        (run_dir,) = (tmp / "results" / name).iterdir()
        out.append(run_dir)
    return out


def _site(args: list[str]) -> object:
    return CliRunner().invoke(app, ["site", *args])


def test_the_site_has_a_page_per_suite_and_per_entry_with_working_links(
    runs: list[Path], tmp_path: Path
) -> None:
    res = _site([*map(str, runs), "-o", str(tmp_path / "site"), "--check"])
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    assert 'href="alpha.html"' in index and 'href="beta.html"' in index
    pages = list(site.rglob("*.html"))
    assert len(pages) == 1 + 2 + 4  # index, two suites, two entries in each run
    for page in pages:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text  # offline: no CDN
        for href in re.findall(r'href="([^"#]+)"', text):
            assert (page.parent / href).resolve().is_file(), f"{page}: broken link {href}"
    entry = (site / "beta" / runs[1].name / "small.html").read_text()
    assert "onnxruntime" in entry and "estimate" in entry


def _copy(run: Path, tmp: Path) -> Path:
    dest = tmp / "copy" / run.name
    shutil.copytree(run, dest)
    return dest


def test_check_refuses_a_run_edited_after_it_finished(runs: list[Path], tmp_path: Path) -> None:
    run = _copy(runs[0], tmp_path)
    rec = run / "entries" / "small" / "serve.json"
    data = json.loads(rec.read_text())
    data["duration_s"] = 0.001
    rec.write_text(json.dumps(data))
    res = _site([str(run), "-o", str(tmp_path / "site"), "--check"])
    assert res.exit_code == 2  # type: ignore[attr-defined]
    assert "serve.json: changed after the run finished" in res.output  # type: ignore[attr-defined]
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize(
    "damage,message",
    [
        ("unfinished", "did not finish"),
        ("future", "reads store versions up to"),
        ("missing-phase", "evaluate is missing"),
        ("unsealed", "no seal"),
        ("added", "added after the run finished"),
    ],
)
def test_check_refuses_incomplete_damaged_and_unsealed_runs(
    runs: list[Path], tmp_path: Path, damage: str, message: str
) -> None:
    run = _copy(runs[0], tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    if damage == "unfinished":
        manifest["finished"] = False
    elif damage == "future":
        manifest["store_version"] = 99
    (run / "manifest.json").write_text(json.dumps(manifest))
    if damage in ("unfinished", "future"):  # a consistent seal: only the content is wrong
        from energybench.records.seal import write_seal

        write_seal(run)
    if damage == "missing-phase":
        (run / "entries" / "small" / "evaluate.json").unlink()
    if damage == "unsealed":
        (run / "seal.json").unlink()
    if damage == "added":
        (run / "entries" / "small" / "extra.json").write_text("{}")
    res = _site([str(run), "-o", str(tmp_path / "site"), "--check"])
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    assert message in res.output  # type: ignore[attr-defined]
    assert "Traceback" not in res.output  # type: ignore[attr-defined]


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
def test_every_filter_works_in_a_browser(runs: list[Path], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    res = _site([*map(str, runs), "-o", str(tmp_path / "site")])
    assert res.exit_code == 0  # type: ignore[attr-defined]
    page_file = tmp_path / "site" / "beta.html"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())

        def visible() -> list[str]:
            return page.eval_on_selector_all(
                "#board tbody tr:not([hidden]) td:nth-child(2)", "els => els.map(e => e.innerText)"
            )

        assert sorted(visible()) == ["bicubic", "small"]
        page.select_option("#f-backend", "onnxruntime")
        assert visible() == ["small"]
        page.select_option("#f-backend", "")
        page.select_option("#f-device", "cpu")
        assert sorted(visible()) == ["bicubic", "small"]
        page.select_option("#f-device", "")
        page.fill("#f-quality", "1000")  # no PSNR that high
        assert visible() == []
        page.fill("#f-quality", "")
        page.fill("#f-deadline", "0.000001")  # no p99 that low
        assert visible() == []
        page.fill("#f-deadline", "")
        ranks = []
        for option in page.eval_on_selector_all("#f-mui option", "os => os.map(o => o.value)"):
            page.select_option("#f-mui", option)
            ranks.append(page.eval_on_selector_all(
                "#board tbody tr td.rank", "els => els.map(e => e.innerText)"))  # fmt: skip
            assert page.eval_on_selector_all(
                "#board tbody tr td.g", "els => els.map(e => e.innerText)"
            ) != ["–", "–"]
        assert len(ranks) == 2 and all(r[0] == "1" for r in ranks)  # sorted by rank
        page.click("#board tbody tr td:nth-child(2) a")
        assert page.url.endswith(".html") and "Phases and windows" in page.content()
        browser.close()
    assert errors == []
