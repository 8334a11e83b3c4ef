"""Classification quality: top-k accuracy, a fraction in [0, 1] (so Q^tau in G is defined).

Pure functions of logits and labels; nothing here runs a model or measures energy.
"""

from __future__ import annotations

import torch


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per item, whether its label is among the ``k`` highest logits (``k`` capped at classes).

    Ties are broken by ``torch.topk`` (lowest index first), so a constant output is not
    counted correct for every class.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logits (N, C) and labels (N,) expected, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    k = min(k, logits.shape[1])
    top = logits.float().topk(k, dim=1).indices
    return (top == labels.to(top.device).unsqueeze(1)).any(dim=1)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Fraction of items whose label is among the top ``k`` logits (0 for no items)."""
    if len(labels) == 0:
        return 0.0
    return float(topk_correct(logits, labels, k).float().mean())
