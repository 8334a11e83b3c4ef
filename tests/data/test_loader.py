"""The data path that feeds a GPU: decoding workers, pinned memory on CUDA, persistent workers,
and the same batches whatever the number of workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from energybench.data import DATASETS, loader
from energybench.data.loader import LoaderPlan, loader_plan
from energybench.train.loop import task_batches


def _folder(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, cls in enumerate(["cat", "dog"]):
        (root / cls).mkdir(parents=True)
        for i in range(8):
            px = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8) // 2 + 100 * k
            Image.fromarray(px.astype(np.uint8)).save(root / cls / f"{i}.png")


def test_a_cuda_device_gets_workers_pinned_memory_and_persistent_workers():
    plan = loader_plan(torch.device("cuda", 1))
    assert plan.workers >= 1 and plan.pin_memory and plan.persistent_workers
    assert loader_plan(torch.device("cuda"), workers=3) == LoaderPlan(3, True, True, 2)
    assert loader_plan(torch.device("cpu")) == LoaderPlan(0, False, False, None)
    assert loader_plan(None, workers=2).pin_memory is False


def test_imagefolder_on_cuda_asks_the_dataloader_for_workers_and_pinning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _folder(tmp_path)
    asked: list[dict[str, Any]] = []
    real = loader.DataLoader

    def spy(dataset: Any, **kw: Any) -> Any:
        asked.append(kw)  # then load in this process: no GPU, no worker start-up in tests
        return real(dataset, **{**kw, "num_workers": 0, "pin_memory": False,
                                "persistent_workers": False, "prefetch_factor": None})  # fmt: skip

    monkeypatch.setattr(loader, "DataLoader", spy)
    ds = DATASETS.create("imagefolder", root=str(tmp_path), image_size=8, workers=None)
    x, y = next(ds.train_batches(4, seed=0, device=torch.device("cuda", 0)))
    assert x.shape == (4, 3, 8, 8) and y.shape == (4,)
    assert asked[-1]["pin_memory"] is True and asked[-1]["num_workers"] >= 1
    assert asked[-1]["persistent_workers"] is True
    next(ds.train_batches(4, seed=0, device=torch.device("cpu")))
    assert asked[-1]["pin_memory"] is False and asked[-1]["num_workers"] == 0


def test_workers_do_not_change_the_batches(tmp_path: Path):
    _folder(tmp_path)
    seq = {}
    for workers in (0, 2):
        ds = DATASETS.create("imagefolder", root=str(tmp_path), image_size=8, workers=workers,
                             pad_crop_px=1, hflip=True)  # fmt: skip
        it = ds.train_batches(4, seed=3)
        seq[workers] = [next(it) for _ in range(5)]  # more than one epoch (12 train images)
    for (x0, y0), (x2, y2) in zip(seq[0], seq[2], strict=True):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
    for x, y in seq[0]:  # labels follow their images (class 1: mean ~0.6, class 0 ~0.25)
        assert all((float(img.mean()) > 0.4) == bool(lab) for img, lab in zip(x, y, strict=True))


def test_bad_workers_is_a_user_error(tmp_path: Path):
    from energybench.data.clipset import DatasetConfigError

    _folder(tmp_path)
    with pytest.raises(DatasetConfigError, match="workers"):
        DATASETS.create("imagefolder", root=str(tmp_path), workers=-1)


def test_the_training_loop_hands_the_device_to_the_task():
    got: list[Any] = []

    class WithDevice:
        def train_batches(self, model: Any, b: int, seed: int, device: Any = None) -> Any:
            got.append(device)
            return iter(())

    class Plugin:  # an older plug-in task: no device parameter
        def train_batches(self, model: Any, b: int, seed: int) -> Any:
            got.append("plain")
            return iter(())

    dev = torch.device("cuda", 1)
    task_batches(WithDevice(), torch.nn.Identity(), 2, 0, dev)  # type: ignore[arg-type]
    task_batches(Plugin(), torch.nn.Identity(), 2, 0, dev)  # type: ignore[arg-type]
    assert got == [dev, "plain"]
