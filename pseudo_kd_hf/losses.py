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

The teacher-free baselines of the paper's Table 2 follow at the end (TF-reg, PS-KD, CS-KD, Beta smoothing), each
documented with its source, its authors' defaults, and where we differ from their official code.
"""

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


# ---- teacher-free baselines (the paper's Table 2) -------------------------------------------------------------------


def soft_target_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_targets: torch.Tensor,
    *,
    alpha: float,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Cross-entropy against ``(1 - alpha) * onehot(y) + alpha * q`` for fixed per-example targets ``q`` (Eq. 5).

    ``L = (1 - alpha) * CE(y, p) + alpha * sum_j q_j * (-log p_j)``; ``q`` receives no gradient. PS-KD and Beta
    smoothing are this loss with their own ``q``.

    Args:
        logits: the student's logits.
        labels: gold class ids; -100 marks an ignored row.
        soft_targets: ``q``, one distribution over the K classes per example.
        alpha: weight of ``q`` in the target, in [0, 1].
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits and soft_targets (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    _check_unit("alpha", alpha)
    keep, labels = split_ignored(labels)
    log_probs = F.log_softmax(_upcast(logits), dim=-1)
    soft = -(soft_targets.detach().to(log_probs.dtype) * log_probs).sum(dim=-1)
    return _finish(_gold_nll(log_probs, labels), 1.0 - alpha, alpha * soft, keep, reduction, return_parts)


def virtual_teacher_logits(
    labels: torch.Tensor, num_classes: int, *, teacher_prob: float = 0.99, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """TF-reg's manually designed teacher as logits: ``log a`` on the gold class, ``log((1 - a) / (K - 1))`` elsewhere.

    Their softmax is the teacher's distribution ``p^d`` of Yuan et al. (CVPR 2020), so tempering these logits,
    ``softmax(v / T) ∝ (p^d)^(1/T)``, softens ``p^d`` the way KD softens a real teacher. A -100 label gets class 0.

    Shape:
        labels (B,); output (B, num_classes).
    """
    if not 0.0 < teacher_prob < 1.0:
        raise ValueError(f"teacher_prob must be in (0, 1), got {teacher_prob}.")
    if num_classes < 2:
        raise ValueError(f"A virtual teacher needs num_classes >= 2, got {num_classes}.")
    logits = torch.full(
        (labels.shape[0], num_classes),
        math.log((1.0 - teacher_prob) / (num_classes - 1)),
        dtype=dtype,
        device=labels.device,
    )
    return logits.scatter_(-1, split_ignored(labels)[1].long().unsqueeze(-1), math.log(teacher_prob))


def tf_reg_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float,
    temperature: float = 20.0,
    teacher_prob: float = 0.99,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Teacher-free KD with a manually designed teacher, Tf-KD_reg (Yuan et al., CVPR 2020, Section 5).

    ``L = (1 - alpha) * CE(y, softmax(z)) + alpha * T^2 * KL(softmax(v / T) || softmax(z / T))`` with ``v`` the
    virtual teacher's logits (`virtual_teacher_logits`): KD (`kd_loss`) from a teacher that puts ``a`` on the gold
    class. Official code (yuanli2333/Teacher-free-Knowledge-Distillation, ``loss_kd_regularization``): ``a = 0.99``;
    per model, e.g. ResNet18 ``reg_alpha=0.1, reg_temperature=20, multiplier=100``. It differs from the paper, and
    from us, in three ways: it applies softmax to the teacher's *probabilities* (``softmax(p^d / T)``, nearly uniform
    for T = 20) instead of tempering them, it does not temper the student (``log_softmax(z)``), and it scales the KL,
    averaged over all B * K elements (``nn.KLDivLoss()``), by ``multiplier`` instead of summing over classes and
    scaling by ``T^2``.

    Args:
        logits: the student's logits.
        labels: gold class ids; -100 marks an ignored row.
        alpha: weight of the virtual teacher, in [0, 1].
        temperature: ``T`` > 0 of the virtual teacher and the student.
        teacher_prob: ``a`` in (0, 1), the virtual teacher's probability of the gold class.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    teacher = virtual_teacher_logits(labels, logits.shape[-1], teacher_prob=teacher_prob, dtype=_upcast(logits).dtype)
    return kd_loss(
        logits,
        labels,
        teacher,
        alpha=alpha,
        temperature=temperature,
        reduction=reduction,
        return_parts=return_parts,
    )


def ps_kd_alpha(alpha_T: float, epoch: int, num_epochs: int) -> float:
    """PS-KD's schedule (Kim et al., ICCV 2021): ``alpha_t = alpha_T * (t + 1) / num_epochs``, epochs ``t`` from 0."""
    _check_unit("alpha_T", alpha_T)
    if not 0 <= epoch < num_epochs:
        raise ValueError(f"epoch must be in [0, num_epochs={num_epochs}), got {epoch}.")
    return alpha_T * (epoch + 1) / num_epochs


def ps_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    previous_probs: torch.Tensor,
    *,
    alpha_t: float,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Progressive self-knowledge distillation, PS-KD (Kim et al., ICCV 2021).

    Cross-entropy against ``(1 - alpha_t) * onehot(y) + alpha_t * p_prev(x)``, where ``p_prev(x)`` is the model's
    own softmax prediction for ``x`` in the previous epoch (one-hot before any) and ``alpha_t`` follows
    `ps_kd_alpha`. Official code (lgcnsai/PS-KD-Pytorch): ``alpha_T = 0.8``, loss ``(-q * log_softmax(z)).sum(1)``
    averaged over the batch; same here. Arguments as `soft_target_loss` with ``alpha = alpha_t``.

    Shape:
        logits and previous_probs (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    _check_unit("alpha_t", alpha_t)
    return soft_target_loss(
        logits, labels, previous_probs, alpha=alpha_t, reduction=reduction, return_parts=return_parts
    )


def cs_kd_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pair_logits: torch.Tensor,
    *,
    lambda_: float = 1.0,
    temperature: float = 4.0,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Class-wise self-knowledge distillation, CS-KD (Yun et al., CVPR 2020).

    ``L = CE(y, softmax(z)) + lambda * T^2 * KL(softmax(z' / T) || softmax(z / T))``, where ``z'`` are the logits
    of another training example of the same class, detached. Official code (alinlab/cs-kd): ``--temp 4``,
    ``--lamda 1``, KL summed over classes and averaged over the batch; same here.

    Args:
        logits: the anchors' logits ``z``.
        labels: the anchors' gold class ids; -100 marks an ignored row.
        pair_logits: ``z'``, the logits of each anchor's partner (same class, another example).
        lambda_: weight ``lambda`` >= 0 of the KL term.
        temperature: ``T`` > 0 of both distributions.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight 1) instead of the loss.

    Shape:
        logits and pair_logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    if not (lambda_ >= 0.0 and math.isfinite(lambda_)):
        raise ValueError(f"lambda_ must be finite and >= 0, got {lambda_}.")
    _check_positive("temperature", temperature)
    keep, labels = split_ignored(labels)
    logits = _upcast(logits)
    hard = _gold_nll(F.log_softmax(logits, dim=-1), labels)
    pair_log_probs = F.log_softmax(_upcast(pair_logits.detach()).to(logits.dtype) / temperature, dim=-1)
    log_probs = F.log_softmax(logits / temperature, dim=-1)
    soft = F.kl_div(log_probs, pair_log_probs, reduction="none", log_target=True).sum(dim=-1)
    return _finish(hard, 1.0, lambda_ * temperature**2 * soft, keep, reduction, return_parts)


def beta_smoothing_targets(
    ema_logits: torch.Tensor, labels: torch.Tensor, *, beta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Beta smoothing's per-example targets (Zhang & Sabuncu, NeurIPS 2020), detached.

    Draws one ``b ~ Beta(beta, 1)`` per example, sorts them, and gives the largest ``b`` to the example on which the
    EMA model is most confident about the gold class (``softmax(ema_logits)[y]``), the smallest to the least
    confident; the target puts ``b`` on the gold class and ``(1 - b) / (K - 1)`` on every other class. ``b`` is
    drawn by inverse CDF, ``U^(1/beta)`` with ``U`` uniform on the CPU ``generator``, so a seeded generator
    replays the draws. Rows labelled -100 rank as least confident (they take the smallest draws).

    Shape:
        ema_logits (B, K); labels (B,); output (B, K).
    """
    _check_positive("beta", beta)
    batch_size, num_classes = ema_logits.shape
    if num_classes < 2:
        raise ValueError(f"Beta smoothing needs num_classes >= 2, got {num_classes}.")
    keep, labels = split_ignored(labels)
    confidence = _gold_nll(F.log_softmax(_upcast(ema_logits.detach()), dim=-1), labels).neg()
    confidence = torch.where(keep, confidence, -math.inf)
    draws = torch.rand(batch_size, generator=generator, dtype=torch.float64).sort().values ** (1.0 / beta)
    draws = draws.to(device=confidence.device, dtype=confidence.dtype)
    b = torch.empty_like(draws)
    b[confidence.argsort(stable=True)] = draws  # the k-th smallest b to the k-th least confident example
    b = b.unsqueeze(-1)
    targets = ((1.0 - b) / (num_classes - 1)).expand(batch_size, num_classes).clone()
    return targets.scatter_(-1, labels.long().unsqueeze(-1), b)


def beta_smoothing_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ema_logits: torch.Tensor,
    *,
    alpha: float = 0.6,
    beta: float = 3.0,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> torch.Tensor | LossParts:
    """Beta smoothing (Zhang & Sabuncu, NeurIPS 2020): ``(1 - alpha) * CE(y, p) + alpha * CE(q_beta, p)``.

    ``q_beta`` from `beta_smoothing_targets`, ranked by an exponential moving average of the student. Official code
    (ZhiluZhang123/neurips_2020_distillation, ``soft_beta_loss``): ``--alpha 0.6 --beta 3.0``, EMA decay
    ``min(1 - 1 / (step + 1), 0.999)``; it takes ``log(softmax(z) + 1e-8)`` where we take ``log_softmax(z)``.

    Args:
        logits: the student's logits.
        labels: gold class ids; -100 marks an ignored row.
        ema_logits: the EMA model's logits for the same examples, which rank them.
        alpha: weight of ``q_beta`` in the target, in [0, 1].
        beta: shape ``a`` > 0 of the Beta(a, 1) gold-class probabilities.
        generator: CPU generator of the draws.
        reduction: "mean" (over the kept rows), "sum" or "none".
        return_parts: return `LossParts` (gold weight ``1 - alpha``) instead of the loss.

    Shape:
        logits and ema_logits (B, K); labels (B,); output () or (B,) with ``reduction="none"``.
    """
    targets = beta_smoothing_targets(ema_logits, labels, beta=beta, generator=generator)
    return soft_target_loss(logits, labels, targets, alpha=alpha, reduction=reduction, return_parts=return_parts)
