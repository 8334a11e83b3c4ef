"""Top-k accuracy on hand-computed examples."""

from __future__ import annotations

import pytest
import torch

from energybench.metrics.accuracy import topk_accuracy, topk_correct


def test_top1_and_top5_on_a_hand_made_example() -> None:
    logits = torch.tensor(
        [
            [9.0, 1, 2, 3, 4, 5, 6],  # label 0: top1
            [1.0, 9, 2, 3, 4, 5, 6],  # label 6: 2nd -> top5 only
            [7.0, 6, 5, 4, 3, 2, 1],  # label 6: last -> neither
            [0.0, 0, 0, 0, 0, 9, 8],  # label 5: top1
        ]
    )
    labels = torch.tensor([0, 6, 6, 5])
    assert topk_correct(logits, labels, 1).tolist() == [True, False, False, True]
    assert topk_accuracy(logits, labels, 1) == pytest.approx(0.5)
    assert topk_accuracy(logits, labels, 5) == pytest.approx(0.75)
    assert topk_accuracy(logits, labels, 7) == pytest.approx(1.0)


def test_k_above_the_class_count_is_capped_and_shapes_are_checked() -> None:
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert topk_accuracy(logits, torch.tensor([0, 0]), 5) == 1.0
    with pytest.raises(ValueError):
        topk_correct(logits, torch.tensor([0, 0, 0]), 1)
    assert topk_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) == 0.0
