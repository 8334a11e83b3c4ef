"""Plug-ins from outside: an installed package registers a model and a scenario through the
``energybench.plugins`` entry-point group, and a suite that declares it runs end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOY = REPO / "tests" / "fixtures" / "toy_plugin"

SUITE = """\
name: toyplug
{plugins}
defaults:
  dataset:
    name: photos
    params: {{patch_size: 16, test_crop: 32x32, serve_lr: 16x16, seq_size: 48x48, seq_frames: 4}}
  train: {{steps: 2, batch_size: 2}}
  evaluate: {{max_items: 1}}
energy:
  meters: [estimate]
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: psnr_db
  iec_scenario: burst
entries:
  - name: tiny
    model: {{name: toy-sr}}
    serve:
      - {{scenario: toy-burst, name: burst, frames: 3}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy plug-in installed with pip into its own folder (as a user's package would be)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(TOY, src)  # the build writes beside its sources: keep the repo clean
    target = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
           "--no-build-isolation", "--target", str(target), str(src)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot install the toy plug-in here: {done.stderr[-400:]}")
    return target


def _cli(site: Path | None, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    paths = [str(site)] if site else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "energybench", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


def test_a_suite_that_declares_the_plugin_runs_end_to_end(site: Path, tmp_path: Path) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(SUITE.format(plugins="plugins: [toy]"))
    assert _cli(site, "validate", str(suite), cwd=tmp_path).returncode == 0
    out = tmp_path / "results"
    done = _cli(site, "run", str(suite), "--out", str(out), "--report", str(tmp_path / "r.html"),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run_dir,) = (out / "toyplug").iterdir()
    csv = tmp_path / "r.csv"
    export = _cli(site, "export", str(run_dir), "--format", "csv", "-o", str(csv), cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    text = csv.read_text()
    assert "toy-burst" in text and "burst_frames" in text
    # without the plug-in installed, the run cannot be read, and says why
    report = _cli(None, "report", str(run_dir), "-o", str(tmp_path / "x.html"), cwd=tmp_path)
    assert report.returncode == 2
    assert "plug-in 'toy' is not installed" in report.stderr


def test_a_suite_must_declare_the_plugin_it_uses(site: Path, tmp_path: Path) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(SUITE.format(plugins=""))
    done = _cli(site, "validate", str(suite), cwd=tmp_path)
    assert done.returncode == 2
    assert "does not declare: toy" in done.stderr and "Traceback" not in done.stderr


def test_a_declared_plugin_that_is_not_installed_is_located(tmp_path: Path) -> None:
    suite = tmp_path / "toy.yaml"
    suite.write_text(SUITE.format(plugins="plugins: [toy]"))
    done = _cli(None, "validate", str(suite), cwd=tmp_path)
    assert done.returncode == 2
    assert "toy.yaml:2:" in done.stderr and "plug-in 'toy' is not installed" in done.stderr


def test_listings_show_where_each_name_comes_from(site: Path, tmp_path: Path) -> None:
    done = _cli(site, "models", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert any("toy-sr" in r and "plug-in toy" in r for r in rows)
    assert any("espcn" in r and "energybench" in r for r in rows)
    meters = _cli(site, "meters", cwd=tmp_path)
    assert meters.returncode == 0, meters.stderr
    assert "toy-plug (plug-in toy): unavailable" in meters.stdout
    assert "plug the toy wattmeter in" in meters.stdout
    assert "estimate: ok" in meters.stdout  # built-ins are listed without an origin


def test_a_loaded_plugin_still_needs_the_suite_to_declare_it(site: Path, tmp_path: Path) -> None:
    """In one process that has loaded the plug-in (e.g. after a listing), a suite that does not
    declare it still cannot name its model."""
    suite = tmp_path / "toy.yaml"
    suite.write_text(SUITE.format(plugins=""))  # the model and the scenario: both refused
    code = (
        "from energybench.plugins.entrypoints import load_plugins\n"
        "from energybench.suite import SuiteError, load_suite\n"
        "load_plugins(['toy'])\n"
        f"try:\n    load_suite({str(suite)!r})\nexcept SuiteError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    assert "model 'toy-sr' comes from plug-in 'toy'" in done.stdout, done.stdout + done.stderr
    assert "serving scenario 'toy-burst' comes from plug-in 'toy'" in done.stdout
