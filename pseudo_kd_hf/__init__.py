"""Pseudo Knowledge Distillation for Hugging Face Transformers: optimal instance-specific label smoothing."""

from .config import PseudoKDTrainingArguments
from .losses import (
    LossParts,
    beta_smoothing_loss,
    cs_kd_loss,
    gold_loss,
    kd_loss,
    label_smoothing_loss,
    ps_kd_loss,
    pseudo_kd_loss,
    pseudo_kd_targets,
    regression_kd_loss,
    tf_reg_loss,
)
from .regularizers import BUILT_IN, Regularizer, register_regularizer, registered_regularizers
from .teacher import TEACHER_LOGITS_COLUMN
from .trainer import PseudoKDTrainer

__version__ = "0.1.0"

# The built-in methods' names (`registered_regularizers()` also lists the ones registered since).
REGULARIZATIONS = BUILT_IN

__all__ = [
    "REGULARIZATIONS",
    "TEACHER_LOGITS_COLUMN",
    "LossParts",
    "PseudoKDTrainer",
    "PseudoKDTrainingArguments",
    "Regularizer",
    "beta_smoothing_loss",
    "cs_kd_loss",
    "gold_loss",
    "kd_loss",
    "label_smoothing_loss",
    "ps_kd_loss",
    "pseudo_kd_loss",
    "pseudo_kd_targets",
    "register_regularizer",
    "registered_regularizers",
    "regression_kd_loss",
    "tf_reg_loss",
]
