"""Pretrained weights from local caches only, pinned by sha256: a suite fine-tunes and serves a
torchvision ResNet-18 from torch's hub cache, with its declared upstream cost in TEC; a wrong
hash or an absent file stops validate and run before any work (exit 2)."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

SUITE = """\
name: pretrained
defaults:
  dataset: {{name: digits, params: {{seed: 0}}}}
  evaluate: {{split: test, max_items: 16}}
energy:
  meters: [estimate]
  idle_baseline_s: 0
  min_window_s: 0
  min_window_iters: 2
  trials: 1
  max_trials: 1
  allow_estimates_in_ranking: true
metric:
  quality: top1
  iec_scenario: throughput
entries:
  - name: resnet18-ft
    model:
      name: "tv:resnet18"
      weights: {{{weights}}}
    train: {{steps: 2, batch_size: 4}}
    serve:
      - {{scenario: throughput, batch_sizes: [1], warmup: 1, iterations: 2}}
"""


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A torch hub cache holding ResNet-18 weights under torchvision's file name."""
    import torchvision

    home = tmp_path_factory.mktemp("torch-home")
    url = torchvision.models.get_model_weights("resnet18")["IMAGENET1K_V1"].url
    path = home / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.manual_seed(123)  # not the run's own initialisation (seed 0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return home, hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TORCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "energybench", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)  # fmt: skip


def test_a_suite_finetunes_and_serves_cached_weights_with_upstream_cost_in_tec(
    torch_home: tuple[Path, str], tmp_path: Path
) -> None:
    home, sha = torch_home
    weights = (f"torchvision: IMAGENET1K_V1, sha256: {sha}, strict: false, "
               "upstream_energy_j: 5.0e+9, upstream_source: 'model card (made up)'")  # fmt: skip
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.format(weights=weights))
    out = tmp_path / "results"
    done = _cli(home, "run", str(suite), "--out", str(out), "--report", str(tmp_path / "r.html"),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = (out / "pretrained").iterdir()
    import energybench

    train = energybench.load_run(run_dir).entry("resnet18-ft").train
    assert train is not None and train.done
    loaded = train.model_extra["weights"]  # type: ignore[index]
    assert loaded["sha256"] == sha and "fc.weight" in loaded["skipped_keys"]
    # the train phase fine-tuned the cached weights: two steps moved them a little, and they
    # are far from the model's own initialisation
    from energybench.records.store import RunStore
    from energybench.run.checkpoint import read_state_dict

    key = "layer4.1.conv2.weight"
    tuned = read_state_dict(RunStore(run_dir).checkpoint_path("resnet18-ft", "train"))
    cached = read_state_dict(home / "hub" / "checkpoints" / Path(loaded["file"]).name)[key]
    torch.manual_seed(0)
    import torchvision

    fresh = torchvision.models.resnet18(weights=None).state_dict()[key]
    assert (tuned[key] - cached).abs().max() < (fresh - cached).abs().max() / 10
    csv_path = tmp_path / "r.csv"
    assert _cli(home, "export", str(run_dir), "--format", "csv", "-o", str(csv_path),
                cwd=tmp_path).returncode == 0  # fmt: skip
    rows = list(csv.DictReader(csv_path.open()))
    tec = [float(r["tec_j"]) for r in rows if r["tec_j"] and r["entry"] == "resnet18-ft"]
    assert tec and all(t >= 5.0e9 for t in tec)  # the declared upstream cost is in TEC
    assert "declared" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_wrong_hash_stops_before_any_work(
    torch_home: tuple[Path, str], tmp_path: Path, command: str
) -> None:
    home, _ = torch_home
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.format(weights=f"torchvision: IMAGENET1K_V1, sha256: {'ab' * 32}"))
    done = _cli(home, command, str(suite), "--out" if command == "run" else "--set",
                str(tmp_path / "results") if command == "run" else "name=pretrained",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "not the pinned" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_weights_absent_from_the_cache_say_how_to_fetch_them(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(SUITE.format(weights=f"torchvision: IMAGENET1K_V1, sha256: {'ab' * 32}"))
    done = _cli(tmp_path / "empty-home", "validate", str(suite), cwd=tmp_path)
    assert done.returncode == 2
    assert "not in torch's local cache" in done.stderr and "get_model" in done.stderr


def test_hugging_face_weights_come_from_the_local_cache_only(tmp_path: Path) -> None:
    from energybench.models.weights import WeightsError, check_weights
    from energybench.suite.base import WeightsSpec

    rev = "a" * 40
    snap = tmp_path / "hub" / "models--org--tiny" / "snapshots" / rev
    snap.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(snap / "model.safetensors"))
    sha = hashlib.sha256((snap / "model.safetensors").read_bytes()).hexdigest()
    spec = WeightsSpec(hf="org/tiny", revision=rev, file="model.safetensors", sha256=sha)
    code = (
        "from energybench.models.weights import check_weights, read_weights\n"
        "from energybench.suite.base import WeightsSpec\n"
        f"spec = WeightsSpec.model_validate({spec.model_dump()!r})\n"
        "p = check_weights(spec, 'x')\nprint(sorted(read_weights(p, spec.sha256)))\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    assert done.stdout.strip() == "['w']", done.stderr
    missing = WeightsSpec(hf="org/absent", revision=rev, file="model.safetensors", sha256=sha)
    with pytest.raises(WeightsError, match="hf download org/absent"):
        check_weights(missing, "x")


def test_a_weights_declaration_names_exactly_one_source() -> None:
    from pydantic import ValidationError

    from energybench.suite.base import WeightsSpec

    with pytest.raises(ValidationError, match="exactly one"):
        WeightsSpec(path="a.pt", torchvision="IMAGENET1K_V1", sha256="0" * 64)
    with pytest.raises(ValidationError, match="revision"):
        WeightsSpec(hf="org/repo", sha256="0" * 64)
    with pytest.raises(ValidationError, match="finite"):
        WeightsSpec(path="a.pt", sha256="0" * 64, upstream_energy_j=float("inf"))


def _pretrained_run(upstream: float | str) -> Any:
    """A run of one pretrained entry (990 J fine-tune on an NVML GPU, no compress) whose
    weights declare ``upstream`` as their upstream training energy."""
    from energybench.records.store import RunData
    from energybench.suite.schema import Suite
    from tests.helpers.runs import window

    weights = {"path": "w.safetensors", "sha256": "0" * 64, "upstream_energy_j": upstream,
               "upstream_source": "model card"}  # fmt: skip
    suite = Suite.model_validate(
        {
            "name": "t",
            "energy": {"allow_estimates_in_ranking": True},
            "entries": [{"name": "ft", "model": {"name": "espcn", "weights": weights}}],
        }
    ).model_dump(mode="json")
    train = window(990.0, 26.0, 65.0)
    phases = {"ft": {
        "train": {"entry": "ft", "phase": "train", "status": "done", "config_hash": "h",
                  "measurement": train.to_json()},
        "compress": {"entry": "ft", "phase": "compress", "status": "skipped",
                     "config_hash": "h"},
    }}  # fmt: skip
    return RunData.from_records(Path("/nonexistent/run"), {"suite": suite}, phases)


def test_declared_upstream_energy_is_in_tec_as_declared_and_unknown_is_said() -> None:
    from energybench.report.tables import entry_figures

    run = _pretrained_run(5.0e9)
    (fig,) = entry_figures(run)
    up = [i for i in fig.cost.items if i.phase == "upstream"]
    assert len(up) == 1 and up[0].energy_j == 5.0e9 and up[0].source == "declared"
    assert up[0].is_estimate and "declared: model card" in up[0].label  # never a measurement
    own = sum(i.energy_j or 0.0 for i in fig.cost.items if i.phase != "upstream")
    assert fig.cost.tec_j == pytest.approx(own + 5.0e9)
    assert "unknown" not in (fig.cost.scope or "")

    run = _pretrained_run("unknown")
    (fig,) = entry_figures(run)
    assert not [i for i in fig.cost.items if i.phase == "upstream"]
    assert fig.cost.tec_j == pytest.approx(own)  # this suite's phases only ...
    assert "upstream training (unknown)" in (fig.cost.scope or "")  # ... and the tables say so


class _Payload:
    """An object a pickle would rebuild (and could run code with): never loaded."""


def test_a_local_file_loads_as_safetensors_or_a_plain_state_dict_and_nothing_else(
    tmp_path: Path,
) -> None:
    from safetensors.torch import save_file

    from energybench.models.weights import WeightsError, load_weights
    from energybench.suite.base import WeightsSpec

    def spec(path: Path, **kw: Any) -> WeightsSpec:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return WeightsSpec(path=path.name, sha256=sha, **kw)  # suite-relative

    torch.manual_seed(1)
    source = torch.nn.Linear(3, 2)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(source.state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        model = torch.nn.Linear(3, 2)
        info = load_weights(model, spec(tmp_path / name), "linear", base=tmp_path)
        assert torch.equal(model.weight, source.weight) and torch.equal(model.bias, source.bias)
        assert info["file"] == str(tmp_path / name) and not info["skipped_keys"]

    torch.save({"weight": source.weight, "hook": _Payload()}, tmp_path / "code.pt")
    with pytest.raises(WeightsError, match="weights_only=True"):
        load_weights(torch.nn.Linear(3, 2), spec(tmp_path / "code.pt"), "linear", base=tmp_path)
    # another shape: refused when strict, left as built (and listed) when not
    wide = torch.nn.Linear(3, 4)
    with pytest.raises(WeightsError, match="strict: false"):
        load_weights(wide, spec(tmp_path / "w.pt"), "linear", base=tmp_path)
    info = load_weights(wide, spec(tmp_path / "w.pt", strict=False), "linear", base=tmp_path)
    assert sorted(info["skipped_keys"]) == ["bias", "weight"]


def test_timm_weights_are_a_hugging_face_repo_in_the_local_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    from energybench.models.weights import load_weights
    from energybench.suite.base import WeightsSpec

    rev = "b" * 40
    snap = tmp_path / "hub" / "models--timm--resnet10t.tiny" / "snapshots" / rev
    snap.mkdir(parents=True)
    torch.manual_seed(3)
    published = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    save_file(published.state_dict(), str(snap / "model.safetensors"))
    sha = hashlib.sha256((snap / "model.safetensors").read_bytes()).hexdigest()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    spec = WeightsSpec(hf="timm/resnet10t.tiny", revision=rev, file="model.safetensors", sha256=sha)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    load_weights(model, spec, "timm:resnet10t")
    assert torch.equal(model.fc.weight, published.fc.weight)
