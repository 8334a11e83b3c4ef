"""Task adaptors: what 'a training batch', 'the loss', 'one served item' and 'quality' mean.

The runner, trainer and server are task-agnostic and go through a :class:`Task`: super-resolution
(image or online video, here) and image classification
(:mod:`energybench.tasks.classification`). Tasks never measure energy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from energybench.data.base import SRDataset
from energybench.models.sr.base import online
from energybench.suite.schema import EvaluateSettings
from energybench.tasks.registry import SR_QUALITY


class Task:
    """Interface the lifecycle uses; one implementation per kind of workload."""

    quality_keys: tuple[str, ...] = ()

    def train_batches(self, model: nn.Module, batch_size: int, seed: int) -> Iterator[Any]:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def serving_step(
        self, model: nn.Module, batch_size: int, device: torch.device, dtype: torch.dtype | None
    ) -> Callable[[], Any]:
        """A closure that serves one batch of items (keeps any online state between calls)."""
        raise NotImplementedError

    def evaluate(
        self, model: nn.Module, settings: EvaluateSettings, device: torch.device
    ) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {}

    def sample_inputs(self, batch_size: int, seed: int = 0) -> torch.Tensor | None:
        """A serving input of ``batch_size`` items from the task's data (None: it has none)."""
        return None

    def model_context(self) -> dict[str, Any]:
        """Keyword arguments for model factories that accept them (e.g. the input ``data``)."""
        return {}


def model_kwargs(
    name: str, params: dict[str, Any], task: Task | None, **extra: Any
) -> dict[str, Any]:
    """``params`` plus the task's :meth:`Task.model_context` entries (and ``extra``) that the
    ``MODELS`` factory ``name`` accepts and ``params`` does not set: everything the model is built
    from (plain data, so checkpoint recipes can record it)."""
    import inspect

    from energybench.models import MODELS

    accepted = inspect.signature(MODELS.get(name)).parameters
    kwargs = dict(params)
    for key, value in {**(task.model_context() if task else {}), **extra}.items():
        if key in accepted and key not in kwargs:
            kwargs[key] = value
    return kwargs


def create_model(name: str, params: dict[str, Any], task: Task | None, **extra: Any) -> nn.Module:
    """``MODELS`` factory ``name`` called with :func:`model_kwargs`."""
    from energybench.models import MODELS

    return MODELS.get(name)(**model_kwargs(name, params, task, **extra))


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype of the model's parameters (None for parameter-free or int8 models)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


class SRTask(Task):
    """Super-resolution: L1 loss, PSNR/SSIM quality, one frame per served item."""

    quality_keys = SR_QUALITY

    def __init__(self, dataset: SRDataset, train_frames: int = 4) -> None:
        self.dataset = dataset
        self.train_frames = train_frames

    def sample_inputs(self, batch_size: int, seed: int = 0) -> torch.Tensor:
        return self.dataset.sample_lr(batch_size, seed)

    def _frames_for(self, model: nn.Module) -> int:
        return self.train_frames if getattr(model, "temporal", False) else 1

    def train_batches(self, model: nn.Module, batch_size: int, seed: int) -> Iterator[Any]:
        return self.dataset.train_batches(batch_size, seed, frames=self._frames_for(model))

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        lr, hr = (t.to(device, non_blocking=True) for t in batch)
        sr = online(model).forward_clip(lr) if lr.dim() == 5 else model(lr)
        return F.l1_loss(sr, hr)

    def serving_step(
        self, model: nn.Module, batch_size: int, device: torch.device, dtype: torch.dtype | None
    ) -> Callable[[], Any]:
        lr = self.dataset.sample_lr(batch_size).to(device)
        if dtype is not None and dtype != lr.dtype:
            lr = lr.to(dtype)
        state = {"s": online(model).init_state(lr) if hasattr(model, "init_state") else None}
        step = getattr(model, "step", None)

        if step is None:
            return lambda: model(lr)

        def serve_one() -> Any:
            out, state["s"] = step(lr, state["s"])
            return out

        return serve_one

    def evaluate(
        self, model: nn.Module, settings: EvaluateSettings, device: torch.device
    ) -> dict[str, Any]:
        """PSNR/SSIM of ``model`` and of bicubic upsampling on the held-out clips."""
        from energybench.metrics.quality import evaluate_clips
        from energybench.models import MODELS

        clips = self.dataset.clips(settings.split)
        if settings.max_items is not None:
            clips = clips[: settings.max_items]
        crop, y = settings.crop_border, settings.y_channel
        res = evaluate_clips(
            [self._run_clip(model, c.lr, device) for c in clips],
            clips,
            crop_border=crop,
            y_channel=y,
        )
        bicubic = MODELS.create("bicubic", scale=self.dataset.scale)
        ref = evaluate_clips(
            [self._run_clip(bicubic, c.lr, torch.device("cpu")) for c in clips],
            clips,
            crop_border=crop,
            y_channel=y,
            with_ssim=False,
        )
        return {
            "psnr_db": res["psnr"],
            "ssim": res.get("ssim"),
            "bicubic_psnr_db": ref["psnr"],
            "psnr_gain_db": res["psnr"] - ref["psnr"],
            "frames": res["frames"],
            "convention": res["convention"],
            "clips": {
                k: {
                    "psnr_db": v["psnr"],
                    "ssim": v.get("ssim"),
                    "frames": v["frames"],
                    "bicubic_psnr_db": ref["clips"][k]["psnr"],
                }
                for k, v in res["clips"].items()
            },
        }

    @staticmethod
    def _run_clip(model: nn.Module, lr: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Super-resolve a clip (T,3,h,w) online, in the model's own dtype; float32 out."""
        dtype = model_dtype(model)
        x = lr.to(device).unsqueeze(0)
        if dtype is not None:
            x = x.to(dtype)
        if hasattr(model, "forward_clip"):
            out = online(model).forward_clip(x)[0]
        else:
            out = torch.stack([model(x[:, t])[0] for t in range(x.shape[1])])
        return out.float().clamp(0, 1).cpu()

    def describe(self) -> dict[str, Any]:
        return self.dataset.describe()
