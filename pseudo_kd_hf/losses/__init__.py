"""Label regularisers of the Pseudo-KD paper as pure functions on logits.

Equation numbers refer to "Pseudo Knowledge Distillation: towards learning optimal instance-specific label
smoothing regularization". Notation: logits ``z`` of shape (batch, K), gold class ``y``, model probabilities
``p = softmax(z)``, smoothing weight ``alpha`` in [0, 1], KL weight ``beta`` > 0.

Every loss takes ``(logits, labels, reference, *, settings)``: the reference (teacher logits, previous predictions, a
partner's logits) comes third where the method has one, and every setting is keyword-only. Every loss is
``gold_weight * gold + regularizer`` per example, where ``gold`` is the cross-entropy to the gold class (squared
error for a regression head); ``return_parts=True`` returns those parts as `LossParts` instead of their sum.

Rows whose label is -100 (Hugging Face's "ignore this row") are ignored as ``F.cross_entropy(ignore_index=-100)``
ignores them: ``reduction="none"`` gives them 0, "mean" averages over the kept rows, "sum" sums the kept rows.

Every function works from log-softmax in float32 (float64 stays float64), never from powers of probabilities, so
fp16/bf16 logits of magnitude 1e4 give finite values and gradients.

`losses.core` holds the paper's methods; `losses.baselines` the teacher-free baselines of the paper's Table 2 (TF-reg,
PS-KD, CS-KD, Beta smoothing), each documented with its source, its authors' defaults, and where we differ from their
official code.
"""

from .baselines import (
    beta_smoothing_loss,
    beta_smoothing_targets,
    cs_kd_loss,
    ps_kd_alpha,
    ps_kd_loss,
    soft_target_loss,
    tf_reg_loss,
    virtual_teacher_logits,
)
from .core import (
    IGNORE_INDEX,
    REDUCTIONS,
    LossParts,
    gold_loss,
    kd_loss,
    label_smoothing_loss,
    pseudo_kd_loss,
    pseudo_kd_targets,
    reduce_kept,
    regression_kd_loss,
    split_ignored,
)

__all__ = [
    "IGNORE_INDEX",
    "REDUCTIONS",
    "LossParts",
    "beta_smoothing_loss",
    "beta_smoothing_targets",
    "cs_kd_loss",
    "gold_loss",
    "kd_loss",
    "label_smoothing_loss",
    "ps_kd_alpha",
    "ps_kd_loss",
    "pseudo_kd_loss",
    "pseudo_kd_targets",
    "reduce_kept",
    "regression_kd_loss",
    "soft_target_loss",
    "split_ignored",
    "tf_reg_loss",
    "virtual_teacher_logits",
]
