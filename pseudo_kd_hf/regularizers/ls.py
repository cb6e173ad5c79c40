"""`ls`: uniform label smoothing (`losses.label_smoothing_loss`)."""

from __future__ import annotations

from typing import Any

import torch

from ..losses import LossParts, label_smoothing_loss
from .base import UNIT, Regularizer, register_regularizer


@register_regularizer("ls")
class LabelSmoothing(Regularizer):
    """Cross-entropy to ``(1 - alpha) * onehot(y) + alpha * U``; the ``beta -> inf`` limit of Pseudo-KD."""

    bounds = {"alpha": UNIT}

    def describe(self) -> str:
        alpha = self.args.alpha
        return f"Label smoothing: alpha {alpha:g} (target = {1 - alpha:g} onehot(y) + {alpha:g} uniform)"

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        return label_smoothing_loss(logits, labels, alpha=self.args.alpha, reduction="none", return_parts=True)
