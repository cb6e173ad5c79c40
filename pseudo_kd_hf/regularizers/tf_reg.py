"""`tf_reg`: teacher-free KD from a manually designed teacher (`losses.tf_reg_loss`). Costs nothing extra per step."""

from __future__ import annotations

from typing import Any

import torch

from ..losses import LossParts, tf_reg_loss
from .base import OPEN_UNIT, POSITIVE, UNIT, Regularizer, register_regularizer


@register_regularizer("tf_reg")
class TeacherFreeRegularization(Regularizer):
    """KD (weight `alpha`) at `tf_reg_temperature` from a teacher with `tf_reg_teacher_prob` on the gold class."""

    bounds = {"alpha": UNIT, "tf_reg_temperature": POSITIVE, "tf_reg_teacher_prob": OPEN_UNIT}

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        args = self.args
        return tf_reg_loss(
            logits,
            labels,
            alpha=args.alpha,
            temperature=args.tf_reg_temperature,
            teacher_prob=args.tf_reg_teacher_prob,
            reduction="none",
            return_parts=True,
        )
