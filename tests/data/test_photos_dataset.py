"""The ``photos`` dataset: splits, shapes, LR/HR alignment, determinism, serving inputs."""

from __future__ import annotations

import pytest
import torch

from energybench.data import DATASETS
from energybench.data.clipset import DatasetConfigError
from energybench.data.degrade import bicubic_degrade


@pytest.fixture(scope="module")
def ds():
    return DATASETS.create(
        "photos",
        train=["coffee", "page"],
        val=["coins"],
        test=["astronaut"],
        patch_size=48,
        augment=False,
        serve_lr="40x30",
        seq_size="96x80",
        seq_frames=6,
    )


def test_train_batches_shapes_alignment_and_determinism(ds) -> None:
    lr, hr = next(ds.train_batches(4, seed=3))
    assert lr.shape == (4, 3, 12, 12) and hr.shape == (4, 3, 48, 48)
    assert 0 <= lr.min() and lr.max() <= 1
    # LR is the BI degradation of the whole photo, cropped: away from the patch border it
    # equals degrading the HR patch itself.
    again = bicubic_degrade(hr, 4)
    assert (again - lr)[..., 3:-3, 3:-3].abs().max() < 2.5 / 255
    lr2, hr2 = next(ds.train_batches(4, seed=3))
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    lr3, _ = next(ds.train_batches(4, seed=4))
    assert not torch.equal(lr, lr3)


def test_sequences_for_recurrent_models(ds) -> None:
    lr, hr = next(ds.train_batches(2, seed=0, frames=4))
    assert lr.shape == (2, 4, 3, 12, 12) and hr.shape == (2, 4, 3, 48, 48)
    assert (hr[:, 1:] - hr[:, :-1]).abs().mean() > 1e-3  # the camera moves


def test_clips_and_serving(ds) -> None:
    (clip,) = ds.clips("test")
    assert clip.name == "astronaut"
    assert clip.lr.shape == (1, 3, 128, 128) and clip.hr.shape == (1, 3, 512, 512)
    assert [c.name for c in ds.clips("val")] == ["coins"]
    assert ds.sample_lr(3, seed=1).shape == (3, 3, 30, 40)
    info = ds.describe()
    assert [c["name"] for c in info["splits"]["train"]] == ["coffee", "page"]
    with pytest.raises(DatasetConfigError):
        ds.clips("train")


def test_centre_crop_and_mod_crop() -> None:
    d = DATASETS.create("photos", train=["page"], val=[], test=["chelsea"], test_crop="64x48")
    (clip,) = d.clips("test")
    assert clip.hr.shape == (1, 3, 48, 64) and clip.lr.shape == (1, 3, 12, 16)
    whole = DATASETS.create("photos", train=["page"], val=[], test=["chelsea"]).clips("test")[0]
    assert whole.hr.shape == (1, 3, 300, 448)  # 300x451 cropped to a multiple of 4


def test_split_errors() -> None:
    with pytest.raises(DatasetConfigError, match="both"):
        DATASETS.create("photos", train=["coffee"], test=["coffee"])
    with pytest.raises(DatasetConfigError, match="did you mean 'astronaut'"):
        DATASETS.create("photos", test=["astronot"])
    with pytest.raises(DatasetConfigError):
        DATASETS.create("photos", patch_size=50)
    assert DATASETS.check_params("photos", {"patch_size": 64, "bogus": 1})
