"""`kd`: knowledge distillation from a teacher run beside the student, or from a column of its cached logits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..losses import LossParts, kd_loss, regression_kd_loss
from ..teacher import TEACHER_LOGITS_COLUMN
from .base import POSITIVE, UNIT, Regularizer, register_regularizer, student_num_labels

if TYPE_CHECKING:
    from ..trainer import PseudoKDTrainer

NO_TEACHER_MESSAGE = (
    "regularization='kd' needs a teacher: pass teacher_model= (a model or a name/path) to PseudoKDTrainer, "
    f"or give the training set a {TEACHER_LOGITS_COLUMN!r} column (CLI: --teacher_name_or_path)."
)


@register_regularizer("kd")
class KnowledgeDistillation(Regularizer):
    """Hinton's KD (`losses.kd_loss`); on a regression head, the MSE plus `alpha` times the MSE to the teacher.

    The reference is the batch's `teacher_logits` column when the training set has one, else the trainer's
    `teacher_model` run on the batch (no gradient, its columns mapped onto the student's labels).
    """

    bounds = {"alpha": UNIT, "temperature": POSITIVE}
    columns = (TEACHER_LOGITS_COLUMN,)
    supports_regression = True
    uses_teacher = True
    regression = False  # True once set up on a regression head, whose loss reads no temperature

    def describe(self) -> str:
        alpha, temperature = self.args.alpha, self.args.temperature
        if self.regression:
            return f"KD: alpha {alpha:g} (regression: MSE to the gold score + {alpha:g} MSE to the teacher's)"
        return f"KD: alpha {alpha:g}, temperature {temperature:g} (target {1 - alpha:g} onehot(y) + {alpha:g} teacher)"

    def setup(self, trainer: PseudoKDTrainer) -> None:
        """KD without a teacher or cached logits fails here, before any training step."""
        super().setup(trainer)
        self.regression = student_num_labels(trainer) == 1
        self.teacher, self.label_order = trainer.teacher_model, trainer.teacher_label_order
        columns = getattr(trainer.train_dataset, "column_names", None)
        if self.teacher is None and columns is not None and TEACHER_LOGITS_COLUMN not in columns:
            raise ValueError(NO_TEACHER_MESSAGE)

    @torch.no_grad()
    def teacher_logits(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.teacher is None:
            raise ValueError(NO_TEACHER_MESSAGE)
        logits = self.teacher(**self.model_inputs(batch)).logits
        return logits if self.label_order is None else logits[:, self.label_order]

    def per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, Any]) -> LossParts:
        reference = batch.get(TEACHER_LOGITS_COLUMN)
        if reference is None:
            reference = self.teacher_logits(batch)
        settings = {"alpha": self.args.alpha, "reduction": "none", "return_parts": True}
        if logits.shape[-1] == 1:
            return regression_kd_loss(logits, labels, reference, **settings)
        return kd_loss(logits, labels, reference, temperature=self.args.temperature, **settings)
