"""In-memory runs for ranking tests: records shaped as the runner stores them (an NVML GPU
counter beside codecarbon's CPU/RAM estimate, a charged and an uncharged GPU), built with
:meth:`RunData.from_records` so each ranking rule is checked on exact figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from energybench.meters.base import DeviceEnergy, Source, Window
from energybench.records.store import RunData
from energybench.serve.trials import aggregate_trials, trial_summary
from energybench.suite.schema import EnergySettings, Suite


def window(
    gpu_j: float, cpu_j: float, ram_j: float, *, shared: bool = False, gpu: str = "gpu:a"
) -> Window:
    """A 10 s window: ``gpu`` (charged, NVML counter, ±5 %), an uncharged GPU, CPU/RAM estimates."""
    return Window(
        name="w",
        start_unix_s=0.0,
        duration_s=10.0,
        devices=[
            DeviceEnergy(
                gpu, "gpu", "H100", Source("nvml-counter"), gpu_j, 0.05 * gpu_j,
                cuda_position=0, shared=shared,
            ),
            DeviceEnergy("gpu:b", "gpu", "H100", Source("nvml-counter"), 700.0, charged=False),
            DeviceEnergy("cpu:estimate", "cpu", "cpu", Source("estimate"), cpu_j, 0.5 * cpu_j),
            DeviceEnergy("ram:estimate", "ram", "ram", Source("estimate"), ram_j, 0.5 * ram_j),
        ],
    )  # fmt: skip


def scenario(
    kind: str,
    per_frame_gpu: list[float],
    shared: bool = False,
    allow: bool = False,
    *,
    gpu: str = "gpu:a",
    windows: list[Window] | None = None,
) -> dict[str, Any]:
    """A serving scenario record of 10-frame trials at ``per_frame_gpu`` J/frame on the GPU
    (or of the given trial ``windows``), aggregated as the runner does."""
    if windows is None:
        windows = [window(g * 10, 2.0, 5.0, shared=shared, gpu=gpu) for g in per_frame_gpu]
    trials = [trial_summary(w, 10, [0.01]) for w in windows]
    settings = EnergySettings(allow_estimates_in_ranking=allow)
    agg = aggregate_trials(trials, [0.01], 1, "frame", settings).to_json()  # as stored
    if kind == "throughput":
        return {"scenario": kind, "batch_sizes": [1], "by_batch": {"1": agg}}
    stream = {"target_fps": 30.0, "frames_per_trial": 10, "deadline_miss_rate": 0.0}
    stream |= {"deadline_misses": 0, "fps_achieved": None}
    return {"scenario": kind, **stream, **agg}


def make_run(
    allow_estimates: bool,
    *,
    shared: bool = False,
    kinds: tuple[str, str] = ("stream", "stream"),
    base_frames: tuple[float, ...] = (3.0, 3.0),
    variant_frames: tuple[float, ...] = (2.0, 2.0),
    train: Window | None = None,
    variant_windows: list[Window] | None = None,
    variant_gpu: str = "gpu:a",
) -> RunData:
    """Two entries: ``base`` (trained, 990 J on the GPU) and ``variant`` (inherits base,
    compressed, 100 J), each served in one scenario; quality 30 dB for both."""
    suite = Suite.model_validate(
        {
            "name": "t",
            "energy": {"allow_estimates_in_ranking": allow_estimates},
            "metric": {"quality": "psnr_db", "usage_intensities": [{"mui": 1000}]},
            "entries": [
                {
                    "name": "base",
                    "model": {"name": "espcn"},
                    "train": {"steps": 1},
                    "serve": [{"scenario": kinds[0], "name": "main"}],
                },
                {
                    "name": "variant",
                    "model": {"name": "espcn"},
                    "inherit": "base",
                    "compress": [{"method": "reparameterize"}],
                    "serve": [{"scenario": kinds[1], "name": "main"}],
                },
            ],
        }
    ).model_dump(mode="json")

    def phase(entry: str, name: str, meas: Window | None, **kw: Any) -> dict[str, Any]:
        rec = {"entry": entry, "phase": name, "status": "done", "config_hash": "h", **kw}
        rec["measurement"] = meas.to_json() if meas else None
        return rec

    def evaluate(entry: str, q: float) -> dict[str, Any]:
        return phase(entry, "evaluate", None, quality={"psnr_db": q})

    phases = {
        "base": {
            "train": phase("base", "train", train or window(990.0, 26.0, 65.0)),
            "compress": phase("base", "compress", None) | {"status": "skipped"},
            "serve": phase(
                "base", "serve", None,
                scenarios={"main": scenario(kinds[0], list(base_frames), allow=allow_estimates)},
            ),
            "evaluate": evaluate("base", 30.0),
        },
        "variant": {
            "train": phase("variant", "train", None) | {"status": "skipped"},
            "compress": phase("variant", "compress", window(100.0, 5.0, 7.0, gpu=variant_gpu)),
            "serve": phase(
                "variant", "serve", None,
                scenarios={"main": scenario(
                    kinds[1], list(variant_frames), shared, allow_estimates,
                    gpu=variant_gpu, windows=variant_windows,
                )},
            ),
            "evaluate": evaluate("variant", 30.0),
        },
    }  # fmt: skip
    manifest = {"suite": suite, "placements": {"base": "cuda:0", "variant": "cuda:0"}}
    return RunData.from_records(Path("/nonexistent/run"), manifest, phases)
