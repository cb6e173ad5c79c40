"""Pseudo Knowledge Distillation for Hugging Face Transformers: optimal instance-specific label smoothing."""

from .losses import (
    beta_smoothing_loss,
    cs_kd_loss,
    kd_loss,
    label_smoothing_loss,
    ps_kd_loss,
    pseudo_kd_loss,
    pseudo_kd_targets,
    regression_kd_loss,
    tf_reg_loss,
)
from .trainer import REGULARIZATIONS, TEACHER_LOGITS_COLUMN, PseudoKDTrainer, PseudoKDTrainingArguments

__version__ = "0.1.0"

__all__ = [
    "REGULARIZATIONS",
    "TEACHER_LOGITS_COLUMN",
    "PseudoKDTrainer",
    "PseudoKDTrainingArguments",
    "beta_smoothing_loss",
    "cs_kd_loss",
    "kd_loss",
    "label_smoothing_loss",
    "ps_kd_loss",
    "pseudo_kd_loss",
    "pseudo_kd_targets",
    "regression_kd_loss",
    "tf_reg_loss",
]
