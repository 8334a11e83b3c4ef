"""Full-cycle energy metrics: TEC, IEC, E(MUI), greenness G, suite score, break-even, ranking.

This module is the metric's public face; each concern lives in its own module: the records in
:mod:`~energybench.metrics.costs`, E, G and S in :mod:`~energybench.metrics.greenness`, the
break-even in :mod:`~energybench.metrics.breakeven`, the ranking in
:mod:`~energybench.metrics.ranking`. What follows holds for all of them.

What it is for: turning each entry's costs (read from the run store by someone else) into the
figures the report shows, after Li et al., "Full-Cycle Energy Consumption Benchmark for Low-Carbon
Computer Vision" (arXiv 2108.13465):

- TEC (total energy before deployment, J): every :class:`CostItem` an entry depends on, i.e. its
  own training and compression *and* shared costs paid by another entry (an inherited base
  model's training, a distillation teacher). Shared costs are counted fully in every variant that
  depends on them and flagged ``shared=True`` so the report can show them as such.
- IEC (energy of one inference, J per item: one image or one video frame) under a named serving
  scenario and batch size.
- MUI (model usage intensity): items served over the model's life (a count, >= 0).
- E(MUI) = TEC + MUI * IEC (J); G(MUI) = Q^tau / E(MUI); the suite score ``SCORE_FORMULA``.

What it must not do: measure, read or write files, import torch, or invent numbers. A figure
that is not known is ``None``, never a silent zero. Carbon is derived elsewhere
(``energybench.metrics.carbon``); this module works in joules only.
"""

from __future__ import annotations

from energybench.metrics.breakeven import BREAK_EVEN_FORMULA, BreakEven, BreakEvenKind, break_even
from energybench.metrics.costs import CostItem, EntryCost, IncompleteCostError
from energybench.metrics.greenness import (
    ENERGY_FORMULA,
    GREENNESS_FORMULA,
    SCORE_FORMULA,
    energy_at,
    energy_split,
    greenness,
    suite_score,
)
from energybench.metrics.ranking import RankRow, rank

__all__ = [
    "BREAK_EVEN_FORMULA",
    "ENERGY_FORMULA",
    "GREENNESS_FORMULA",
    "SCORE_FORMULA",
    "BreakEven",
    "BreakEvenKind",
    "CostItem",
    "EntryCost",
    "IncompleteCostError",
    "RankRow",
    "break_even",
    "energy_at",
    "energy_split",
    "greenness",
    "rank",
    "suite_score",
]
