"""The losses of the paper's methods (cross-entropy, LS, KD, Pseudo-KD), their parts, and the -100 handling they
share with the baselines (`losses.baselines`). See the package docstring for the conventions."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")
IGNORE_INDEX = -100  # a label of -100 marks a row every loss ignores, as in F.cross_entropy


class LossParts(NamedTuple):
    """A loss split into its gold-label part and its regulariser part: ``loss = gold_weight * gold + regularizer``.

    `gold` is the unweighted cross-entropy to the gold class (squared error for regression); `regularizer` is None
    when the method adds nothing (plain cross-entropy). Both are reduced like the loss they come from.
    """

    gold: torch.Tensor
    regularizer: torch.Tensor | None
    gold_weight: float

    @property
    def total(self) -> torch.Tensor:
        gold = self.gold if self.gold_weight == 1.0 else self.gold_weight * self.gold
        return gold if self.regularizer is None else gold + self.regularizer


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}.")


def _check_positive(name: str, value: float, hint: str = "") -> None:
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be finite and > 0, got {value}.{hint}")


def _check_beta(beta: float) -> None:
    _check_positive("beta", beta, " (beta -> inf is uniform label smoothing: use label_smoothing_loss.)")


def _upcast(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are computed on in float32; float32 and float64 stay as they are."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def split_ignored(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep, safe_labels)``: the mask of rows whose label is not -100, and the labels with -100 replaced by 0.

    The safe labels index any class tensor without error; a row they changed must be masked out with `keep`.
    Elementwise on the labels' device: no host synchronisation.
    """
    keep = labels != IGNORE_INDEX
    return keep, labels.masked_fill(~keep, 0)


def reduce_kept(per_example: torch.Tensor, keep: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-example values over the kept rows: "none" zeroes the others, "mean" divides by the kept count."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
    per_example = torch.where(keep, per_example, 0.0)
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    return per_example.sum() / keep.sum()


def _finish(
    gold: torch.Tensor,
    gold_weight: float,
    regularizer: torch.Tensor | None,
    keep: torch.Tensor,
    reduction: str,
    return_parts: bool,
) -> torch.Tensor | LossParts:
    parts = LossParts(gold, regularizer, gold_weight)
    if not return_parts:
        return reduce_kept(parts.total, keep, reduction)
    reduced_regularizer = None if regularizer is None else reduce_kept(regularizer, keep, reduction)
    return LossParts(reduce_kept(gold, keep, reduction), reduced_regularizer, gold_weight)


def _gold_nll(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-log p(y|x)`` per example (labels already free of -100)."""
    return -log_probs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)


def gold_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean", return_parts: bool = False
) -> torch.Tensor | LossParts:
    """The loss with no regulariser: cross-entropy to the gold class, or squared error for a regression head.

    ``L = -log softmax(z)_y`` for K > 1 logits; ``L = (z - y)^2`` for a single logit (a regression head).

    Args:
        logits: the model's logits.
        labels: gold class ids (float scores for regression); -100 marks an ignored row.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts(gold, None, 1.0)` instead of the loss.

    Shape:
        logits (B, K) or (B, 1) for regression; labels (B,); output () or (B,) with ``reduction="none"``.
    """
    keep, labels = split_ignored(labels)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if logits.shape[-1] == 1:
        gold = (logits.reshape(-1) - labels.to(logits.dtype).reshape(-1)) ** 2
    else:
        gold = F.cross_entropy(logits, labels.long(), reduction="none")
    return _finish(gold, 1.0, None, keep, reduction, return_parts)


def label_smoothing_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, alpha: float, reduction: str = "mean", return_parts: bool = False
) -> torch.Tensor | LossParts:
    """Uniform label smoothing (Eq. 3 and 5 with ``P_ls = U``).

    ``L = sum_j [(1 - alpha) * onehot(y)_j + alpha / K] * (-log p_j)
        = (1 - alpha) * CE(y, p) + alpha * mean_j(-log p_j)``,
    the same value as ``F.cross_entropy(z, y, label_smoothing=alpha)``.

    Args:
        logits: the student's logits.
        labels: gold class ids; -100 marks an ignored row.
        alpha: weight of the uniform distribution in the target, in [0, 1].
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    _check_unit("alpha", alpha)
    keep, labels = split_ignored(labels)
    log_probs = F.log_softmax(_upcast(logits), dim=-1)
    regularizer = -alpha * log_probs.mean(dim=-1)
    return _finish(_gold_nll(log_probs, labels), 1.0 - alpha, regularizer, keep, reduction, return_parts)


def kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    alpha: float,
    temperature: float = 1.0,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Knowledge distillation in Hinton's form (Eq. 1 with temperature ``T``).

    ``L = (1 - alpha) * CE(y, softmax(z_s)) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``.
    The teacher's logits receive no gradient; ``T^2`` keeps the soft term's gradient scale independent of ``T``.

    Args:
        logits: the student's logits ``z_s``.
        labels: gold class ids; -100 marks an ignored row.
        teacher_logits: the teacher's logits ``z_t`` for the same examples, in the student's label order.
        alpha: weight of the teacher in the target, in [0, 1].
        temperature: softmax temperature ``T`` > 0 of both distributions.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits and teacher_logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    _check_unit("alpha", alpha)
    _check_positive("temperature", temperature)
    keep, labels = split_ignored(labels)
    logits = _upcast(logits)
    teacher_logits = _upcast(teacher_logits.detach()).to(logits.dtype)
    hard = _gold_nll(F.log_softmax(logits, dim=-1), labels)
    student_log_probs = F.log_softmax(logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    soft = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True).sum(dim=-1)
    return _finish(hard, 1.0 - alpha, alpha * temperature**2 * soft, keep, reduction, return_parts)


def pseudo_kd_targets(logits: torch.Tensor, *, alpha: float, beta: float) -> torch.Tensor:
    """The optimal smoothing distribution of Theorem 1 (Eq. 10), detached.

    ``P*(j|x) = p(j|x)^(alpha/beta) / sum_j' p(j'|x)^(alpha/beta) = softmax((alpha / beta) * z)``:
    the log-sum-exp of ``log p`` cancels, so it is computed from logits. With ``beta = alpha * tau`` it is
    ``softmax(z / tau)`` (Eq. 13); as ``beta -> inf`` it tends to uniform. ``alpha = 0`` gives uniform exactly.

    Shape:
        logits (B, K); output (B, K).
    """
    _check_unit("alpha", alpha)
    _check_beta(beta)
    return F.softmax((alpha / beta) * _upcast(logits.detach()), dim=-1)


def pseudo_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """The Pseudo-KD objective ``R_i`` of Eq. 12, with ``P*`` of Theorem 1 held fixed (Algorithm 1, stage 2).

    ``R_i = sum_j Phat*(j) * (-log p_j) + beta * sum_j P*(j) * log(K * P*(j))``, where
    ``Phat* = (1 - alpha) * onehot(y) + alpha * P*`` (Eq. 5) and ``P* = softmax((alpha / beta) * z)``.
    No gradient flows through ``P*``, so the second term (``beta * KL(P* || U)``) is a constant in the parameters,
    but it is part of the value, as in Eq. 12.

    Args:
        logits: the student's logits ``z``.
        labels: gold class ids; -100 marks an ignored row.
        alpha: smoothing weight in [0, 1].
        beta: KL weight, finite and > 0 (``beta -> inf`` is uniform label smoothing).
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    _check_unit("alpha", alpha)
    _check_beta(beta)
    keep, labels = split_ignored(labels)
    logits = _upcast(logits)
    log_probs = F.log_softmax(logits, dim=-1)
    target_log_probs = F.log_softmax((alpha / beta) * logits.detach(), dim=-1)
    targets = target_log_probs.exp()
    kl_to_uniform = (targets * (target_log_probs + math.log(logits.shape[-1]))).sum(dim=-1)
    regularizer = -alpha * (targets * log_probs).sum(dim=-1) + beta * kl_to_uniform
    return _finish(_gold_nll(log_probs, labels), 1.0 - alpha, regularizer, keep, reduction, return_parts)


def regression_kd_loss(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    teacher_predictions: torch.Tensor,
    *,
    alpha: float,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Distillation for a regression head (STS-B): ``L = (y_hat - y)^2 + alpha * (y_hat - y_teacher)^2``.

    Label smoothing has no meaning for a real-valued target, so the gold score keeps its full weight and the
    teacher's score adds an ``alpha``-weighted squared error.

    Args:
        predictions: the student's scores ``y_hat``.
        targets: the gold scores ``y``; -100 marks an ignored row.
        teacher_predictions: the teacher's scores.
        alpha: weight of the teacher's squared error, in [0, 1].
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight 1) instead of the loss.

    Shape:
        predictions and teacher_predictions (B,) or (B, 1); targets (B,); output () or (B,).
    """
    _check_unit("alpha", alpha)
    keep, targets = split_ignored(targets.reshape(-1))
    predictions = _upcast(predictions).reshape(-1)
    gold = (predictions - targets.to(predictions.dtype)) ** 2
    teacher = (predictions - teacher_predictions.detach().reshape(-1).to(predictions.dtype)) ** 2
    return _finish(gold, 1.0, alpha * teacher, keep, reduction, return_parts)
