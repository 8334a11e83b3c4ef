"""The ``frames`` dataset: SR benchmarks stored on disk as one folder of frames per clip.

Layouts (``root`` is the folder you downloaded; nothing is fetched here):

* Vid4: ``root/GT/<clip>/*.png`` and ``root/BIx4/<clip>/*.png`` → ``hr_dir: GT``,
  ``lr_dir: BIx4``. Without ``lr_dir`` the LR is made from HR with the BI degradation (MATLAB
  bicubic, 8-bit), which is how ``BIx4`` was produced.
* REDS: ``root/train_sharp/<clip>/00000000.png`` (and ``train_sharp_bicubic/X4/<clip>``) →
  ``hr_dir: train_sharp`` (``lr_dir: train_sharp_bicubic/X4``).
* Flat: ``root/<clip>/<frame>.png`` (no ``hr_dir``).

Splits are lists of clip specs: a clip folder name, optionally with a frame range, e.g.
``calendar`` or ``"000[0:50]"`` (quote it in YAML flow lists). Unless listed, every clip under
the HR folder that is not in ``train``/``val`` is a test clip. Frames are sorted naturally
(``im2`` before ``im10``); LR and HR must have the same frame count and HR = scale × LR (after
cropping HR to a multiple of the scale, like BasicSR's GTmod).

To run a suite such as ``suites/vsr-full.yaml`` on Vid4, replace its dataset (the dataset sits
under ``defaults``; replace the whole block, as ``video``'s params do not apply here)::

    energybench run suites/vsr-full.yaml --set \
        'defaults.dataset={name: frames, params: {root: /data/Vid4, hr_dir: GT, lr_dir: BIx4}}'

A suite that already uses ``frames`` only needs ``--set defaults.dataset.params.root=/data/Vid4``.

This module also hosts the clip-spec helpers (``name[start:stop]`` and the frame-range
disjointness check) that ``video`` reuses.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from energybench.data.clipset import ClipDataset, DatasetConfigError, FrameClip, open_image
from energybench.data.degrade import mod_crop

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_SPEC_RE = re.compile(r"\s*([^\[\]\s]+)\s*(?:\[\s*(\d*)\s*:\s*(\d*)\s*\])?\s*")


# ---------------------------------------------------------------------- clip specs
@dataclass(frozen=True)
class ClipRange:
    """Frames ``[start, stop)`` of clip ``name`` used; ``[start, end)`` is the declared segment.

    ``stop`` is ``end`` shortened by ``max_frames``. Disjointness is checked on the declared
    segments, so a valid split stays valid whatever ``max_frames`` is.
    """

    name: str
    start: int
    stop: int
    end: int
    label: str  # as shown in reports: ``name`` or ``name[start:end]``

    @property
    def frames(self) -> int:
        return self.stop - self.start


def parse_clip_spec(spec: Any) -> tuple[str, int | None, int | None]:
    """``"bikes"`` → ``("bikes", None, None)``; ``"bikes[0:60]"`` → ``("bikes", 0, 60)``."""
    if not isinstance(spec, str):
        raise DatasetConfigError(
            f"clip spec must be a string like 'name' or 'name[0:60]', got {spec!r}"
        )
    m = _SPEC_RE.fullmatch(spec)
    if not m:
        raise DatasetConfigError(
            f"cannot read clip spec {spec!r}; expected 'name' or 'name[start:stop]' "
            '(quote it in YAML flow lists: ["bikes[0:60]"])'
        )
    name, a, b = m.group(1), m.group(2), m.group(3)
    return name, (int(a) if a else None), (int(b) if b else None)


def resolve_range(
    name: str,
    start: int | None,
    stop: int | None,
    total: int,
    max_frames: int | None,
) -> ClipRange:
    """Clamp a parsed spec to the clip's ``total`` frames and ``max_frames``; errors if empty."""
    a = 0 if start is None else start
    b = total if stop is None else stop
    label = name if start is None and stop is None else f"{name}[{a}:{b}]"
    if b > total or a >= b:
        raise DatasetConfigError(
            f"clip '{label}': frame range {a}:{b} is empty or outside the clip's {total} frames "
            f"(valid: 0 <= start < stop <= {total})"
        )
    stop = b if max_frames is None else min(b, a + max_frames)
    return ClipRange(name, a, stop, b, label)


def check_disjoint_ranges(splits: dict[str, list[ClipRange]], kind: str = "clip") -> None:
    """Raise if a declared training segment overlaps a val/test segment of the same clip."""
    for held in ("val", "test"):
        for t in splits.get("train", []):
            for e in splits.get(held, []):
                if t.name != e.name:
                    continue
                lo, hi = max(t.start, e.start), min(t.end, e.end)
                if lo < hi:
                    raise DatasetConfigError(
                        f"{kind} '{t.name}': train '{t.label}' (frames {t.start}-{t.end - 1}) "
                        f"and {held} '{e.label}' (frames {e.start}-{e.end - 1}) share frames "
                        f"{lo}-{hi - 1}; training frames must not be evaluated on — use disjoint "
                        f"ranges such as '{t.name}[0:60]' and '{t.name}[60:120]'"
                    )


def spec_list(value: Any, what: str) -> list[str]:
    """A split parameter as a list of clip specs (a lone string is one clip)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise DatasetConfigError(f"{what}: expected a list of clip names, got {value!r}")
    return list(value)


def did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


# ---------------------------------------------------------------------- files
def natural_key(s: str) -> list[Any]:
    """Sort key putting ``im2`` before ``im10``."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", s)]


def list_frames(folder: Path) -> list[Path]:
    """Image files of ``folder``, naturally sorted."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (grey/alpha converted)."""
    with open_image(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file header (no decode)."""
    with open_image(path, decode=False) as im:
        return im.size


def _load_frames(files: list[Path], what: str) -> np.ndarray:
    first = read_rgb(files[0])
    out = np.empty((len(files), *first.shape), np.uint8)
    out[0] = first
    for i, f in enumerate(files[1:], 1):
        img = read_rgb(f)
        if img.shape != first.shape:
            raise DatasetConfigError(
                f"{what}: frame {f.name} is {img.shape[1]}x{img.shape[0]} but {files[0].name} is "
                f"{first.shape[1]}x{first.shape[0]}; all frames of a clip must have one size"
            )
        out[i] = img
    return out


# ---------------------------------------------------------------------- dataset
class FrameFolderDataset(ClipDataset):
    """Video/image SR ×scale on clips stored as folders of frames (Vid4, REDS, …)."""

    def __init__(
        self,
        root: str | None = None,
        hr_dir: str | None = None,
        lr_dir: str | None = None,
        train: list[str] | None = None,
        val: list[str] | None = None,
        test: list[str] | None = None,
        max_frames: int | None = None,
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
        if root is None:
            raise DatasetConfigError(
                "frames: set 'root' to the dataset folder "
                "(e.g. --set defaults.dataset.params.root=/data/Vid4)"
            )
        if max_frames is not None and max_frames < 1:
            raise DatasetConfigError(f"max_frames must be >= 1, got {max_frames}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetConfigError(f"frames: root folder {self.root} does not exist")
        self.hr_root = self._subdir(hr_dir, "hr_dir")
        self.lr_root = self._subdir(lr_dir, "lr_dir") if lr_dir is not None else None
        available = sorted((p.name for p in self.hr_root.iterdir() if p.is_dir()), key=natural_key)
        if not available:
            subs = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            hint = f"; it holds {', '.join(subs)} — set hr_dir (and lr_dir)" if subs else ""
            raise DatasetConfigError(f"frames: no clip folders under {self.hr_root}{hint}")
        self.available = available
        self.max_frames = max_frames

        specs = {"train": spec_list(train, "train"), "val": spec_list(val, "val")}
        used = {parse_clip_spec(s)[0] for s in specs["train"] + specs["val"]}
        specs["test"] = (
            [n for n in available if n not in used] if test is None else spec_list(test, "test")
        )
        self._files: dict[str, tuple[list[Path], list[Path] | None]] = {}
        self.ranges: dict[str, list[ClipRange]] = {
            split: [self._resolve(s) for s in specs[split]] for split in ("train", "val", "test")
        }
        check_disjoint_ranges(self.ranges, kind="clip")

    def _subdir(self, sub: str | None, what: str) -> Path:
        path = self.root / sub if sub else self.root
        if not path.is_dir():
            subs = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise DatasetConfigError(
                f"frames: {what} folder {path} does not exist (under {self.root}: "
                f"{', '.join(subs) or 'nothing'})"
            )
        return path

    def _resolve(self, spec: str) -> ClipRange:
        name, a, b = parse_clip_spec(spec)
        if name not in self.available:
            raise DatasetConfigError(
                f"unknown clip '{name}'{did_you_mean(name, self.available)} "
                f"(under {self.hr_root}: {', '.join(self.available)})"
            )
        hr_files, _ = self._clip_files(name)
        return resolve_range(name, a, b, len(hr_files), self.max_frames)

    def _clip_files(self, name: str) -> tuple[list[Path], list[Path] | None]:
        """HR (and LR) frame files of a clip, checked for count and size; cached."""
        if name in self._files:
            return self._files[name]
        hr_files = list_frames(self.hr_root / name)
        if not hr_files:
            subs = sorted(p.name for p in (self.hr_root / name).iterdir() if p.is_dir())
            hint = (
                f"; it holds folders ({', '.join(subs[:5])}) — is it a layout folder? set hr_dir"
                " (e.g. hr_dir: GT, lr_dir: BIx4 for Vid4)"
                if subs
                else ""
            )
            raise DatasetConfigError(
                f"clip '{name}': no frames ({', '.join(IMAGE_EXTS)}) in {self.hr_root / name}{hint}"
            )
        lr_files = None
        if self.lr_root is not None:
            lr_folder = self.lr_root / name
            if not lr_folder.is_dir():
                raise DatasetConfigError(f"clip '{name}': LR folder {lr_folder} does not exist")
            lr_files = list_frames(lr_folder)
            if len(lr_files) != len(hr_files):
                raise DatasetConfigError(
                    f"clip '{name}': {len(hr_files)} HR frames in {self.hr_root / name} but "
                    f"{len(lr_files)} LR frames in {lr_folder}"
                )
            self._check_sizes(name, image_size(hr_files[0]), image_size(lr_files[0]))
        self._files[name] = (hr_files, lr_files)
        return self._files[name]

    def _check_sizes(self, name: str, hr: tuple[int, int], lr: tuple[int, int]) -> None:
        s = self.scale
        want = (hr[0] - hr[0] % s, hr[1] - hr[1] % s)
        if (lr[0] * s, lr[1] * s) != want:
            raise DatasetConfigError(
                f"clip '{name}': HR frames are {hr[0]}x{hr[1]} but LR frames are "
                f"{lr[0]}x{lr[1]}; expected LR = HR / {s} = {want[0] // s}x{want[1] // s} "
                "(check lr_dir and scale)"
            )

    def _load_split(self, split: str) -> list[FrameClip]:
        out = []
        for r in self.ranges[split]:
            hr_files, lr_files = self._clip_files(r.name)
            hr = _load_frames(hr_files[r.start : r.stop], f"clip '{r.name}' (HR)")
            source = str(self.hr_root / r.name)
            if lr_files is None:
                clip = FrameClip.from_hr(r.label, hr, self.scale, source=source)
                clip.meta["lr"] = "BI degradation of HR"
            else:
                assert self.lr_root is not None  # LR files come from lr_root only
                lr = _load_frames(lr_files[r.start : r.stop], f"clip '{r.name}' (LR)")
                self._check_sizes(r.name, hr.shape[2:0:-1], lr.shape[2:0:-1])
                hr = np.ascontiguousarray(mod_crop(hr, self.scale, hw_axes=(1, 2)))
                clip = FrameClip(r.label, hr, lr, source)
                clip.meta["lr"] = str(self.lr_root / r.name)
            clip.meta["frame_range"] = f"{r.start}:{r.stop}"
            out.append(clip)
        return out

    @property
    def train_items(self) -> int:
        """Training frames (one epoch)."""
        return sum(r.frames for r in self.ranges["train"])

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["source"] = f"frame folders under {self.hr_root}" + (
            f" with LR from {self.lr_root}" if self.lr_root else " (LR by BI degradation)"
        )
        return info


__all__ = [
    "ClipRange",
    "FrameFolderDataset",
    "check_disjoint_ranges",
    "parse_clip_spec",
    "resolve_range",
]
