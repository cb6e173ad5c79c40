"""`pseudo_kd`: the paper's optimal instance-specific label smoothing (`losses.pseudo_kd_loss`)."""

from __future__ import annotations

from typing import Any

import torch

from ..losses import LossParts, pseudo_kd_loss
from .base import POSITIVE, UNIT, Regularizer, register_regularizer


@register_regularizer("pseudo_kd")
class PseudoKD(Regularizer):
    """CE to ``(1 - alpha) * onehot(y) + alpha * P*``, ``P* = softmax((alpha / beta) * z)``, plus ``beta * KL``."""

    bounds = {"alpha": UNIT, "beta": POSITIVE}

    def describe(self) -> str:
        alpha, beta = self.args.alpha, self.args.beta
        return f"Pseudo-KD: alpha {alpha:g}, beta {beta:g} (P* = softmax({alpha / beta:.4g} z))"

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        args = self.args
        return pseudo_kd_loss(logits, labels, alpha=args.alpha, beta=args.beta, reduction="none", return_parts=True)
