"""The ``frames`` dataset on a tiny fake Vid4 tree: layouts, sorting, LR, splits, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from energybench.data import DATASETS
from energybench.data.clipset import DatasetConfigError, degrade_frames

N = 10  # frames per clip: im1 … im10 (natural sort matters)


def _write(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames, 1):
        Image.fromarray(f).save(folder / f"im{i}.png")


@pytest.fixture(scope="module")
def vid4(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("Vid4")
    rng = np.random.default_rng(0)
    hr = {}
    for name in ("calendar", "city"):
        frames = rng.integers(0, 256, (N, 48, 64, 3), dtype=np.uint8)
        frames[:, 0, 0, 0] = np.arange(N)  # frame index stamp
        hr[name] = frames
        _write(root / "GT" / name, frames)
        _write(root / "BIx4" / name, degrade_frames(frames, 4))
    return root, hr


def test_with_stored_lr(vid4) -> None:
    root, hr = vid4
    d = DATASETS.create("frames", root=str(root), hr_dir="GT", lr_dir="BIx4")
    assert [c.name for c in d.split("test")] == ["calendar", "city"]
    assert d.split("train") == [] and d.split("val") == []
    c = d.split("test")[0]
    assert np.array_equal(c.hr, hr["calendar"])  # natural order: im1, im2, …, im10
    assert np.array_equal(c.lr, degrade_frames(hr["calendar"], 4))
    (clip, _) = d.clips("test")
    assert clip.lr.shape == (N, 3, 12, 16) and clip.hr.shape == (N, 3, 48, 64)
    assert d.sample_lr(2).shape == (2, 3, 45, 80)
    assert "BIx4" in d.describe()["source"]


def test_generated_lr_splits_and_ranges(vid4) -> None:
    root, hr = vid4
    d = DATASETS.create(
        "frames", root=str(root), hr_dir="GT", train=["calendar"], max_frames=6, patch_size=32
    )
    assert [c.name for c in d.split("test")] == ["city"]  # unlisted clips are test clips
    (c,) = d.split("test")
    assert c.frames == 6 and np.array_equal(c.lr, degrade_frames(hr["city"][:6], 4))
    lr, hr_b = next(d.train_batches(2, seed=0, frames=4))
    assert lr.shape == (2, 4, 3, 8, 8) and hr_b.shape == (2, 4, 3, 32, 32)
    assert d.train_items == 6
    seg = DATASETS.create(
        "frames", root=str(root), hr_dir="GT", lr_dir="BIx4", train=["calendar[0:5]"],
        test=["calendar[5:10]"],
    )  # fmt: skip
    (t,) = seg.split("test")
    assert t.name == "calendar[5:10]" and np.array_equal(t.hr, hr["calendar"][5:])


def test_flat_layout(tmp_path) -> None:
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    _write(tmp_path / "000", frames)
    d = DATASETS.create("frames", root=str(tmp_path))
    assert [c.name for c in d.split("test")] == ["000"]
    assert d.split("test")[0].lr.shape == (2, 4, 4, 3)


def test_errors(vid4, tmp_path) -> None:
    root, hr = vid4
    with pytest.raises(DatasetConfigError, match="set 'root'"):
        DATASETS.create("frames")
    with pytest.raises(DatasetConfigError, match="does not exist"):
        DATASETS.create("frames", root=str(tmp_path / "nope"))
    with pytest.raises(DatasetConfigError, match="hr_dir folder .* does not exist"):
        DATASETS.create("frames", root=str(root), hr_dir="HR")
    with pytest.raises(DatasetConfigError, match="set hr_dir"):  # pointed at the Vid4 root
        DATASETS.create("frames", root=str(root))
    with pytest.raises(DatasetConfigError, match="did you mean 'calendar'"):
        DATASETS.create("frames", root=str(root), hr_dir="GT", test=["calender"])
    with pytest.raises(DatasetConfigError, match="share frames 3-4"):
        DATASETS.create(
            "frames", root=str(root), hr_dir="GT", train=["city[0:5]"], test=["city[3:8]"]
        )

    bad = tmp_path / "bad"
    (bad / "GT" / "empty").mkdir(parents=True)
    with pytest.raises(DatasetConfigError, match="clip 'empty': no frames"):
        DATASETS.create("frames", root=str(bad), hr_dir="GT")
    (bad / "GT" / "empty").rmdir()
    _write(bad / "GT" / "a", hr["city"][:4])
    _write(bad / "LR" / "a", degrade_frames(hr["city"][:3], 4))
    with pytest.raises(DatasetConfigError, match="4 HR frames .* but 3 LR frames"):
        DATASETS.create("frames", root=str(bad), hr_dir="GT", lr_dir="LR")
    _write(bad / "LR2" / "a", degrade_frames(hr["city"][:4], 2))
    with pytest.raises(DatasetConfigError, match="expected LR = HR / 4 = 16x12"):
        DATASETS.create("frames", root=str(bad), hr_dir="GT", lr_dir="LR2")
    with pytest.raises(DatasetConfigError, match="LR folder .* does not exist"):
        _write(bad / "GT" / "b", hr["city"][:1])
        DATASETS.create("frames", root=str(bad), hr_dir="GT", lr_dir="LR", test=["b"])
    mixed = tmp_path / "mixed" / "clip"
    _write(mixed, hr["city"][:2])
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(mixed / "im3.png")
    d = DATASETS.create("frames", root=str(tmp_path / "mixed"))
    with pytest.raises(DatasetConfigError, match="all frames of a clip must have one size"):
        d.split("test")
