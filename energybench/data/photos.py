"""The ``photos`` dataset: image SR on the photographs bundled with scikit-image (no downloads).

Train/val/test photos are chosen by name (disjoint splits enforced). Training draws random HR
patches with their aligned LR from the BI degradation of the whole photo; evaluation clips are
one-frame clips of whole (mod-cropped to the scale) or centre-cropped photos. Recurrent models
asking for ``frames > 1`` get short sequences synthesised from the training photos by smooth
sub-pixel camera pans (:func:`pan_sequence`), so every model can train on this dataset.

This module also hosts the photo table and the pan generator that ``video`` reuses. It reads
files only from scikit-image's own data folder and never fetches anything.
"""

from __future__ import annotations

import math
import os
import zlib
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from energybench.data.clipset import (
    ClipDataset,
    DatasetConfigError,
    FrameClip,
    parse_size,
    to_float,
    to_uint8,
)

# name -> file in skimage/data (all shipped inside the scikit-image wheel). Grey photos are
# replicated to RGB; synthetic images (colour wheels, chessboards, phantoms) are left out.
PHOTO_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "cell": "cell.png",
    "chelsea": "chelsea.png",
    "clock": "clock_motion.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "moon": "moon.png",
    "motorcycle": "motorcycle_left.png",
    "page": "page.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
    "text": "text.png",
}
PHOTO_ALIASES = {"cat": "chelsea", "immunohistochemistry": "ihc", "hubble_deep_field": "hubble"}

DEFAULT_TRAIN = [
    "coffee", "rocket", "motorcycle", "ihc", "camera", "brick",
    "gravel", "grass", "moon", "page", "cell", "retina",
]  # fmt: skip
DEFAULT_VAL = ["coins"]
DEFAULT_TEST = ["astronaut", "chelsea"]


def canonical_photo(name: str) -> str:
    """The table name of a photo (aliases resolved); a user-facing error when unknown."""
    key = PHOTO_ALIASES.get(name, name)
    if key not in PHOTO_FILES:
        import difflib

        close = difflib.get_close_matches(name, list(PHOTO_FILES) + list(PHOTO_ALIASES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DatasetConfigError(
            f"unknown photo '{name}'{hint} (bundled with scikit-image: "
            f"{', '.join(sorted(PHOTO_FILES))})"
        )
    return key


@lru_cache(maxsize=32)
def load_photo(name: str) -> np.ndarray:
    """A bundled photo as (H, W, 3) uint8 RGB (read-only; cached)."""
    import skimage.data
    import skimage.io

    path = os.path.join(skimage.data.__path__[0], PHOTO_FILES[canonical_photo(name)])
    if not os.path.exists(path):
        raise DatasetConfigError(
            f"scikit-image's bundled photo {path} is missing; reinstall scikit-image"
        )
    img = np.asarray(skimage.io.imread(path))
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)
    img.setflags(write=False)
    return img


def _name_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def pan_sequence(
    image: np.ndarray, frames: int, size: tuple[int, int], seed: int = 0
) -> np.ndarray:
    """Frames (T, h, w, 3) uint8 of a camera panning smoothly over ``image`` (H, W, 3) uint8.

    ``size`` is the frame's (w, h). The window translates with a random sub-pixel velocity
    (0.3 to 2.5 px/frame per axis) plus a gentle sinusoidal wobble, deterministic in ``seed``;
    frames are resampled bicubically and rounded to 8 bits. Images smaller than the window
    are enlarged first.
    """
    w, h = size
    img = to_float(image)
    ih, iw = img.shape[-2:]
    margin = 8
    if ih < h + margin or iw < w + margin:
        k = max((h + margin) / ih, (w + margin) / iw)
        img = F.interpolate(
            img[None],
            size=(math.ceil(ih * k), math.ceil(iw * k)),
            mode="bicubic",
            align_corners=False,
        )[0].clamp(0, 1)
        ih, iw = img.shape[-2:]
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)
    paths = []
    for room in (iw - w - 2, ih - h - 2):
        v = rng.uniform(0.3, 2.5) * rng.choice([-1.0, 1.0])
        amp, period, phase = rng.uniform(0.5, 3.0), rng.uniform(8, 24), rng.uniform(0, 2 * np.pi)
        p = v * t + amp * np.sin(2 * np.pi * t / period + phase)
        span = p.max() - p.min()
        if span > room:  # too fast for this image: slow down to fit
            p = p * (room / span)
            span = room
        start = rng.uniform(0, room - span) - p.min() + 1
        paths.append(p + start)
    dx, dy = (torch.as_tensor(a, dtype=torch.float32) for a in paths)
    # Normalised grid (align_corners=False): pixel centre i ↦ (2i + 1)/n - 1.
    xs = torch.arange(w, dtype=torch.float32)
    ys = torch.arange(h, dtype=torch.float32)
    gx = (2 * (xs[None, :] + dx[:, None]) + 1) / iw - 1  # (T, w)
    gy = (2 * (ys[None, :] + dy[:, None]) + 1) / ih - 1  # (T, h)
    grid = torch.stack(
        [gx[:, None, :].expand(frames, h, w), gy[:, :, None].expand(frames, h, w)], dim=-1
    )
    out = F.grid_sample(
        img[None].expand(frames, -1, -1, -1), grid, mode="bicubic", align_corners=False
    )
    return to_uint8(out)


def _check_disjoint(splits: dict[str, list[str]]) -> None:
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        for name in splits[split]:
            if name in seen and seen[name] != split:
                if "train" in (seen[name], split):
                    raise DatasetConfigError(
                        f"photo '{name}' is in both '{seen[name]}' and '{split}'; training "
                        "photos must not be evaluated on — move it to one split"
                    )
            seen.setdefault(name, split)


class PhotosDataset(ClipDataset):
    """Image SR ×scale on scikit-image's bundled photos (BI degradation, one-frame clips)."""

    def __init__(
        self,
        train: list[str] | None = None,
        val: list[str] | None = None,
        test: list[str] | None = None,
        patch_size: int = 96,
        test_crop: str | int | list[int] | None = None,
        serve_lr: str | int | list[int] = "128x128",
        scale: int = 4,
        augment: bool = True,
        seq_size: str | int | list[int] = "192x192",
        seq_frames: int = 16,
    ) -> None:
        super().__init__(
            scale=scale,
            patch_size=patch_size,
            eval_frames=None,
            eval_crop=test_crop,
            serve_lr=serve_lr,
            augment=augment,
        )
        self.names = {
            "train": [canonical_photo(n) for n in (DEFAULT_TRAIN if train is None else train)],
            "val": [canonical_photo(n) for n in (DEFAULT_VAL if val is None else val)],
            "test": [canonical_photo(n) for n in (DEFAULT_TEST if test is None else test)],
        }
        _check_disjoint(self.names)
        self.seq_size = parse_size(seq_size, "seq_size")
        self.seq_frames = seq_frames
        self._sequences: list[FrameClip] | None = None

    def _load_split(self, split: str) -> list[FrameClip]:
        return [
            FrameClip.from_hr(n, load_photo(n)[None], self.scale, source=f"skimage:{n}")
            for n in self.names[split]
        ]

    def _train_sequences(self, frames: int) -> list[FrameClip]:
        if frames == 1:
            return self.split("train")
        if self._sequences is None or self._sequences[0].frames < frames:
            t = max(self.seq_frames, frames)
            self._sequences = [
                FrameClip.from_hr(
                    f"pan:{n}",
                    pan_sequence(load_photo(n), t, self.seq_size, _name_seed(n)),
                    self.scale,
                    source=f"skimage:{n} (synthetic pan)",
                )
                for n in self.names["train"]
            ]
        return self._sequences

    def describe(self) -> dict:
        info = super().describe()
        info["source"] = "scikit-image bundled photographs (skimage/data), no downloads"
        return info
