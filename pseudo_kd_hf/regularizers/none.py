"""`none`: plain cross-entropy to the gold class (squared error for a regression head)."""

from __future__ import annotations

from typing import Any

import torch

from ..losses import LossParts, gold_loss
from .base import Regularizer, register_regularizer


@register_regularizer("none")
class CrossEntropy(Regularizer):
    """No regulariser: the loss every other method adds to (and falls back to on a regression head)."""

    supports_regression = True

    def describe(self) -> str:
        return "none: cross-entropy to the gold label, no regulariser (MSE for a regression head)"

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        return gold_loss(logits, labels, reduction="none", return_parts=True)
