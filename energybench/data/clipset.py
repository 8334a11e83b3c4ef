"""Shared machinery of the clip-based datasets (photos, video, frame folders).

A dataset here is a set of :class:`FrameClip`s per split, each holding 8-bit HR frames and the
matching 8-bit LR frames (stored LR, or made once with the BI degradation of the whole frame, as
saved LR PNGs are). :class:`ClipDataset` turns them into aligned random training patches
(optionally several consecutive frames, with flips/transposes), evaluation :class:`Clip`s
(optionally centre-cropped and shortened) and serving inputs.

Subclasses only say where frames come from (:meth:`ClipDataset._load_split`). Nothing here
downloads anything, measures energy or knows about models.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from energybench.data.base import Clip, SRDataset
from energybench.data.degrade import bicubic_degrade, imresize, mod_crop
from energybench.errors import UserError

SPLITS = ("train", "val", "test")


class DatasetConfigError(UserError, ValueError):
    """A dataset parameter that cannot work; ``str()`` is a user-facing sentence."""


@contextlib.contextmanager
def open_image(path: Path | str, decode: bool = True) -> Iterator[Any]:
    """``PIL.Image.open(path)`` (decoded unless ``decode`` is False: the header only); a file
    that cannot be read as an image (not an image, truncated, a decompression bomb) is bad input
    naming it (:class:`DatasetConfigError`, exit 2), not a bug."""
    from PIL import Image

    try:
        im = Image.open(path)
        if decode:
            im.load()  # a truncated file fails here, inside this message
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetConfigError(
            f"{path}: cannot be decoded as an image ({type(exc).__name__}: {str(exc)[:200]}); "
            "it is damaged or not an image: replace or remove it"
        ) from None
    try:
        yield im
    finally:
        im.close()


def parse_size(value: str | int | list[int] | tuple[int, int] | None, what: str) -> tuple[int, int]:
    """``"WxH"``, an int (square) or ``[W, H]`` → ``(W, H)``."""
    if isinstance(value, bool) or value is None:
        raise DatasetConfigError(f"{what}: expected 'WxH', an integer or [W, H], got {value!r}")
    if isinstance(value, int):
        w = h = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", value)
        if not m:
            raise DatasetConfigError(f"{what}: expected 'WxH' such as '320x180', got {value!r}")
        w, h = int(m.group(1)), int(m.group(2))
    else:
        if len(value) != 2:
            raise DatasetConfigError(f"{what}: expected [W, H], got {value!r}")
        w, h = int(value[0]), int(value[1])
    if w <= 0 or h <= 0:
        raise DatasetConfigError(f"{what}: sizes must be positive, got {w}x{h}")
    return w, h


def to_float(u8: np.ndarray) -> torch.Tensor:
    """(…, H, W, 3) uint8 → (…, 3, H, W) float32 in [0, 1]."""
    arr = np.ascontiguousarray(u8)
    if not arr.flags.writeable:
        arr = arr.copy()
    t = torch.from_numpy(arr)
    return t.movedim(-1, -3).to(torch.float32).div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(…, 3, H, W) float in [0, 1] → (…, H, W, 3) uint8 (rounded)."""
    return (x.clamp(0, 1) * 255.0).round_().to(torch.uint8).movedim(-3, -1).contiguous().numpy()


def degrade_frames(hr: np.ndarray, scale: int, chunk: int = 8) -> np.ndarray:
    """BI-degrade 8-bit frames (T, H, W, 3) → (T, H/s, W/s, 3) uint8, a few frames at a time."""
    out = []
    for i in range(0, hr.shape[0], chunk):
        out.append(to_uint8(bicubic_degrade(to_float(hr[i : i + chunk]), scale, quantize=True)))
    return np.concatenate(out, axis=0)


@dataclass
class FrameClip:
    """8-bit HR frames (T, H, W, 3) and the aligned LR frames (T, H/s, W/s, 3) of one clip."""

    name: str
    hr: np.ndarray
    lr: np.ndarray
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.hr.shape[0])

    @classmethod
    def from_hr(cls, name: str, hr: np.ndarray, scale: int, source: str = "") -> FrameClip:
        """Mod-crop HR to the scale and make LR with the BI degradation."""
        hr = np.ascontiguousarray(mod_crop(hr, scale, hw_axes=(1, 2)))
        return cls(name, hr, degrade_frames(hr, scale), source)


class ClipDataset(SRDataset):
    """An :class:`SRDataset` over :class:`FrameClip`s; subclasses implement ``_load_split``."""

    def __init__(
        self,
        *,
        scale: int = 4,
        patch_size: int = 64,
        eval_frames: int | None = None,
        eval_crop: str | int | list[int] | None = None,
        serve_lr: str | int | list[int] = "160x90",
        augment: bool = True,
    ) -> None:
        if scale < 1:
            raise DatasetConfigError(f"scale must be >= 1, got {scale}")
        if patch_size < scale or patch_size % scale:
            raise DatasetConfigError(
                f"patch_size {patch_size} must be a positive multiple of the scale {scale}"
            )
        self.scale = scale
        self.patch_size = patch_size
        self.eval_frames = eval_frames
        self.eval_crop = parse_size(eval_crop, "eval_crop") if eval_crop is not None else None
        self.serve_lr = parse_size(serve_lr, "serve_lr")
        self.augment = augment
        self._splits: dict[str, list[FrameClip]] = {}
        self._eval: dict[str, list[Clip]] = {}

    # ------------------------------------------------------------------ for subclasses
    def _load_split(self, split: str) -> list[FrameClip]:
        """The clips of ``split`` ("train", "val" or "test"), frames in memory."""
        raise NotImplementedError

    def _train_sequences(self, frames: int) -> list[FrameClip]:
        """Training clips with at least ``frames`` frames (photos override this)."""
        return [c for c in self.split("train") if c.frames >= frames]

    # ------------------------------------------------------------------ shared
    def split(self, split: str) -> list[FrameClip]:
        """The raw 8-bit clips of a split, loaded once and cached."""
        if split not in SPLITS:
            raise DatasetConfigError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self._splits:
            self._splits[split] = self._load_split(split)
        return self._splits[split]

    def train_batches(
        self, batch_size: int, seed: int, frames: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless aligned random (lr, hr) patches; see :meth:`SRDataset.train_batches`."""
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        p, s = self.patch_size, self.scale
        pool = [c for c in self._train_sequences(frames) if min(c.hr.shape[1:3]) >= p]
        if not pool:
            raise DatasetConfigError(
                f"{type(self).__name__}: no training clip has {frames} frame(s) of at least "
                f"{p}x{p} pixels; add training clips or lower patch_size"
            )
        weights = np.array(
            [(c.frames - frames + 1) * c.hr.shape[1] * c.hr.shape[2] for c in pool], float
        )
        weights /= weights.sum()
        return self._batch_iter(pool, weights, batch_size, seed, frames, p, s)

    def _batch_iter(
        self,
        pool: list[FrameClip],
        weights: np.ndarray,
        batch_size: int,
        seed: int,
        frames: int,
        p: int,
        s: int,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(seed)
        q = p // s
        while True:
            hr = np.empty((batch_size, frames, p, p, 3), np.uint8)
            lr = np.empty((batch_size, frames, q, q, 3), np.uint8)
            for i in range(batch_size):
                c = pool[int(rng.choice(len(pool), p=weights))]
                t0 = int(rng.integers(0, c.frames - frames + 1))
                y = int(rng.integers(0, c.lr.shape[1] - q + 1))
                x = int(rng.integers(0, c.lr.shape[2] - q + 1))
                h_patch = c.hr[t0 : t0 + frames, y * s : y * s + p, x * s : x * s + p]
                l_patch = c.lr[t0 : t0 + frames, y : y + q, x : x + q]
                if self.augment:
                    if rng.random() < 0.5:
                        h_patch, l_patch = h_patch[:, :, ::-1], l_patch[:, :, ::-1]
                    if rng.random() < 0.5:
                        h_patch, l_patch = h_patch[:, ::-1], l_patch[:, ::-1]
                    if rng.random() < 0.5:
                        h_patch = h_patch.transpose(0, 2, 1, 3)
                        l_patch = l_patch.transpose(0, 2, 1, 3)
                hr[i], lr[i] = h_patch, l_patch
            lr_t, hr_t = to_float(lr), to_float(hr)
            if frames == 1:
                lr_t, hr_t = lr_t[:, 0], hr_t[:, 0]
            yield lr_t, hr_t

    def clips(self, split: str) -> list[Clip]:
        """Evaluation clips of ``split`` ("val" or "test"), cropped/shortened as configured."""
        if split not in ("val", "test"):
            raise DatasetConfigError(f"clips() serves 'val' or 'test', not {split!r}")
        if split not in self._eval:
            self._eval[split] = [self._eval_clip(c) for c in self.split(split)]
        return self._eval[split]

    def _eval_clip(self, c: FrameClip) -> Clip:
        s = self.scale
        t = c.frames if self.eval_frames is None else min(c.frames, self.eval_frames)
        hr, lr = c.hr[:t], c.lr[:t]
        if self.eval_crop is not None:
            cw, ch = self.eval_crop
            h, w = lr.shape[1:3]
            lh, lw = min(h, max(1, ch // s)), min(w, max(1, cw // s))
            y0, x0 = (h - lh) // 2, (w - lw) // 2
            lr = lr[:, y0 : y0 + lh, x0 : x0 + lw]
            hr = hr[:, y0 * s : (y0 + lh) * s, x0 * s : (x0 + lw) * s]
        return Clip(c.name, to_float(lr), to_float(hr))

    def sample_lr(self, batch_size: int, seed: int = 0) -> torch.Tensor:
        """(batch_size, 3, h, w) LR crops at ``serve_lr`` from the test (else val/train) clips.

        Frames smaller than the serving size are first bicubic-enlarged to cover it.
        """
        pool: list[FrameClip] = []
        for split in ("test", "val", "train"):
            pool = self.split(split)
            if pool:
                break
        if not pool:
            raise DatasetConfigError(f"{type(self).__name__} has no clips to serve from")
        w, h = self.serve_lr
        rng = np.random.default_rng(seed)
        out = torch.empty(batch_size, 3, h, w)
        for i in range(batch_size):
            c = pool[int(rng.integers(len(pool)))]
            frame = to_float(c.lr[int(rng.integers(c.frames))])
            fh, fw = frame.shape[-2:]
            if fh < h or fw < w:
                k = max(h / fh, w / fw)
                size = (max(h, math.ceil(fh * k)), max(w, math.ceil(fw * k)))
                frame = imresize(frame, size=size).clamp(0, 1)
                fh, fw = size
            y = int(rng.integers(0, fh - h + 1))
            x = int(rng.integers(0, fw - w + 1))
            out[i] = frame[:, y : y + h, x : x + w]
        return out

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "dataset": type(self).__name__,
            "scale": self.scale,
            "degradation": "BI: MATLAB bicubic downscaling (antialiased, a=-0.5), 8-bit LR",
            "patch_size_hr": self.patch_size,
            "eval_frames": self.eval_frames,
            "eval_crop_hr": "x".join(map(str, self.eval_crop)) if self.eval_crop else None,
            "serve_lr": "x".join(map(str, self.serve_lr)),
            "splits": {},
        }
        for split in SPLITS:
            info["splits"][split] = [
                {
                    "name": c.name,
                    "source": c.source,
                    "frames": c.frames,
                    "hr": f"{c.hr.shape[2]}x{c.hr.shape[1]}",
                    **c.meta,
                }
                for c in self.split(split)
            ]
        return info
