"""Pseudo Knowledge Distillation for Hugging Face Transformers: optimal instance-specific label smoothing.

The names below are imported on first use (`pseudo_kd_hf.lazy`): `import pseudo_kd_hf` loads neither torch nor
transformers, so the GLUE tables and `pseudo-kd-glue-submit` start fast.
"""

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
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
    from .regularizers import REGULARIZATIONS, Regularizer, register_regularizer, registered_regularizers
    from .teacher import TEACHER_LOGITS_COLUMN
    from .trainer import PseudoKDTrainer

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

EXPORTS = {
    ".config": ("PseudoKDTrainingArguments",),
    ".losses": (
        "LossParts",
        "beta_smoothing_loss",
        "cs_kd_loss",
        "gold_loss",
        "kd_loss",
        "label_smoothing_loss",
        "ps_kd_loss",
        "pseudo_kd_loss",
        "pseudo_kd_targets",
        "regression_kd_loss",
        "tf_reg_loss",
    ),
    ".regularizers": ("REGULARIZATIONS", "Regularizer", "register_regularizer", "registered_regularizers"),
    ".teacher": ("TEACHER_LOGITS_COLUMN",),
    ".trainer": ("PseudoKDTrainer",),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
