"""The classification task adaptor: cross-entropy training, top-1/top-5 quality, and serving
one batch of images per call.

It adapts an :class:`~energybench.data.images.ImageClassDataset` to the task-agnostic
lifecycle (trainer, compression, serving, evaluation). It never measures energy and never
builds models itself (it only tells factories what input the data has, :meth:`model_context`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from energybench.data.images import ImageClassDataset
from energybench.metrics.accuracy import topk_correct
from energybench.suite.schema import EvaluateSettings
from energybench.tasks.base import Task, model_dtype
from energybench.tasks.registry import CLASSIFICATION_QUALITY

EVAL_BATCH = 250
PRECISE_BN_BATCHES = 16  # x PRECISE_BN_BATCH training images after every training run
PRECISE_BN_BATCH = 64


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, tuple | list):  # e.g. torchvision googlenet/inception aux outputs
        out = out[0]
    return out.float()


class ClassificationTask(Task):
    """Image classification: CE loss, top-1/top-5 accuracy in [0, 1], a batch per served call."""

    quality_keys = CLASSIFICATION_QUALITY

    def __init__(self, dataset: ImageClassDataset) -> None:
        self.dataset = dataset

    def sample_inputs(self, batch_size: int, seed: int = 0) -> torch.Tensor:
        return self.dataset.sample_lr(batch_size, seed)

    def model_context(self) -> dict[str, Any]:
        """What model factories need to fit the data (``data=``: channels, size, classes)."""
        return {"data": self.dataset.spec.to_dict()}

    def after_training(self, model: nn.Module, device: torch.device, seed: int) -> None:
        """Precise BatchNorm: recompute running statistics as the plain average over
        :data:`PRECISE_BN_BATCHES` training batches with the final weights.

        With short schedules, an exponential moving average with a small momentum
        (torchvision's MobileNetV3 uses 0.01) still remembers the untrained network, so the
        eval-mode model is far worse than the trained one. Runs inside the caller's window.
        """
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        norms = [m for m in norms if m.track_running_stats and m.running_mean is not None]
        if not norms:
            return
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        batches = self.dataset.train_batches(PRECISE_BN_BATCH, seed + 11)
        with torch.no_grad():
            for _ in range(PRECISE_BN_BATCHES):
                x, _ = next(batches)
                model(x.to(device))
        for m, mom in zip(norms, saved, strict=True):
            m.momentum = mom

    def train_batches(
        self, model: nn.Module, batch_size: int, seed: int, device: torch.device | None = None
    ) -> Iterator[Any]:
        """The dataset's training batches, loaded for ``device`` (workers, pinned memory)."""
        return self.dataset.train_batches(batch_size, seed, device)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        x, y = batch
        out = model(x.to(device, non_blocking=True))
        if isinstance(out, tuple | list):
            out = out[0]
        return F.cross_entropy(out, y.to(device, non_blocking=True))

    def distill_loss_fn(
        self, teacher: nn.Module, alpha: float, device: torch.device, temperature: float = 4.0
    ) -> Callable[[nn.Module, Any], torch.Tensor]:
        """Hinton distillation: ``(1-alpha)*CE(s, y) + alpha*T^2*KL(softmax(t/T) || softmax(s/T))``.

        The teacher runs in eval mode under ``torch.inference_mode`` (inside the caller's
        window, so its energy is counted).
        """

        def loss_fn(student: nn.Module, batch: Any) -> torch.Tensor:
            x, y = (t.to(device, non_blocking=True) for t in batch)
            s = student(x)
            if isinstance(s, tuple | list):
                s = s[0]
            loss = (1 - alpha) * F.cross_entropy(s, y) if alpha < 1 else s.new_zeros(())
            if alpha > 0:
                with torch.inference_mode():
                    t = _logits(teacher, x.to(model_dtype(teacher) or x.dtype))
                soft = F.log_softmax(t.clone() / temperature, dim=1)
                kl = F.kl_div(
                    F.log_softmax(s.float() / temperature, dim=1),
                    soft,
                    log_target=True,
                    reduction="batchmean",
                )
                loss = loss + alpha * temperature**2 * kl
            return loss

        return loss_fn

    def serving_step(
        self, model: nn.Module, batch_size: int, device: torch.device, dtype: torch.dtype | None
    ) -> Callable[[], Any]:
        x = self.dataset.sample_lr(batch_size).to(device)
        if dtype is not None and dtype != x.dtype:
            x = x.to(dtype)
        return lambda: model(x)

    def evaluate(
        self, model: nn.Module, settings: EvaluateSettings, device: torch.device
    ) -> dict[str, Any]:
        """Top-1/top-5 accuracy and mean cross-entropy on the held-out split."""
        dtype = model_dtype(model)
        model.eval()
        hits1: list[torch.Tensor] = []
        hits5: list[torch.Tensor] = []
        losses: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        with torch.inference_mode():
            for x, y in self.dataset.batches(settings.split, EVAL_BATCH, settings.max_items):
                self._eval_batch(model, x, y, device, dtype, (hits1, hits5, losses, labels))
        if not labels:
            raise ValueError(f"the '{settings.split}' split has no images to evaluate")
        h1, h5, y_all = torch.cat(hits1), torch.cat(hits5), torch.cat(labels)
        per_class = {
            self.dataset.classes[c]: float(h1[y_all == c].float().mean())
            for c in range(len(self.dataset.classes))
            if bool((y_all == c).any())
        }
        return {
            "top1": float(h1.float().mean()),
            "top5": float(h5.float().mean()),
            "loss": float(torch.cat(losses).mean()),
            "items": len(y_all),
            "chance_top1": 1.0 / len(self.dataset.classes),
            "per_class_top1": per_class,
        }

    @staticmethod
    def _eval_batch(
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        device: torch.device,
        dtype: torch.dtype | None,
        acc: tuple[list[torch.Tensor], ...],
    ) -> None:
        x = x.to(device)
        if dtype is not None:
            x = x.to(dtype)
        logits = _logits(model, x).cpu()
        hits1, hits5, losses, labels = acc
        hits1.append(topk_correct(logits, y, 1))
        hits5.append(topk_correct(logits, y, 5))
        losses.append(F.cross_entropy(logits, y, reduction="none"))
        labels.append(y)

    def describe(self) -> dict[str, Any]:
        return self.dataset.describe()
